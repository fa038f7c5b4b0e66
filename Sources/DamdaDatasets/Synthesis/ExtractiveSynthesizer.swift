import DamdaRetrieval
import Foundation

/// One synthesized training question (`damda data synthesize` writes these as JSONL).
public struct SynthesizedQuestion: Codable, Sendable, Equatable {
    public var id: String
    public var question: String
    public var answers: [String]
    public var documentID: String
    public var chunkID: String
    /// The sentence the answer was taken from.
    public var evidence: String
    /// How it was made: extractive/amount, extractive/date, extractive/definition, extractive/term, extractive/entity.
    public var generator: String

    enum CodingKeys: String, CodingKey { case id, question, answers, evidence, generator, documentID = "doc_id", chunkID = "chunk_id" }

    public init(id: String, question: String, answers: [String], documentID: String, chunkID: String, evidence: String, generator: String) {
        self.id = id; self.question = question; self.answers = answers; self.documentID = documentID; self.chunkID = chunkID
        self.evidence = evidence; self.generator = generator
    }
}

/// Questions written from a passage without a model, Korean first: answer spans are amounts and
/// numbers with units or counters, dates, defined terms ("~란 ~을 말합니다"), quoted terms and
/// institutions found by their particles; the sentence is turned into a question around the span
/// (cloze translation, Lewis et al. 2019) and cut to the clause that holds it, so the question does
/// not copy the sentence word for word.
public struct ExtractiveSynthesizer: Sendable {
    /// Questions kept per chunk before filtering (different kinds first).
    public var perChunk = 3
    public var style = KoreanQuestions.Style.haeyo
    public init(perChunk: Int = 3) { self.perChunk = perChunk }

    struct Span { var range: Range<String.Index>, answer: String, questionWord: String, kind: String }

    /// "1990년대" is a decade, not a date: the year is not taken when 대 follows.
    static let dateRegex = try! NSRegularExpression(pattern: "[0-9]{4}년\\s?[0-9]{1,2}월\\s?[0-9]{1,2}일|[0-9]{4}년\\s?[0-9]{1,2}월|[0-9]{1,2}월\\s?[0-9]{1,2}일|[0-9]{4}년(?!대)")
    static let numberRegex: NSRegularExpression = {
        let units = KoreanQuestions.units.map(\.0).sorted { $0.count > $1.count }.map(NSRegularExpression.escapedPattern(for:))
        // Not a rate ("1일당") and not a longer word ("21세기", "1990년대").
        return try! NSRegularExpression(pattern: "(?<![0-9제~\\-])[0-9][0-9,.]*\\s?(?:" + units.joined(separator: "|") + ")(?![당기대])")
    }()
    static let definitionRegex = try! NSRegularExpression(pattern: "[\"“']?([가-힣A-Za-z0-9·]{2,15})[\"”']?(?:이)?란\\s+(.{2,60}?)(?:을|를)\\s?(?:말합니다|말한다|뜻합니다|의미합니다)")
    static let quotedRegex = try! NSRegularExpression(pattern: "[\"“「『']([가-힣A-Za-z0-9 ·]{2,20})[\"”」』']")
    static let entityRegex = try! NSRegularExpression(pattern: "(?:^|\\s)([가-힣]{1,12}(?:공단|위원회|법원|센터|공사|협회|감독원|은행|기관|보험사|재단|연구원|사무소|지원청|세무서|구청|시청))(?:은|는|이|가)\\s")

    /// Candidate questions for a chunk, at most `perChunk`, mixing kinds.
    public func questions(for chunk: Chunk) -> [SynthesizedQuestion] {
        var byKind: [String: [SynthesizedQuestion]] = [:]
        var order: [String] = []
        for sentence in SentenceSplitter.split(chunk.text) {
            for q in questions(sentence: sentence, chunk: chunk) {
                if byKind[q.generator] == nil { order.append(q.generator) }
                byKind[q.generator, default: []].append(q)
            }
        }
        // Kinds people ask about most first: names and terms before dates and amounts.
        order.sort { (Self.kindPriority.firstIndex(of: $0) ?? 99) < (Self.kindPriority.firstIndex(of: $1) ?? 99) }
        var out: [SynthesizedQuestion] = []
        var round = 0
        while out.count < perChunk {
            var added = false
            for k in order where round < byKind[k]!.count && out.count < perChunk {
                out.append(byKind[k]![round])
                added = true
            }
            if !added { break }
            round += 1
        }
        return out
    }

    static let kindPriority = ["extractive/definition", "extractive/term", "extractive/entity", "extractive/noun",
                               "extractive/date", "extractive/amount"]

