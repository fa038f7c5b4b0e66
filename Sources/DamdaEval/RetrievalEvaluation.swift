import DamdaCore
import DamdaRetrieval
import Foundation

/// Retrieval quality on a QA set with known gold documents: recall@k and MRR@10 per analyzer and
/// search mode, ingest and query speed, and optionally a fusion sweep (weights and RRF k chosen
/// on questions about even-numbered documents, checked on the odd ones).
public struct RetrievalEvaluation {
    public var documents: LoadResult
    public var questions: [EvalQuestion]
    public var ks: [Int] = [1, 5, 10]
    /// BM25 analyzers to compare; vector and hybrid modes run on the first one's index.
    public var analyzers: [String] = ["bigram", "particle", "whitespace"]
    public var chunker = Chunker()
    /// At most N chunks of one document among the top k (1: documents ranked by their best chunk,
    /// MaxP, as document retrieval does; 0: raw chunks).
    public var perDocument = 1
    public var bm25 = BM25Index.Parameters()
    /// Weighted fusion's BM25 weight for the "hybrid" mode (the vector gets 1 − w).
    public var bm25Weight: Float = 0.6
    /// Labels to measure: bm25, vector, hybrid, hybrid_rrf.
    public var modes: Set<String> = ["bm25", "vector", "hybrid", "hybrid_rrf"]
    public var fusionSweep = false
    public var embedder: E5Embedder?
    public var progress = true
    /// The store an analyzer's index is built in (default: SQLite in a temporary directory); a
    /// PostgreSQL store measures search where the vectors live in the database.
    public var store: ((_ analyzer: String) throws -> any ChunkStore)?

    public init(documents: LoadResult, questions: [EvalQuestion]) {
        self.documents = documents; self.questions = questions
    }

