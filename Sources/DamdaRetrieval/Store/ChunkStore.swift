/// A chunk as stored, with its analyzed term frequencies (the BM25 postings' source).
public struct StoredChunk: Sendable {
    public var rowID: Int64
    public var chunk: Chunk
    public var tags: [String]
    public var termFrequencies: [String: Int]
    /// Unit vector from the index's embedder, empty when the index has none.
    public var embedding: [Float]

    public init(rowID: Int64, chunk: Chunk, tags: [String], termFrequencies: [String: Int], embedding: [Float]) {
        self.rowID = rowID; self.chunk = chunk; self.tags = tags; self.termFrequencies = termFrequencies; self.embedding = embedding
    }
}

public struct StoredDocument: Sendable, Equatable {
    public var id: String
    public var title: String
    public var source: String
    public var hash: String
    public var chunks: Int

    public init(id: String, title: String, source: String, hash: String, chunks: Int) {
        self.id = id; self.title = title; self.source = source; self.hash = hash; self.chunks = chunks
    }
}

/// Where documents, chunks and their index data live. SQLite (GRDB) is the embedded default;
/// PostgreSQL + pgvector (module DamdaPostgres) the shared one.
public protocol ChunkStore: Sendable {
    func documentHashes() throws -> [String: String]
    /// Replaces each document's chunks atomically: all of a batch or none of it is written.
    func replace(_ batch: [IngestBatchItem]) throws
    func remove(documentIDs: [String]) throws
    func documents() throws -> [StoredDocument]
    func allChunks() throws -> [StoredChunk]
    func setMeta(_ key: String, _ value: String) throws
    func meta(_ key: String) throws -> String?
}

/// One document's replacement: its chunks with their terms and (optionally) embeddings.
public struct IngestBatchItem: Sendable {
    public var document: Document
    public var hash: String
    public var chunks: [Chunk]
    public var terms: [[String: Int]]
    public var embeddings: [[Float]]

    public init(document: Document, hash: String, chunks: [Chunk], terms: [[String: Int]], embeddings: [[Float]]) {
        self.document = document; self.hash = hash; self.chunks = chunks; self.terms = terms; self.embeddings = embeddings
    }
}

/// A store that searches its own embeddings (PostgreSQL with pgvector's HNSW index): an index over
/// it loads chunks without their vectors and asks the store for nearest neighbours instead, so no
/// server process holds every embedding in memory.
public protocol VectorSearchingStore: ChunkStore {
    /// Whether vector search runs in the store (else the index loads the vectors as usual).
    var searchesVectorsInPlace: Bool { get }
    /// Every chunk, its `embedding` left empty.
    func allChunksWithoutEmbeddings() throws -> [StoredChunk]
    /// A vector index over the stored embeddings of `rows` (chunk row ids, in the index's order:
    /// search results come back as positions in this list).
    func vectorIndex(rows: [Int64]) throws -> any VectorIndex
}