    func questions(sentence: String, chunk: Chunk) -> [SynthesizedQuestion] {
        var out: [SynthesizedQuestion] = []
        func make(_ question: String, _ answer: String, _ kind: String) {
            let q = question.replacingOccurrences(of: "  ", with: " ").trimmingCharacters(in: .whitespaces)
            out.append(SynthesizedQuestion(id: "", question: q, answers: [answer], documentID: chunk.documentID, chunkID: chunk.id,
                                           evidence: sentence, generator: "extractive/" + kind))
        }
        let ns = sentence as NSString
        let whole = NSRange(location: 0, length: ns.length)
        // Definitions: "X"란 Y을 말합니다 → X이란 무엇인가요? (answer Y) and Y을 무엇이라고 하나요? (answer X).
        for m in Self.definitionRegex.matches(in: sentence, range: whole) {
            let term = ns.substring(with: m.range(at: 1)), meaning = ns.substring(with: m.range(at: 2))
            make("\(term)\(Self.hasBatchim(term) ? "이란" : "란") 무엇인가요?", meaning, "definition")
            make("\(meaning)\(Self.hasBatchim(meaning) ? "을" : "를") 무엇이라고 하나요?", term, "definition")
        }
        // Cloze spans: dates, amounts and counts, quoted terms.
        var spans: [Span] = []
        for m in Self.dateRegex.matches(in: sentence, range: whole) {
            // A date in parentheses is a birth date or an aside ("박대성(1978년 8월 ~ )"), not what the sentence says.
            guard let r = Range(m.range, in: sentence), !sentence[..<r.lowerBound].hasSuffix("(") else { continue }
            spans.append(Span(range: r, answer: String(sentence[r]), questionWord: "언제", kind: "date"))
        }
        for m in Self.numberRegex.matches(in: sentence, range: whole) {
            guard let r = Range(m.range, in: sentence), !spans.contains(where: { $0.range.overlaps(r) }) else { continue }
            let text = String(sentence[r])
            let unit = KoreanQuestions.units.first { text.hasSuffix($0.0) }
            spans.append(Span(range: r, answer: text, questionWord: unit?.1 ?? "몇", kind: "amount"))
        }
        for m in Self.quotedRegex.matches(in: sentence, range: whole) where Self.definitionRegex.firstMatch(in: sentence, range: whole) == nil {
            guard let r = Range(m.range, in: sentence), let inner = Range(m.range(at: 1), in: sentence) else { continue }
            spans.append(Span(range: r, answer: String(sentence[inner]), questionWord: "무엇", kind: "term"))
        }
        if let noun = Self.nounSpan(in: sentence, avoiding: spans.map(\.range)) { spans.append(noun) }
        for span in spans {
            var s = sentence
            var range = span.range
            var word = span.questionWord
            let after = sentence[span.range.upperBound...]
            // "2009년에" → "언제" (not "언제에"); "…"라는 → "무엇이라는".
            if span.kind == "date" {
                for particle in ["에는", "에", "부터", "까지"] where after.hasPrefix(particle) && !after.hasPrefix("에서") {
                    range = span.range.lowerBound..<sentence.index(span.range.upperBound, offsetBy: particle.count)
                    if particle == "에는" { word += "는" }
                    if particle == "부터" || particle == "까지" { word += particle }
                    break
                }
            }
            if span.kind == "term" {
                if after.hasPrefix("라") { word += "이" }
                // 무엇 ends in a consonant: the particle after a vowel-final term changes with it.
                for (vowelForm, consonantForm) in [("와", "과"), ("를", "을"), ("가", "이"), ("는", "은"), ("로", "으로")]
                    where after.hasPrefix(vowelForm) && !after.hasPrefix("로서") {
                    range = span.range.lowerBound..<sentence.index(span.range.upperBound, offsetBy: vowelForm.count)
                    word += consonantForm
                    break
                }
            }
            s.replaceSubrange(range, with: word)
            let cut = Self.endingClause(Self.clause(s, around: span.questionWord), after: span.questionWord)
            guard let q = cut.isQuestion ? (style == .haeyo ? cut.text : KoreanQuestions.restyle(cut.text, to: style)) : KoreanQuestions.question(from: cut.text, style: style),
                  q.count <= Self.longestQuestion else { continue }
            make(q, span.answer, span.kind)
        }
        // Institutions as subjects: "X공단은 …합니다" → "…하는 곳은 어디인가요?"
        for m in Self.entityRegex.matches(in: sentence, range: whole) {
            guard let r = Range(m.range, in: sentence), let name = Range(m.range(at: 1), in: sentence) else { continue }
            let rest = String(sentence[r.upperBound...])
            guard let relative = Self.adnominal(rest) else { continue }
            make("\(relative) 곳은 어디인가요?", String(sentence[name]), "entity")
        }
        return out
    }