    /// Where a question's gold document ranked in one mode (nil: not in the top list).
    public struct Rank: Codable, Sendable {
        public var id: String, mode: String, rank: Int?
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id); try c.encode(mode, forKey: .mode); try c.encode(rank, forKey: .rank)   // null, not absent
        }
    }

    public func run(rank: (Rank) -> Void = { _ in }) throws -> RetrievalReport {
        let maxK = max(ks.max() ?? 10, 10)
        var report = RetrievalReport(questions: questions.count, documents: documents.documents.count, chunkTokens: chunker.maxTokens,
                                     perDocument: perDocument, bm25: .init(k1: Double(bm25.k1), b: Double(bm25.b), documentWeight: Double(bm25.documentWeight)))
        for name in analyzers {
            let withVectors = embedder != nil && name == analyzers.first
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-bench-\(getpid())-\(name)")
            try? FileManager.default.removeItem(at: dir)
            defer { try? FileManager.default.removeItem(at: dir) }
            let idx = try store.map { try SearchIndex(directory: dir.path, store: try $0(name), analyzer: name, chunker: chunker, embedder: withVectors ? embedder : nil) }
                ?? SearchIndex(directory: dir.path, analyzer: name, chunker: chunker, embedder: withVectors ? embedder : nil)
            idx.bm25Parameters = bm25
            let s = try idx.ingest(documents, progress: withVectors && progress)
            var settings: [(label: String, wanted: String, mode: SearchMode, fusion: Fusion)] = [("bm25_" + name, "bm25", .bm25, .default)]
            if withVectors, let e = embedder {
                settings += [("vector", "vector", .vector, .default),
                             ("hybrid", "hybrid", .hybrid, .weighted(bm25: bm25Weight, vector: 1 - bm25Weight)),
                             ("hybrid_rrf", "hybrid_rrf", .hybrid, .reciprocalRank(k: 60))]
                let tokens = try idx.store.allChunks().reduce(0) { $0 + e.encoder.windows("passage: " + $1.chunk.text).reduce(0) { $0 + $1.count } }
                report.embedding = .init(model: e.name, tokens: tokens, ingestSeconds: round2(s.seconds),
                                         embedTokensPerSecond: (Double(tokens) / s.seconds).rounded(), threads: e.encoder.threads,
                                         arithmetic: e.encoder.arithmetic.rawValue)
                if fusionSweep { report.fusionSweep = try sweepFusion(idx) }
                report.vectorSearch = idx.vectorIndexKind
            }
            for setting in settings where modes.contains(setting.wanted) {
                idx.fusion = setting.fusion
                var hitsAt = [Int: Int](), rr = 0.0
                var latencies: [Double] = []
                let clock = ContinuousClock()
                for q in questions {
                    let t0 = clock.now
                    let hits = try idx.search(q.question, k: maxK, mode: setting.mode, perDocument: perDocument)
                    let dt = clock.now - t0
                    latencies.append(Double(dt.components.attoseconds) * 1e-15 + Double(dt.components.seconds) * 1000)
                    let r = hits.firstIndex { $0.chunk.documentID == q.documentID }
                    if let r {
                        for kk in ks where r < kk { hitsAt[kk, default: 0] += 1 }
                        if r < 10 { rr += 1 / Double(r + 1) }
                    }
                    rank(Rank(id: q.id, mode: setting.label, rank: r.map { $0 + 1 }))
                }
                latencies.sort()
                let n = Double(max(questions.count, 1))
                report.modes[setting.label] = ModeScore(
                    recall: Dictionary(uniqueKeysWithValues: ks.map { ($0, round3(Double(hitsAt[$0] ?? 0) / n)) }),
                    mrrAt10: round3(rr / n), chunks: s.chunks, ingestChunksPerSecond: (Double(s.chunks) / max(s.seconds, 1e-9)).rounded(),
                    latencyMsP50: latencies.isEmpty ? 0 : round2(latencies[latencies.count / 2]),
                    latencyMsP99: latencies.isEmpty ? 0 : round2(latencies[min(latencies.count - 1, latencies.count * 99 / 100)]))
            }
        }
        return report
    }

    /// Recall@1/5/10 and MRR@10 of each fusion setting on the two halves of the questions; the
    /// query is embedded once and both candidate lists reused for every setting.
    func sweepFusion(_ idx: SearchIndex) throws -> [FusionSetting] {
        let position = Dictionary(documents.documents.map(\.id).enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let bar = progress ? ProgressBar(total: Int64(questions.count), label: "fusion sweep", unit: "questions") : nil
        typealias Lists = (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)])
        var lists: [(top: Lists, both: Lists, doc: String, half: String)] = []
        for (i, q) in questions.enumerated() {
            let v = try idx.embed(query: q.question)
            let top = try idx.candidateLists(q.question, vector: v, k: 50, scoredByBoth: false)
            let both = try idx.candidateLists(q.question, vector: v, k: 50, scoredByBoth: true)
            let doc = q.documentID ?? ""
            lists.append((top, both, doc, (position[doc] ?? 0) % 2 == 0 ? "even" : "odd"))
            bar?.update(to: Int64(i + 1))
        }
        bar?.finish()
        var settings: [(String, Fusion, Bool)] = []
        for both in [false, true] {
            settings += stride(from: 0.0, through: 1.001, by: 0.05).map { w in
                (String(format: "weighted %.2f/%.2f%@", w, 1 - w, both ? " (both scores)" : ""), Fusion.weighted(bm25: Float(w), vector: Float(1 - w)), both)
            }
        }
        settings += [10, 30, 60].map { ("rrf k=\($0)", Fusion.reciprocalRank(k: Float($0)), false) }
        return settings.map { name, fusion, both in
            func score(_ half: String) -> HalfScore {
                let subset = lists.filter { $0.half == half }
                var hits = [0, 0, 0], rr = 0.0
                for l in subset {
                    let c = both ? l.both : l.top
                    var ranked = fusion.fuse(c.bm25, c.dense, k: perDocument > 0 ? 50 : 10)
                    if perDocument > 0 { ranked = SearchIndex.collapse(ranked, perDocument: perDocument, k: 10, document: idx.documentID(ofChunk:)) }
                    if let r = ranked.firstIndex(where: { idx.documentID(ofChunk: $0.index) == l.doc }) {
                        for (j, kk) in [1, 5, 10].enumerated() where r < kk { hits[j] += 1 }
                        rr += 1 / Double(r + 1)
                    }
                }
                let n = Double(max(subset.count, 1))
                return HalfScore(questions: subset.count, recallAt1: round3(Double(hits[0]) / n), recallAt5: round3(Double(hits[1]) / n),
                                 recallAt10: round3(Double(hits[2]) / n), mrrAt10: round3(rr / n))
            }
            return FusionSetting(fusion: name, even: score("even"), odd: score("odd"))
        }
    }
}

