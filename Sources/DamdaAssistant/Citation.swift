import DamdaDatasets
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

    public init(n: Int, chunkID: String, documentID: String, title: String, source: String, page: Int?, heading: [String],
                score: Float, relevance: Float, text: String, bestSentence: String, used: Bool) {
        self.n = n; self.chunkID = chunkID; self.documentID = documentID; self.title = title; self.source = source; self.page = page
        self.heading = heading; self.score = score; self.relevance = relevance; self.text = text; self.bestSentence = bestSentence; self.used = used
    }

    enum CodingKeys: String, CodingKey {
        case n, title, source, page, heading, score, relevance, text, used
        case chunkID = "chunk_id", documentID = "document_id", bestSentence = "best_sentence"
    }

    /// The prompt's context these citations were given as: the served context, rebuilt exactly
    /// (a feedback export pairs a correction with it).
    public static func context(_ citations: [Citation]) -> String {
        ContextBuilder.render(citations.map { (ContextBuilder.header($0.n, title: $0.title, headingPath: $0.heading, page: $0.page), $0.text) })
    }

    /// "title — source › heading (p.N)", as the CLI prints it.
    public var location: String {
        var loc = source
        if !heading.isEmpty { loc += " › " + heading.joined(separator: " › ") }
        if let p = page { loc += " (p.\(p))" }
        return "\(title) — \(loc)"
    }
}

extension Citation {
    /// Chunk `hit` given to the model as [n], as `text` (the whole chunk, or the sentences that fit).
    public init(n: Int, hit: SearchHit, text: String? = nil, bestSentence: String = "", used: Bool = false) {
        self.n = n; chunkID = hit.chunk.id; documentID = hit.chunk.documentID; title = hit.chunk.title
        source = hit.chunk.source; page = hit.chunk.page; heading = hit.chunk.headingPath
        score = hit.score; relevance = hit.relevance; self.text = text ?? hit.chunk.text
        self.bestSentence = bestSentence; self.used = used
    }
}