    /// The clause holding `word`: from the last clause boundary before it (", ", "경우 ", "때 "), with
    /// leading connectives and a generic subject ("회사는") dropped.
    static func clause(_ s: String, around word: String) -> String {
        guard let at = s.range(of: word) else { return s }
        var start = s.startIndex
        for boundary in [", ", "경우 ", "때 ", "며 ", "고 "] {
            if let b = s.range(of: boundary, options: .backwards, range: s.startIndex..<at.lowerBound), b.upperBound > start {
                // Keep at least two words before the question word so the question still says what it is about.
                let words = s[b.upperBound..<at.lowerBound].split(separator: " ").count
                if words >= 2 { start = b.upperBound }
            }
        }
        var out = String(s[start...])
        var trimmed = true
        while trimmed {
            trimmed = false
            for prefix in leadingConnectives where out.hasPrefix(prefix) && out.count > prefix.count + 4 {
                out.removeFirst(prefix.count)
                out = out.trimmingCharacters(in: CharacterSet(charactersIn: ", "))
                trimmed = true
            }
        }
        return out
    }

    /// Words that tie a sentence to the one before it; a question read alone does without them.
    static let leadingConnectives = ["다만 ", "또한 ", "이 경우 ", "그리고 ", "회사는 ", "당사는 ", "이로 인해 ", "이로 인하여 ", "게다가 ",
                                     "연이어 ", "이에 대해 ", "이에 ", "당시 ", "그러나 ", "하지만 ", "또 ", "이 영향으로 ", "한편 ", "이때 ",
                                     "그 후 ", "이후 ", "결국 ", "그런데 ", "따라서 ", "그래서 ", "특히 ", "실제로 ", "이 밖에 ", "그 결과 "]

    /// Longer than this and a question reads like the sentence it came from, not like something a person asks.
    static let longestQuestion = 80

    /// A question that goes on past its own clause ("언제 공개됐고, 인터뷰에서 발표되기도 했나요?") ends at the
    /// first connective after the question word when that connective can be turned into a question
    /// ending: "공개됐고," → "공개됐나요?".
    static func endingClause(_ s: String, after word: String) -> (text: String, isQuestion: Bool) {
        guard let at = s.range(of: word) else { return (s, false) }
        let words = s[at.upperBound...].split(separator: " ", omittingEmptySubsequences: true)
        var consumed: [Substring] = []
        for w in words.dropLast() {
            let bare = w.hasSuffix(",") ? w.dropLast() : w
            for ending in ["으며", "는데", "지만", "고", "며"] where bare.hasSuffix(ending) {
                let stem = String(bare.dropLast(ending.count))
                if let ended = questionEnding(stem: stem) {
                    let head = String(s[..<at.upperBound])
                    let middle = (consumed.map(String.init) + [ended]).joined(separator: " ")
                    return (head + " " + middle + "?", true)
                }
            }
            consumed.append(w)
        }
        return (s, false)
    }

    /// "공개됐" → "공개됐나요", "담당하" → "담당하나요", "정치인이" → "정치인인가요"; nil for a stem that may be a noun ("최", "광").
    static func questionEnding(stem: String) -> String? {
        guard let last = stem.unicodeScalars.last, (0xAC00...0xD7A3).contains(last.value), stem.count >= 2 else { return nil }
        let jong = (last.value - 0xAC00) % 28
        if jong == 20 { return stem + "나요" }                                  // ㅆ: past tense (했, 됐, 었, 였)
        if ["하", "되", "있", "없"].contains(String(stem.suffix(1))) { return stem + "나요" }
        if stem.hasSuffix("이"), stem.count >= 3 { return String(stem.dropLast()) + "인가요" }
        return nil
    }

    /// Words too general to be an answer on their own.
    static let nounStopwords: Set<String> = ["것", "수", "등", "때", "경우", "이후", "이상", "이하", "당시", "이것", "그것", "자신", "우리",
        "그들", "이들", "하나", "사람", "일부", "부분", "모두", "다른", "이름", "대한", "관한", "위한", "통해", "사용", "정도", "가장",
        "이번", "최근", "또는", "그리고", "관련", "문제", "내용", "결과", "이유", "방법", "사실", "기간", "자리", "가운데", "이곳", "그곳",
        "여기", "거기", "무엇", "누구", "어디", "언제", "이전", "다음", "처음", "마지막", "동안", "사이", "중심", "이외", "그녀", "그는"]