/// `damda bench retrieval`'s JSON.
public struct RetrievalReport: Codable, Sendable {
    public var questions: Int
    public var documents: Int
    public var chunkTokens: Int
    public var perDocument: Int
    public var bm25: BM25Settings
    /// Per mode label: bm25_<analyzer>, vector, hybrid, hybrid_rrf.
    public var modes: [String: ModeScore] = [:]
    public var embedding: EmbeddingReport?
    public var fusionSweep: [FusionSetting]?
    /// What searched the vectors: exact, hnsw (Damda's) or pgvector-hnsw (in PostgreSQL).
    public var vectorSearch: String?

    public struct BM25Settings: Codable, Sendable {
        public var k1: Double, b: Double, documentWeight: Double
        enum CodingKeys: String, CodingKey { case k1, b, documentWeight = "document_weight" }
    }

    enum CodingKeys: String, CodingKey {
        case questions, documents, bm25, modes, embedding
        case chunkTokens = "chunk_tokens", perDocument = "per_document", fusionSweep = "fusion_sweep", vectorSearch = "vector_search"
    }
}

public struct EmbeddingReport: Codable, Sendable {
    public var model: String
    public var tokens: Int
    public var ingestSeconds: Double
    public var embedTokensPerSecond: Double
    public var threads: Int
    public var arithmetic: String
    enum CodingKeys: String, CodingKey {
        case model, tokens, threads, arithmetic, ingestSeconds = "ingest_seconds", embedTokensPerSecond = "embed_tokens_per_s"
    }
}

/// One mode's scores; recall is keyed "recall@K" for each K measured.
public struct ModeScore: Codable, Sendable {
    public var recall: [Int: Double]
    public var mrrAt10: Double
    public var chunks: Int
    public var ingestChunksPerSecond: Double
    public var latencyMsP50: Double
    public var latencyMsP99: Double

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(recall: [Int: Double], mrrAt10: Double, chunks: Int, ingestChunksPerSecond: Double, latencyMsP50: Double, latencyMsP99: Double) {
        self.recall = recall; self.mrrAt10 = mrrAt10; self.chunks = chunks; self.ingestChunksPerSecond = ingestChunksPerSecond
        self.latencyMsP50 = latencyMsP50; self.latencyMsP99 = latencyMsP99
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        for (k, v) in recall { try c.encode(v, forKey: Key("recall@\(k)")) }
        try c.encode(mrrAt10, forKey: Key("mrr@10"))
        try c.encode(chunks, forKey: Key("chunks"))
        try c.encode(ingestChunksPerSecond, forKey: Key("ingest_chunks_per_s"))
        try c.encode(latencyMsP50, forKey: Key("latency_ms_p50"))
        try c.encode(latencyMsP99, forKey: Key("latency_ms_p99"))
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        var recall: [Int: Double] = [:]
        for key in c.allKeys where key.stringValue.hasPrefix("recall@") {
            if let k = Int(key.stringValue.dropFirst(7)) { recall[k] = try c.decode(Double.self, forKey: key) }
        }
        self.recall = recall
        mrrAt10 = try c.decode(Double.self, forKey: Key("mrr@10"))
        chunks = try c.decode(Int.self, forKey: Key("chunks"))
        ingestChunksPerSecond = try c.decode(Double.self, forKey: Key("ingest_chunks_per_s"))
        latencyMsP50 = try c.decode(Double.self, forKey: Key("latency_ms_p50"))
        latencyMsP99 = try c.decode(Double.self, forKey: Key("latency_ms_p99"))
    }
}

public struct FusionSetting: Codable, Sendable {
    public var fusion: String
    public var even: HalfScore
    public var odd: HalfScore
}

public struct HalfScore: Codable, Sendable {
    public var questions: Int
    public var recallAt1: Double, recallAt5: Double, recallAt10: Double, mrrAt10: Double
    enum CodingKeys: String, CodingKey {
        case questions, recallAt1 = "recall@1", recallAt5 = "recall@5", recallAt10 = "recall@10", mrrAt10 = "mrr@10"
    }
}
