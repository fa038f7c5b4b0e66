import Foundation

/// What two questions must share, word for word, before the semantic cache may answer one with the
/// other's answer: embeddings put "보험금을 청구할 수 있나요?" and "…없나요?" (or 3년 and 5년, 자동차보험
/// and 실손보험) close together, yet their answers differ. So a semantic hit needs, besides the
/// cosine, the same numbers with their units, the same negations, and each question's key terms
/// found in the other.
public struct QuestionSignature: Sendable, Equatable, Codable {
    /// Numbers with the unit after them ("3년", "50%", "1000만원"), in order.
    public var numbers: [String]
    /// Negation markers (않, 없, 못, 안, 아니, 불가, 금지, …), sorted, with repeats.
    public var negations: [String]
    /// Content words with particles and 하다/되다 endings cut off ("보험금을" → "보험금", "청구하려면" → "청구").
    public var keyTerms: [String]
    /// The question without spaces and punctuation: where the other question's key terms are looked for.
    public var compact: String

    public init(_ question: String) {
        let text = CacheKey.normalize(question)
        numbers = Self.numbers(in: text)
        var negs: [String] = []
        var terms: [String] = []
        for word in text.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init) {
            negs += Self.negations(in: word)
            if let t = Self.keyTerm(word) { terms.append(t) }
        }
        negations = negs.sorted()
        keyTerms = Array(Set(terms)).sorted()
        compact = String(text.filter { $0.isLetter || $0.isNumber })
    }

    /// Same numbers, same negations, and every key term of each found in the other.
    public func matches(_ other: QuestionSignature) -> Bool {
        numbers == other.numbers && negations == other.negations
            && keyTerms.allSatisfy { other.compact.contains($0) } && other.keyTerms.allSatisfy { compact.contains($0) }
    }

    static let units = ["개월", "만원", "천원", "억원", "퍼센트", "시간", "영업일", "년", "월", "일", "주", "세", "살", "원", "억", "만", "%", "회", "번", "개", "건", "명", "분", "초", "배", "조", "항", "호", "km", "kg", "cc"]

    static func numbers(in text: String) -> [String] {
        var out: [String] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            guard chars[i].isASCII, chars[i].isNumber else { i += 1; continue }
            var j = i
            while j < chars.count, (chars[j].isASCII && chars[j].isNumber) || ((chars[j] == "," || chars[j] == ".") && j + 1 < chars.count && chars[j + 1].isASCII && chars[j + 1].isNumber) { j += 1 }
            let number = String(chars[i..<j]).replacingOccurrences(of: ",", with: "")
            var k = j
            while k < chars.count, chars[k] == " " { k += 1 }
            let rest = String(chars[k..<min(k + 3, chars.count)])
            let unit = units.first { rest.hasPrefix($0) } ?? ""
            out.append(number + unit)
            i = j
        }
        return out
    }

    /// Syllables and words that turn a question into its opposite.
    static let negationMarkers = ["않", "없", "못", "아니", "아닌", "불가", "금지", "말아", "마세요", "말고", "제외", "미만", "초과"]

    static func negations(in word: String) -> [String] {
        var found = negationMarkers.filter { word.contains($0) }
        if found.contains("아닌") { found.removeAll { $0 == "아니" } }
        // "안" negates as a word of its own ("안 되나요", "안돼요"); inside 안내, 안전, 보안 it does not.
        if word == "안" || word.hasPrefix("안되") || word.hasPrefix("안돼") || word.hasPrefix("안됩") || word.hasPrefix("안해") || word.hasPrefix("안하") { found.append("안") }
        return found
    }

    static let particles = ["에서는", "으로는", "에게는", "까지는", "부터는", "이라도", "에서", "으로", "에게", "한테", "까지", "부터", "처럼", "보다", "이나", "라도", "마다",
                            "은", "는", "이", "가", "을", "를", "의", "에", "로", "와", "과", "도", "만", "나", "께", "요"]
    /// Words that carry no topic: fillers, pronouns, the question's own frame.
    static let fillers: Set<String> = ["수", "것", "거", "좀", "혹시", "제가", "저는", "저", "나", "내", "그", "이", "저희", "우리", "그럼", "그리고", "또", "및", "등",
                                       "있", "하", "되", "시", "때", "알려", "알려주세요", "궁금", "궁금해요", "궁금합니다", "여쭤", "문의", "말씀", "가요", "나요", "까요", "인가요", "건가요", "경우"]

    /// Copula and question endings cut before anything else ("언제까지인가요" → "언제까지").
    static let copulaEndings = ["인가요", "인가", "입니까", "입니다", "이에요", "예요", "이죠", "일까요", "인지요", "인지", "인데요", "이요", "이야"]
    /// Syllables a light verb (하다, 되다) ends with: "해야", "하나요", "합니까", "될까요" are no topic.
    static let lightVerbEndings: Set<Character> = ["야", "요", "서", "나", "면", "려", "는", "고", "니", "까", "습", "다", "세", "시", "게", "기", "죠", "든", "며", "라", "여", "였", "어", "아", "은", "을", "오"]

    /// The topic part of a word: copula endings and particles stripped, a 하다/되다 ending cut (하,
    /// 할, 한, 합, 해, 했, 되, 될, 된, 됩, 돼, 됐 after the first syllable), a lone predicate reduced
    /// to its first syllable ("받을까요" → "받"); nil for light verbs, fillers and negation-only words.
    static func keyTerm(_ rawWord: String) -> String? {
        var word = rawWord.lowercased()
        if negationMarkers.contains(where: { word.hasPrefix($0) }) || word == "안" { return nil }
        if let ending = copulaEndings.first(where: { word.count > $0.count && word.hasSuffix($0) }) { word.removeLast(ending.count) }
        let syllables = Array(word)
        if let first = syllables.first, isHaDoe(first), syllables.dropFirst().allSatisfy({ lightVerbEndings.contains($0) }) { return nil }
        if let cut = syllables.indices.dropFirst().first(where: { Self.isHaDoe(syllables[$0]) }) {
            word = String(syllables[..<cut])
        } else if let first = syllables.first, Self.predicateStarts.contains(first), syllables.count > 1 {
            word = String(first)
        } else {
            for p in particles where word.count > p.count && word.hasSuffix(p) {
                word.removeLast(p.count)
                break
            }
        }
        if word.isEmpty || fillers.contains(word) { return nil }
        if word.allSatisfy({ $0.isASCII && $0.isNumber }) { return nil }   // numbers are compared with their units
        return word
    }

    static let predicateStarts: Set<Character> = ["있", "싶", "받", "줄", "주", "드", "갈", "가", "올", "오", "볼", "보", "쓸", "써", "낼", "내", "알"]

    /// 하- and 되- syllables (하 할 한 합 함 해 했 / 되 될 된 됩 됨 돼 됐), the verb-making endings.
    static func isHaDoe(_ c: Character) -> Bool {
        guard let s = c.unicodeScalars.first, c.unicodeScalars.count == 1, (0xAC00...0xD7A3).contains(s.value) else { return false }
        let index = Int(s.value) - 0xAC00
        let initial = index / 588, vowel = (index % 588) / 28
        // Initial ㅎ (18) with ㅏ (0) or ㅐ (1); initial ㄷ (3) with ㅚ (11) or ㅙ (10).
        return (initial == 18 && (vowel == 0 || vowel == 1)) || (initial == 3 && (vowel == 11 || vowel == 10))
    }
}
