import Crypto
import DamdaCore
import DamdaEngine
import Foundation
import Synchronization

/// A document index in a directory: the store plus in-memory BM25 postings and vectors built on
/// open. Ingest lives in `Ingest/IngestPipeline.swift`, search in `Search/HybridSearch.swift`, the
/// HNSW graph file in `Search/HNSWCache.swift`.
public final class SearchIndex: @unchecked Sendable {
    public let directory: URL
    public let store: any ChunkStore
    public let analyzer: any TextAnalyzer
    public var chunker: Chunker
    public let embedder: (any Embedder)?
    public var fusion: Fusion = .default
    /// Whether weighted fusion scores every candidate with both BM25 and the vector (a chunk found
    /// by one list only otherwise counts as the other list's minimum).
    public var scoreCandidatesWithBoth = true
    /// Collections of at least this many chunks search vectors with HNSW instead of exactly.
    public var hnswThreshold: Int
    /// efSearch 256 reached recall@10 0.987 vs exact at 100k chunks in 1 ms (README, `damda bench scale`).
    public var hnswParameters = HNSWIndex.Parameters(efConstruction: 100, efSearch: 256)
    var chunks: [StoredChunk] = []
    /// `chunks.count` as `reload` (the one place that replaces `chunks`) left it, readable without
    /// the lock: an ingest holds the lock for minutes, and a health check or an answer's refusal
    /// reason only needs the count.
    private let chunkTotal = Atomic<Int>(0)
    var bm25 = BM25Index(termFrequencies: [])
    /// Serializes reads against writes: the server ingests while it answers, and the e5 encoder
    /// keeps scratch buffers, so one embedding runs at a time. Recursive, so work run under
    /// `withLock` may search or ingest.
    let lock = NSRecursiveLock()

    /// Runs `body` under the index lock (searches and ingests take it themselves).
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
    /// BM25's k1, b and document weight; changing them rebuilds the in-memory postings (the store
    /// keeps raw term counts).
    public var bm25Parameters = BM25Index.Parameters() {
        didSet { if bm25Parameters != oldValue { rebuildBM25() } }
    }

    func rebuildBM25() {
        bm25 = BM25Index(termFrequencies: chunks.map(\.termFrequencies), documentIDs: chunks.map(\.chunk.documentID), parameters: bm25Parameters)
    }
    var vectors: any VectorIndex = ExactVectorIndex(dimension: 0, rows: [])
    /// "exact", "hnsw" or the store's own ("pgvector-hnsw"), for reports.
    public var vectorIndexKind: String { withLock { vectors.kind } }
    /// Whether the chunks' vectors are searched where they are stored (they are not in `indexedChunks`).
    public var vectorsInStore: Bool { !(vectors is HNSWIndex || vectors is ExactVectorIndex) }

    /// Opens (or creates) the index at `directory`. The analyzer is fixed when the index is created.
    public convenience init(directory: String, analyzer requested: String? = nil, chunker: Chunker = Chunker(), embedder: (any Embedder)? = nil,
                            hnswThreshold: Int = 20_000) throws {
        try Self.requireDirectory(directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: URL(fileURLWithPath: directory).appendingPathComponent("index.sqlite").path)
        try self.init(directory: directory, store: store, analyzer: requested, chunker: chunker, embedder: embedder, hnswThreshold: hnswThreshold)
    }