    /// Particles after a noun answer: the form after a final consonant, the form after a vowel, the question word's form.
    static let nounParticles: [(consonant: String, vowel: String, question: String)] = [
        ("에서", "에서", "어디에서"), ("에게", "에게", "누구에게"), ("을", "를", "무엇을"), ("이", "가", "무엇이"), ("과", "와", "무엇과"),
    ]

    /// One noun phrase with a case particle ("학생회관 건물 계단에서" → "학생회관 건물 계단", "어디에서"), the
    /// latest in the sentence that overlaps no other span: the object or place nearest the predicate
    /// is what the sentence is about. Bare nouns before it (no particle, no verb ending) join the phrase.
    static func nounSpan(in sentence: String, avoiding taken: [Range<String.Index>]) -> Span? {
        var words: [Range<String.Index>] = []
        var i = sentence.startIndex
        while i < sentence.endIndex {
            while i < sentence.endIndex, sentence[i] == " " { i = sentence.index(after: i) }
            var j = i
            while j < sentence.endIndex, sentence[j] != " " { j = sentence.index(after: j) }
            if i < j { words.append(i..<j) }
            i = j
        }
        guard words.count >= 3 else { return nil }
        func isNounText(_ s: Substring) -> Bool {
            s.count >= 2 && s.count <= 12 && s.unicodeScalars.allSatisfy { (0xAC00...0xD7A3).contains($0.value) || CharacterSet.alphanumerics.contains($0) || $0 == "·" }
                && s.unicodeScalars.contains { (0xAC00...0xD7A3).contains($0.value) || CharacterSet.letters.contains($0) }
                && !s.unicodeScalars.allSatisfy { CharacterSet.decimalDigits.contains($0) }
        }
        func isBareNoun(_ s: Substring) -> Bool {
            guard isNounText(s), let last = s.last else { return false }
            return !"은는이가을를에의도로과와고며서다요한된던인할될적게히어여아지면니".contains(last) && !nounStopwords.contains(String(s))
        }
        // The last word carries the predicate: never the answer.
        for w in words.indices.dropLast().reversed() {
            let word = sentence[words[w]]
            for p in nounParticles {
                for (particle, needsBatchim) in [(p.consonant, true), (p.vowel, false)] where word.hasSuffix(particle) {
                    let stem = word.dropLast(particle.count)
                    // "남아있을 수", "사용하여": a verb stem before 을/이 is an ending, not a particle.
                    guard isNounText(stem), !nounStopwords.contains(String(stem)), let end = stem.last, !"있없했됐겠하되였었았".contains(end),
                          particle == "에서" || particle == "에게" || hasBatchim(String(stem)) == needsBatchim else { continue }
                    var first = w
                    while first > 0, w - first < 2, isBareNoun(sentence[words[first - 1]]) { first -= 1 }
                    let answerRange = words[first].lowerBound..<sentence.index(words[w].upperBound, offsetBy: -particle.count)
                    let replaced = words[first].lowerBound..<words[w].upperBound
                    guard !taken.contains(where: { $0.overlaps(replaced) }) else { continue }
                    let answer = String(sentence[answerRange])
                    guard answer.count <= 20 else { continue }
                    return Span(range: replaced, answer: answer, questionWord: p.question, kind: "noun")
                }
            }
        }
        return nil
    }

    /// "분쟁조정을 담당합니다." → "분쟁조정을 담당하는" (the predicate as a modifier of 곳).
    static func adnominal(_ predicate: String) -> String? {
        var s = predicate.trimmingCharacters(in: .whitespacesAndNewlines)
        while let last = s.last, ".!".contains(last) { s.removeLast() }
        for (ending, form) in [("있습니다", "있는"), ("없습니다", "없는"), ("됩니다", "되는"), ("합니다", "하는"), ("입니다", "인"),
                               ("한다", "하는"), ("된다", "되는"), ("있다", "있는")] where s.hasSuffix(ending) {
            return String(s.dropLast(ending.count)) + form
        }
        return nil
    }

    /// Whether the last Hangul syllable has a final consonant (이란 vs 란, 을 vs 를).
    static func hasBatchim(_ s: String) -> Bool {
        guard let u = s.unicodeScalars.last(where: { (0xAC00...0xD7A3).contains($0.value) }) else { return true }
        return (u.value - 0xAC00) % 28 != 0
    }
}
