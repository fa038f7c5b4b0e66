import DamdaCore
import Foundation

public struct SearchHit: Sendable {
    public var chunk: Chunk
    public var score: Float
    public var rank: Int
    public var tags: [String]
}

public struct SearchFilter: Sendable {
    public var sources: [String] = []
    public var tags: [String] = []
    public init(sources: [String] = [], tags: [String] = []) { self.sources = sources; self.tags = tags }
    var isEmpty: Bool { sources.isEmpty && tags.isEmpty }
}

public struct IngestSummary: Sendable, Codable {
    public var added = 0, updated = 0, skipped = 0, removed = 0, chunks = 0, problems = 0
    public var seconds = 0.0
}

public enum SearchMode: String, Sendable, CaseIterable { case bm25, vector, hybrid }

public enum RetrievalError: DamdaError {
    case analyzerMismatch(index: String, requested: String)
    case unknownAnalyzer(String)
    case noEmbeddings(SearchMode)
    public var message: String {
        switch self {
        case let .noEmbeddings(m): "\(m.rawValue) search needs chunk embeddings: fetch the embedding model (`damda model fetch --embedding`) and re-ingest, or use --mode bm25"
        case let .analyzerMismatch(i, r): "the index was built with the '\(i)' analyzer, not '\(r)': re-ingest into a new index to change it"
        case let .unknownAnalyzer(a): "unknown analyzer '\(a)' (whitespace, bigram, particle)"
        }
    }
}

/// A document index in a directory: the store plus in-memory BM25 postings built on open.
public final class SearchIndex: @unchecked Sendable {
    public let directory: URL
    public let store: any ChunkStore
    public let analyzer: any TextAnalyzer
    public var chunker: Chunker
    public let embedder: (any Embedder)?
    public var fusion: Fusion = .default
    private var chunks: [StoredChunk] = []
    private var bm25 = BM25Index(termFrequencies: [])
    private var vectors = ExactVectorIndex(dimension: 0, rows: [])

    /// Opens (or creates) the index at `directory`. The analyzer is fixed when the index is created.
    public init(directory: String, analyzer requested: String? = nil, chunker: Chunker = Chunker(), embedder: (any Embedder)? = nil) throws {
        self.embedder = embedder
        self.directory = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: self.directory.appendingPathComponent("index.sqlite").path)
        self.store = store
        let existing = try store.meta("analyzer")
        let name = existing ?? requested ?? Analyzers.default.name
        if let e = existing, let r = requested, e != r { throw RetrievalError.analyzerMismatch(index: e, requested: r) }
        guard let a = Analyzers.named(name) else { throw RetrievalError.unknownAnalyzer(name) }
        analyzer = a
        if existing == nil { try store.setMeta("analyzer", name) }
        self.chunker = chunker
        try reload()
    }

    public func reload() throws {
        chunks = try store.allChunks()
        bm25 = BM25Index(termFrequencies: chunks.map(\.termFrequencies))
        let dim = chunks.first(where: { !$0.embedding.isEmpty })?.embedding.count ?? 0
        vectors = ExactVectorIndex(dimension: dim, rows: chunks.map(\.embedding))
    }

    /// Whether every chunk has an embedding (vector and hybrid search need them).
    public var hasEmbeddings: Bool { vectors.count > 0 && chunks.allSatisfy { !$0.embedding.isEmpty } }

    public var chunkCount: Int { chunks.count }

    func termFrequencies(_ text: String) -> [String: Int] {
        var tf: [String: Int] = [:]
        for t in analyzer.terms(text) { tf[t, default: 0] += 1 }
        return tf
    }

    /// Adds new and changed documents, skips unchanged ones (same content hash), and with
    /// `prune` removes documents whose source file is among `loaded.sources` no longer.
    public func ingest(_ loaded: LoadResult, prune: Bool = false, batchSize: Int = 32, progress: Bool = true) throws -> IngestSummary {
        let start = Date()
        var summary = IngestSummary()
        summary.problems = loaded.problems.count
        let known = try store.documentHashes()
        let bar = progress ? ProgressBar(total: Int64(loaded.documents.count), label: "ingest", unit: "docs") : nil
        var batch: [IngestBatchItem] = []
        // Embedding dominates ingest time: the bar counts chunks once an embedder is present.
        func flush() throws {
            guard !batch.isEmpty else { return }
            if let e = embedder {
                let texts = batch.flatMap { $0.chunks.map(\.text) }
                let vecs = e.embed(passages: texts)
                var at = 0
                for i in batch.indices {
                    batch[i].embeddings = Array(vecs[at..<(at + batch[i].chunks.count)])
                    at += batch[i].chunks.count
                }
            }
            try store.replace(batch)
            batch = []
        }
        var seen = Set<String>()
        for (i, doc) in loaded.documents.enumerated() {
            seen.insert(doc.id)
            let hash = doc.contentHash
            if known[doc.id] == hash { summary.skipped += 1; bar?.update(to: Int64(i + 1)); continue }
            if known[doc.id] == nil { summary.added += 1 } else { summary.updated += 1 }
            let cs = chunker.chunk(doc)
            summary.chunks += cs.count
            batch.append(IngestBatchItem(document: doc, hash: hash, chunks: cs, terms: cs.map { termFrequencies($0.text) }, embeddings: []))
            if batch.count >= batchSize { try flush() }
            bar?.update(to: Int64(i + 1))
        }
        try flush()
        bar?.finish()
        if prune {
            let gone = try store.documents().filter { !seen.contains($0.id) }.map(\.id)
            try store.remove(documentIDs: gone)
            summary.removed = gone.count
        }
        try reload()
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

    public func search(_ query: String, k: Int = 5, mode: SearchMode = .bm25, filter: SearchFilter = SearchFilter()) throws -> [SearchHit] {
        let allowed: ((Int) -> Bool)? = filter.isEmpty ? nil : { [chunks] i in
            let c = chunks[i]
            return (filter.sources.isEmpty || filter.sources.contains { c.chunk.source.hasPrefix($0) })
                && (filter.tags.isEmpty || !Set(filter.tags).isDisjoint(with: c.tags))
        }
        let ranked: [(index: Int, score: Float)]
        switch mode {
        case .bm25:
            ranked = bm25.search(analyzer.terms(query), k: k, allowed: allowed)
        case .vector, .hybrid:
            guard let e = embedder, hasEmbeddings else { throw RetrievalError.noEmbeddings(mode) }
            let dense = vectors.search(e.embed(query: query), k: mode == .vector ? k : max(k, 50), allowed: allowed)
            ranked = mode == .vector ? dense : fusion.fuse(bm25.search(analyzer.terms(query), k: max(k, 50), allowed: allowed), dense, k: k)
        }
        return ranked.enumerated().map { r, hit in
            SearchHit(chunk: chunks[hit.index].chunk, score: hit.score, rank: r + 1, tags: chunks[hit.index].tags)
        }
    }
}