    /// A path that exists must be a directory: `--index DIR/index.sqlite` is a common slip, and
    /// creating the directory over it fails with a message that names neither.
    static func requireDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw RetrievalError.indexIsAFile(path)
        }
    }

    /// An index over any store (SQLite, PostgreSQL); `directory` holds derived files (the HNSW graph).
    public init(directory: String, store: any ChunkStore, analyzer requested: String? = nil, chunker: Chunker = Chunker(),
                embedder: (any Embedder)? = nil, hnswThreshold: Int = 20_000) throws {
        self.embedder = embedder
        self.hnswThreshold = hnswThreshold
        self.directory = URL(fileURLWithPath: directory)
        try Self.requireDirectory(directory)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.store = store
        let existing = try store.meta("analyzer")
        let name = existing ?? requested ?? Analyzers.default.name
        if let e = existing, let r = requested, e != r { throw RetrievalError.analyzerMismatch(index: e, requested: r) }
        guard let a = Analyzers.named(name) else { throw RetrievalError.unknownAnalyzer(name) }
        analyzer = a
        if existing == nil {
            try store.setMeta("analyzer", name)
            try store.setMeta("bm25_fields", Self.termFields)
        }
        legacyTerms = try store.meta("bm25_fields") != Self.termFields
        self.chunker = chunker
        try reload()
    }

    /// What each chunk's BM25 terms are drawn from. The title says what a chunk is about even where
    /// its text does not name it (KorQuAD: BM25 R@1/R@5/MRR .931/.991/.958 from the text alone,
    /// .940/.997/.966 with the article title). Headings stay out: indexed too, the sample FAQ's
    /// question headings pushed the right article out of a paraphrase's hybrid top 3.
    static let termFields = "title+text"
    /// An index written before titles were indexed (its stored terms are the text's alone): terms
    /// are recomputed from the stored chunks when it is opened.
    let legacyTerms: Bool

    /// The BM25 term counts of a chunk: its document's title and its text.
    func chunkTerms(_ c: Chunk) -> [String: Int] {
        termFrequencies(c.title + "\n" + c.text)
    }

    public func reload() throws {
        lock.lock()
        defer { lock.unlock() }
        let before = documentHashes
        documentHashes = try store.documentHashes()
        contentDigest = Self.digest(documentHashes ?? [:])
        let inPlace = (store as? any VectorSearchingStore).flatMap { $0.searchesVectorsInPlace ? $0 : nil }
        chunks = try inPlace?.allChunksWithoutEmbeddings() ?? store.allChunks()
        chunkTotal.store(chunks.count, ordering: .relaxed)
        if legacyTerms { for i in chunks.indices { chunks[i].termFrequencies = chunkTerms(chunks[i].chunk) } }
        rebuildBM25()
        if let inPlace {
            vectors = try inPlace.vectorIndex(rows: chunks.map(\.rowID))
            everyChunkEmbedded = !chunks.isEmpty && vectors.count == chunks.count
        } else {
            let dim = chunks.first(where: { !$0.embedding.isEmpty })?.embedding.count ?? 0
            let exact = ExactVectorIndex(dimension: dim, rows: chunks.map(\.embedding))
            vectors = exact.count >= hnswThreshold && dim > 0 ? try loadOrBuildHNSW(exact) : exact
            everyChunkEmbedded = chunks.allSatisfy { !$0.embedding.isEmpty }
        }
        if let before {
            let change = IndexChange(before: before, after: documentHashes ?? [:])
            if !change.isEmpty { for observer in observers { observer(change) } }
        }
    }

    /// Each document's content hash as of the last reload (nil before the first): what an answer
    /// cache checks its entries' sources against.
    var documentHashes: [String: String]?
    var observers: [@Sendable (IndexChange) -> Void] = []

    /// A digest of every document id and content hash: changes whenever a document is added,
    /// changed or removed.
    public var contentVersion: String { withLock { contentDigest } }
    var contentDigest = ""

    static func digest(_ hashes: [String: String]) -> String {
        let pairs = hashes.sorted { $0.key < $1.key }.map { $0.key + ":" + $0.value }.joined(separator: "\n")
        return SHA256.hash(data: Data(pairs.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// The content hash of a document as searched now, nil when the index does not hold it.
    public func documentHash(_ id: String) -> String? { withLock { documentHashes?[id] } }

    /// Calls `observer` after every reload that added, changed or removed documents (ingest,
    /// delete, or a reload that finds another process's writes).
    public func observeChanges(_ observer: @escaping @Sendable (IndexChange) -> Void) { withLock { observers.append(observer) } }

    /// Whether every chunk has an embedding (vector and hybrid search need them).
    public var hasEmbeddings: Bool { vectors.count > 0 && everyChunkEmbedded }
    var everyChunkEmbedded = false

    public var chunkCount: Int { chunkTotal.load(ordering: .relaxed) }

    /// Every chunk as searched: the store's rows with the BM25 terms in use (recomputed for an index
    /// written before titles were indexed).
    public var indexedChunks: [StoredChunk] { chunks }

    /// A document's chunks in order (empty for an unknown id).
    public func chunks(ofDocument id: String) -> [Chunk] { chunks.lazy.map(\.chunk).filter { $0.documentID == id } }

    func termFrequencies(_ text: String) -> [String: Int] { analyzer.termFrequencies(text) }

}

/// The documents one reload added, changed (new content hash) and removed.
public struct IndexChange: Sendable, Equatable {
    public var added: Set<String> = []
    public var changed: Set<String> = []
    public var removed: Set<String> = []
    public var isEmpty: Bool { added.isEmpty && changed.isEmpty && removed.isEmpty }

    public init(added: Set<String> = [], changed: Set<String> = [], removed: Set<String> = []) {
        self.added = added; self.changed = changed; self.removed = removed
    }

    init(before: [String: String], after: [String: String]) {
        for (id, hash) in after {
            if let old = before[id] { if old != hash { changed.insert(id) } } else { added.insert(id) }
        }
        removed = Set(before.keys.filter { after[$0] == nil })
    }
}
