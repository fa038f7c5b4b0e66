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
        return try! NSRegularExpression(pattern: "(?<![0-9제])[0-9][0-9,.]*\\s?(?:" + units.joined(separator: "|") + ")(?![당기대])")
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
            if let r = Range(m.range, in: sentence) { spans.append(Span(range: r, answer: String(sentence[r]), questionWord: "언제", kind: "date")) }
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
        for span in spans {
            var s = sentence
            var range = span.range
            var word = span.questionWord
            let after = sentence[span.range.upperBound...]
            // "2009년에" → "언제" (not "언제에"); "…"라는 → "무엇이라는".
            if span.kind == "date" {
                for particle in ["에는", "에"] where after.hasPrefix(particle) && !after.hasPrefix("에서") {
                    range = span.range.lowerBound..<sentence.index(span.range.upperBound, offsetBy: particle.count)
                    if particle == "에는" { word += "는" }
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
            guard let q = KoreanQuestions.question(from: Self.clause(s, around: span.questionWord), style: style) else { continue }
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
        for prefix in ["다만 ", "또한 ", "이 경우 ", "그리고 ", "회사는 ", "당사는 "] where out.hasPrefix(prefix) {
            out.removeFirst(prefix.count)
        }
        return out
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
