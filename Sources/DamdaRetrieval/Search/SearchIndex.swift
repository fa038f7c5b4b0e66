import Crypto
import DamdaCore
import DamdaEngine
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
    /// Collections of at least this many chunks search vectors with HNSW instead of exactly.
    public var hnswThreshold: Int
    /// efSearch 256 reached recall@10 0.987 vs exact at 100k chunks in 1 ms (README, `damda bench scale`).
    public var hnswParameters = HNSWIndex.Parameters(efConstruction: 100, efSearch: 256)
    private var chunks: [StoredChunk] = []
    private var bm25 = BM25Index(termFrequencies: [])
    /// BM25's k1, b and document weight; changing them rebuilds the in-memory postings (the store
    /// keeps raw term counts).
    public var bm25Parameters = BM25Index.Parameters() {
        didSet { if bm25Parameters != oldValue { rebuildBM25() } }
    }

    func rebuildBM25() {
        bm25 = BM25Index(termFrequencies: chunks.map(\.termFrequencies), documentIDs: chunks.map(\.chunk.documentID), parameters: bm25Parameters)
    }
    private var vectors: any VectorIndex = ExactVectorIndex(dimension: 0, rows: [])
    /// "exact" or "hnsw", for reports.
    public var vectorIndexKind: String { vectors is HNSWIndex ? "hnsw" : "exact" }

    /// Opens (or creates) the index at `directory`. The analyzer is fixed when the index is created.
    public convenience init(directory: String, analyzer requested: String? = nil, chunker: Chunker = Chunker(), embedder: (any Embedder)? = nil,
                            hnswThreshold: Int = 20_000) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: URL(fileURLWithPath: directory).appendingPathComponent("index.sqlite").path)
        try self.init(directory: directory, store: store, analyzer: requested, chunker: chunker, embedder: embedder, hnswThreshold: hnswThreshold)
    }

    /// An index over any store (SQLite, PostgreSQL); `directory` holds derived files (the HNSW graph).
    public init(directory: String, store: any ChunkStore, analyzer requested: String? = nil, chunker: Chunker = Chunker(),
                embedder: (any Embedder)? = nil, hnswThreshold: Int = 20_000) throws {
        self.embedder = embedder
        self.hnswThreshold = hnswThreshold
        self.directory = URL(fileURLWithPath: directory)
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
        chunks = try store.allChunks()
        if legacyTerms { for i in chunks.indices { chunks[i].termFrequencies = chunkTerms(chunks[i].chunk) } }
        rebuildBM25()
        let dim = chunks.first(where: { !$0.embedding.isEmpty })?.embedding.count ?? 0
        let exact = ExactVectorIndex(dimension: dim, rows: chunks.map(\.embedding))
        vectors = exact.count >= hnswThreshold && dim > 0 ? try loadOrBuildHNSW(exact) : exact
    }

    /// The graph is saved beside the store, keyed by the chunk rows and parameters it was built
    /// from; any ingest that changes the rows rebuilds it.
    func loadOrBuildHNSW(_ exact: ExactVectorIndex) throws -> HNSWIndex {
        var h = SHA256()
        for c in chunks { withUnsafeBytes(of: c.rowID) { h.update(bufferPointer: $0) } }
        h.update(data: Data("\(hnswParameters.m)/\(hnswParameters.efConstruction)/\(hnswParameters.seed)/\(exact.dimension)".utf8))
        let fingerprint = h.finalize().map { String(format: "%02x", $0) }.joined()
        let file = directory.appendingPathComponent("hnsw.bin")
        if try store.meta("hnsw_fingerprint") == fingerprint, let data = try? Data(contentsOf: file),
           let g = HNSWIndex(serialized: data, dimension: exact.dimension, vectors: exact.flat) {
            g.parameters.efSearch = hnswParameters.efSearch
            return g
        }
        let bar = ProgressBar(total: Int64(exact.count), label: "hnsw", unit: "vectors")
        let g = HNSWIndex(dimension: exact.dimension, vectors: exact.flat, parameters: hnswParameters) { bar.update(to: Int64($0)) }
        bar.finish()
        // Written to a temporary name and renamed: a kill mid-write leaves the old graph or none.
        let tmp = directory.appendingPathComponent("hnsw.bin.tmp")
        try g.serialized().write(to: tmp)
        guard rename(tmp.path, file.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        try store.setMeta("hnsw_fingerprint", fingerprint)
        return g
    }

    /// Whether every chunk has an embedding (vector and hybrid search need them).
    public var hasEmbeddings: Bool { vectors.count > 0 && chunks.allSatisfy { !$0.embedding.isEmpty } }

    public var chunkCount: Int { chunks.count }

    /// Every chunk as searched: the store's rows with the BM25 terms in use (recomputed for an index
    /// written before titles were indexed).
    public var indexedChunks: [StoredChunk] { chunks }

    /// A document's chunks in order (empty for an unknown id).
    public func chunks(ofDocument id: String) -> [Chunk] { chunks.lazy.map(\.chunk).filter { $0.documentID == id } }

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
            batch.append(IngestBatchItem(document: doc, hash: hash, chunks: cs, terms: cs.map(chunkTerms), embeddings: []))
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

    /// The `k` best chunks for `query`. With `perDocument` > 0 at most that many chunks of one
    /// document are kept (the rest of its chunks give way to other documents), so the top k covers
    /// more documents, as a search over whole documents would.
    public func search(_ query: String, k: Int = 5, mode: SearchMode = .bm25, filter: SearchFilter = SearchFilter(),
                       perDocument: Int = 0) throws -> [SearchHit] {
        let allowed: ((Int) -> Bool)? = filter.isEmpty ? nil : { [chunks] i in
            let c = chunks[i]
            return (filter.sources.isEmpty || filter.sources.contains { c.chunk.source.hasPrefix($0) })
                && (filter.tags.isEmpty || !Set(filter.tags).isDisjoint(with: c.tags))
                && !filter.excludedDocuments.contains(c.chunk.documentID)
        }
        let terms = analyzer.terms(query)
        let q: [Float]?
        if mode == .bm25 {
            q = nil
        } else {
            guard let e = embedder, hasEmbeddings else { throw RetrievalError.noEmbeddings(mode) }
            q = e.embed(query: query)
        }
        func rank(_ k: Int) -> [(index: Int, score: Float)] {
            switch mode {
            case .bm25:
                return bm25.search(terms, k: k, allowed: allowed)
            case .vector, .hybrid:
                let dense = vectors.search(q!, k: mode == .vector ? k : max(k, 50), allowed: allowed)
                if mode == .vector { return dense }
                let both: Bool
                if case .weighted = fusion { both = scoreCandidatesWithBoth } else { both = false }
                let (lexical, vector) = hybridCandidates(terms, q!, dense: dense, k: max(k, 50), allowed: allowed, scoredByBoth: both)
                return fusion.fuse(lexical, vector, k: k)
            }
        }
        var ranked: [(index: Int, score: Float)]
        if perDocument > 0 {
            // Collapse a longer list; widen it until k hits survive or every chunk was ranked.
            var depth = k
            repeat {
                depth = min(depth * 4, max(chunks.count, 1))
                ranked = Self.collapse(rank(depth), perDocument: perDocument, k: k) { chunks[$0].chunk.documentID }
            } while ranked.count < k && depth < chunks.count
        } else {
            ranked = rank(k)
        }
        let weights = queryTermWeights(query)
        return ranked.enumerated().map { r, hit in
            let similarity = q.map { q in
                chunks[hit.index].embedding.withUnsafeBufferPointer { c in q.withUnsafeBufferPointer { dotF32(c.baseAddress!, $0.baseAddress!, q.count) } }
            }
            return SearchHit(chunk: chunks[hit.index].chunk, score: hit.score, rank: r + 1, tags: chunks[hit.index].tags,
                             relevance: Self.coverage(weights, chunks[hit.index].termFrequencies), similarity: similarity)
        }
    }

    /// The first `k` entries of `ranked` keeping at most `perDocument` per document.
    public static func collapse(_ ranked: [(index: Int, score: Float)], perDocument: Int, k: Int,
                         document: (Int) -> String) -> [(index: Int, score: Float)] {
        var seen: [String: Int] = [:]
        var kept: [(index: Int, score: Float)] = []
        for hit in ranked where kept.count < k {
            let d = document(hit.index)
            guard seen[d, default: 0] < perDocument else { continue }
            seen[d, default: 0] += 1
            kept.append(hit)
        }
        return kept
    }

    /// Whether weighted fusion scores every candidate with both BM25 and the vector (a chunk found
    /// by one list only otherwise counts as the other list's minimum).
    public var scoreCandidatesWithBoth = true

    /// BM25's and the vector index's top `k`, for weighted fusion completed over their union: each
    /// candidate gets its BM25 score (0 without a query term) and its cosine with the query.
    func hybridCandidates(_ terms: [String], _ q: [Float], dense: [(index: Int, score: Float)], k: Int, allowed: ((Int) -> Bool)?,
                          scoredByBoth: Bool) -> (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)]) {
        var (scores, touched) = bm25.scores(terms)
        let lexical = BM25Index.top(k, of: &touched, scores: scores, allowed: allowed)
        guard scoredByBoth else { return (lexical, dense) }
        return Fusion.scoredByBoth(lexical, dense, lexicalScore: { scores[$0] }) { i in
            chunks[i].embedding.withUnsafeBufferPointer { c in q.withUnsafeBufferPointer { dotF32(c.baseAddress!, $0.baseAddress!, q.count) } }
        }
    }

    /// The two lists hybrid search fuses (by chunk number), with or without every candidate scored
    /// by both retrievers, so fusion settings can be compared without embedding the query again.
    public func candidateLists(_ query: String, vector q: [Float], k: Int, scoredByBoth: Bool)
        -> (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)]) {
        hybridCandidates(analyzer.terms(query), q, dense: vectors.search(q, k: k, allowed: nil), k: k, allowed: nil, scoredByBoth: scoredByBoth)
    }

    /// The query's embedding (what vector and hybrid search compare chunks with).
    public func embed(query: String) throws -> [Float] {
        guard let e = embedder, hasEmbeddings else { throw RetrievalError.noEmbeddings(.hybrid) }
        return e.embed(query: query)
    }

    /// The document of chunk number `i` (as in `candidateLists`).
    public func documentID(ofChunk i: Int) -> String { chunks[i].chunk.documentID }

    /// The query's words, each as its leading analyzed term (a Hangul word's stem bigram, not its
    /// particle) weighted by IDF. Ending bigrams such as 하면/나요 are rare in documents, so scoring
    /// every term would make even a good match look irrelevant.
    /// Question words and light verbs carry no topic ("얼마 받나요", "어떻게 되나요").
    public func queryTermWeights(_ query: String) -> [String: Float] {
        var w: [String: Float] = [:]
        for word in query.split(whereSeparator: { $0.isWhitespace }) {
            guard let t = analyzer.terms(String(word)).first, !Self.questionWords.contains(where: { t.hasPrefix($0) }) else { continue }
            w[t] = bm25.idf(t)
        }
        return w
    }

    static let questionWords = ["얼마", "어떻", "어떤", "어느", "무엇", "무슨", "뭐", "뭔", "언제", "어디", "누구", "누가", "왜", "몇",
                                "있나", "있는", "있을", "있습", "없나", "되나", "되는", "하나", "하는", "할까", "합니", "받나", "받을",
                                "인가", "입니", "알려", "해주", "주세", "나요", "가요", "그럼", "그러", "그리"]

    /// IDF-weighted share of `weights`' terms that occur in `terms`.
    public static func coverage(_ weights: [String: Float], _ terms: [String: Int]) -> Float {
        let total = weights.values.reduce(0, +)
        guard total > 0 else { return 0 }
        return weights.reduce(0) { $0 + (terms[$1.key] != nil ? $1.value : 0) } / total
    }

    /// Coverage of the query's terms in an arbitrary text (a sentence, an answer).
    public func coverage(of query: String, in text: String) -> Float {
        Self.coverage(queryTermWeights(query), termFrequencies(text))
    }
}
