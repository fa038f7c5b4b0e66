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
