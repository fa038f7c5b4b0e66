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

    /// An answer draws on a chunk when it cites [n] or ≥ 60% of its (IDF-weighted) terms occur there.
    static func isUsed(answer: String, number: Int, chunkText: String, index: SearchIndex) -> Bool {
        if answer.contains("[\(number)]") { return true }
        let terms = index.queryTermWeights(answer)
        guard terms.count >= 2 else { return false }
        return index.coverage(of: answer, in: chunkText) >= 0.6
    }
}
