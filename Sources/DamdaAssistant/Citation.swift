import DamdaRetrieval

/// A chunk the answer was given, with where it came from and how it relates to the answer.
public struct Citation: Sendable, Codable, Equatable {
    public var n: Int
    public var chunkID: String
    public var documentID: String
    public var title: String
    public var source: String
    public var page: Int?
    public var heading: [String]
    public var score: Float
    public var relevance: Float
    public var text: String
    /// The chunk's sentence that best matches the question: with a base model, the sources carry the answer.
    public var bestSentence: String
    /// Whether the answer draws on this chunk (cited as [n], or most of its terms occur in the chunk).
    public var used: Bool

    enum CodingKeys: String, CodingKey {
        case n, title, source, page, heading, score, relevance, text, used
        case chunkID = "chunk_id", documentID = "document_id", bestSentence = "best_sentence"
    }

    /// "title — source › heading (p.N)", as the CLI prints it.
    public var location: String {
        var loc = source
        if !heading.isEmpty { loc += " › " + heading.joined(separator: " › ") }
        if let p = page { loc += " (p.\(p))" }
        return "\(title) — \(loc)"
    }
}

public enum Grounding {
    /// Index of the sentence of `sentences` with the highest question-term coverage (first on ties).
    public static func bestSentence(_ sentences: [String], question: String, index: SearchIndex) -> Int {
        let weights = index.queryTermWeights(question)
        var best = 0
        var bestScore: Float = -1
        for (i, s) in sentences.enumerated() {
            let score = SearchIndex.coverage(weights, index.analyzer.terms(s).reduce(into: [:]) { $0[$1, default: 0] += 1 })
            if score > bestScore { best = i; bestScore = score }
        }
        return best
    }

    /// An answer draws on a chunk when it cites [n], when its content units (syllable bigrams,
    /// numbers: a short answer such as "5만원") all occur there, or when ≥ 60% of its
    /// (IDF-weighted) terms occur there.
    static func isUsed(answer: String, number: Int, chunkText: String, index: SearchIndex) -> Bool {
        if answer.contains("[\(number)]") { return true }
        if !contentUnits(answer).isEmpty, support(of: answer, in: [chunkText]) == 1 { return true }
        let terms = index.queryTermWeights(answer)
        guard terms.count >= 2 else { return false }
        return index.coverage(of: answer, in: chunkText) >= 0.6
    }

    /// Share of the answer's content units found in `texts`: Hangul syllable bigrams and
    /// runs of digits (spaces and punctuation removed first, so "5만 원" matches "5만원"), or
    /// single syllables for a one-syllable answer. 0 means the answer has nothing in common
    /// with its sources.
    public static func support(of answer: String, in texts: [String]) -> Double {
        let units = contentUnits(answer)
        guard !units.isEmpty else { return 1 }
        let source = texts.map(squeezed).joined(separator: "\u{0}")
        return Double(units.filter { source.contains($0) }.count) / Double(units.count)
    }

    static func squeezed(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.filter { $0.properties.isAlphabetic || ("0"..."9").contains($0) }.map(Character.init))
    }

    static func isHangul(_ c: Character) -> Bool { c.unicodeScalars.first.map { (0xAC00...0xD7A3).contains($0.value) } ?? false }

    /// Syllable bigrams within Hangul runs, digit runs, and Latin words of 2+ letters.
    static func contentUnits(_ answer: String) -> Set<String> {
        var units = Set<String>()
        for word in answer.lowercased().split(whereSeparator: { !($0.isLetter || $0.isNumber) }) {
            let w = Array(word)
            var i = 0
            while i < w.count {
                var j = i
                if isHangul(w[i]) {
                    while j < w.count, isHangul(w[j]) { j += 1 }
                    let run = Array(w[i..<j])
                    if run.count == 1 { units.insert(String(run)) }
                    for k in 0..<max(run.count - 1, 0) { units.insert(String(run[k...k + 1])) }
                } else if w[i].isNumber {
                    while j < w.count, w[j].isNumber { j += 1 }
                    units.insert(String(w[i..<j]))
                } else {
                    while j < w.count, !isHangul(w[j]), !w[j].isNumber { j += 1 }
                    if j - i >= 2 { units.insert(String(w[i..<j])) }
                }
                i = max(j, i + 1)
            }
        }
        return units
    }
}
