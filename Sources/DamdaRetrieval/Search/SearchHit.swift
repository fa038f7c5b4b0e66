import Foundation

public struct SearchHit: Sendable {
    public var chunk: Chunk
    public var score: Float
    public var rank: Int
    public var tags: [String]
    /// Absolute relevance in [0, 1]: the IDF-weighted share of the query's terms found in the
    /// chunk. Fused scores are relative to the other hits, so refusal thresholds use this.
    public var relevance: Float
    /// Cosine of the query's and the chunk's embeddings (vector and hybrid search; nil for BM25):
    /// a paraphrase that shares few words with the chunk can still be close in meaning.
    public var similarity: Float?

    public init(chunk: Chunk, score: Float, rank: Int, tags: [String] = [], relevance: Float, similarity: Float? = nil) {
        self.chunk = chunk; self.score = score; self.rank = rank; self.tags = tags; self.relevance = relevance
        self.similarity = similarity
    }
}

public struct SearchFilter: Sendable {
    public var sources: [String] = []
    public var tags: [String] = []
    /// Documents left out (evaluation: a question with its own article hidden is unanswerable).
    public var excludedDocuments: Set<String> = []
    public init(sources: [String] = [], tags: [String] = [], excludedDocuments: Set<String> = []) {
        self.sources = sources; self.tags = tags; self.excludedDocuments = excludedDocuments
    }
    var isEmpty: Bool { sources.isEmpty && tags.isEmpty && excludedDocuments.isEmpty }
}

public enum SearchMode: String, Sendable, CaseIterable { case bm25, vector, hybrid }


/// A search's hits in rank order with the query's terms, so relevance and grounding (coverage,
/// best sentences) are judged against the same terms and IDF the search used.
public struct SearchResult: RandomAccessCollection, Sendable {
    public var hits: [SearchHit]
    public let terms: QueryTerms

    public init(hits: [SearchHit], terms: QueryTerms) { self.hits = hits; self.terms = terms }

    public var startIndex: Int { hits.startIndex }
    public var endIndex: Int { hits.endIndex }
    public subscript(position: Int) -> SearchHit { hits[position] }
}

/// `damda search --json`'s hit: where the chunk is from, its scores and its text.
extension SearchHit: Encodable {
    enum CodingKeys: String, CodingKey {
        case rank, score, title, source, heading, page, relevance, similarity, text, tags
        case chunkID = "chunk_id", documentID = "document_id"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rank, forKey: .rank); try c.encode(score, forKey: .score)
        try c.encode(chunk.id, forKey: .chunkID); try c.encode(chunk.documentID, forKey: .documentID)
        try c.encode(chunk.title, forKey: .title); try c.encode(chunk.source, forKey: .source)
        try c.encode(chunk.headingPath, forKey: .heading); try c.encode(chunk.page, forKey: .page)   // null, not absent
        try c.encode(relevance, forKey: .relevance); try c.encode(similarity, forKey: .similarity)
        try c.encode(tags, forKey: .tags); try c.encode(chunk.text, forKey: .text)
    }
}
