import DamdaCore
import DamdaEngine
import DamdaRetrieval
import Foundation

/// Query latency and HNSW recall at collection sizes beyond the shared data: an index's real
/// chunks plus synthetic neighbours of them (each a real chunk's vector with noise, renormalized,
/// and a mix of two real chunks' terms), so the graph sees clustered, embedding-like data.
public struct ScaleEvaluation {
    /// An index with embeddings, and the embedder its queries need.
    public let index: SearchIndex
    public let embedder: any Embedder
    public var questions: [EvalQuestion]
    /// Total chunks after adding synthetic ones.
    public var scale = 100_000
    /// Questions to time (spread evenly over the set).
    public var limit = 300
    public var m = 16
    public var efConstruction = 100
    public var efSearch = [32, 64, 128]
    /// Per-dimension standard deviation of synthetic vectors' noise before renormalizing.
    public var noise: Float = 0.03
    /// "noise": a real vector plus isotropic noise (many near-copies, the hardest case for
    /// graphs); "mix": a random blend of two real vectors plus a little noise.
    public var synthetic = "noise"
    public var progress = true

    public init(index: SearchIndex, embedder: any Embedder, questions: [EvalQuestion]) {
        self.index = index; self.embedder = embedder; self.questions = questions
    }

    public func run() throws -> ScaleReport {
        guard !index.vectorsInStore else { throw RetrievalError.vectorsInStore("the scale benchmark") }
        let real = index.indexedChunks
        guard let dim = real.first?.embedding.count, dim > 0, real.allSatisfy({ $0.embedding.count == dim }) else {
            throw RetrievalError.noEmbeddings(.vector)
        }
        var rng = SplitMix64(seed: 7)
        var vectors: [Float] = []
        vectors.reserveCapacity(max(scale, real.count) * dim)
        var terms: [[String: Int]] = []
        var docIDs: [String] = []
        for c in real { vectors += c.embedding; terms.append(c.termFrequencies); docIDs.append(c.chunk.documentID) }
        while terms.count < scale {
            let a = real[Int(rng.next() % UInt64(real.count))], b = real[Int(rng.next() % UInt64(real.count))]
            let alpha = synthetic == "mix" ? Float(0.5 + 0.5 * rng.nextUnit()) : 1
            var v = zip(a.embedding, b.embedding).map { alpha * $0 + (1 - alpha) * $1 + (synthetic == "mix" ? noise / 3 : noise) * rng.gaussian() }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            v = v.map { $0 / norm }
            vectors += v
            var tf: [String: Int] = [:]
            for (t, n) in a.termFrequencies where rng.next() % 2 == 0 { tf[t] = n }
            for (t, n) in b.termFrequencies where rng.next() % 2 == 0 { tf[t, default: 0] += n }
            terms.append(tf)
            docIDs.append("synthetic-\(terms.count)")
        }
        let clock = ContinuousClock()
        let bm25 = BM25Index(termFrequencies: terms, documentIDs: docIDs)  // as SearchIndex builds it, document scores included
        let exact = ExactVectorIndex(dimension: dim, flat: vectors)
        let t0 = clock.now
        let bar = progress ? ProgressBar(total: Int64(exact.count), label: "hnsw", unit: "vectors") : nil
        let hnsw = HNSWIndex(dimension: dim, vectors: vectors, parameters: .init(m: m, efConstruction: efConstruction)) { bar?.update(to: Int64($0)) }
        bar?.finish()
        let buildSeconds = (clock.now - t0).seconds
        let questions = EvalQuestion.evenlySpaced(self.questions, limit).map { ($0.question, $0.documentID ?? "") }
        func ms(_ d: Duration) -> Double { d.seconds * 1000 }
        func pct(_ xs: [Double], _ p: Double) -> Double { let s = xs.sorted(); return s.isEmpty ? 0 : (s[min(s.count - 1, Int(Double(s.count) * p))] * 100).rounded() / 100 }
        var embedMs: [Double] = [], bm25Ms: [Double] = [], exactMs: [Double] = []
        var hnswMs: [String: [Double]] = [:], recall: [String: Double] = [:], totalMs: [String: [Double]] = [:]
        var hits1 = 0, rr = 0.0, hitsExact1 = 0
        let efs = efSearch
        let analyzer = Analyzers.default
        for (q, gold) in questions {
            var t = clock.now
            let qv = embedder.embed(query: q)
            embedMs.append(ms(clock.now - t))
            t = clock.now
            var (lexicalScores, touched) = bm25.scores(analyzer.terms(q))
            let sparse = BM25Index.top(50, of: &touched, scores: lexicalScores, allowed: nil)
            bm25Ms.append(ms(clock.now - t))
            // Hybrid scores every candidate with both retrievers, as SearchIndex does.
            func both(_ dense: [(index: Int, score: Float)]) -> (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)]) {
                Fusion.scoredByBoth(sparse, dense, lexicalScore: { lexicalScores[$0] }) { i in
                    vectors.withUnsafeBufferPointer { v in qv.withUnsafeBufferPointer { dotF32(v.baseAddress! + i * dim, $0.baseAddress!, dim) } }
                }
            }
            t = clock.now
            let truth = exact.search(qv, k: 50, allowed: nil)
            exactMs.append(ms(clock.now - t))
            let truth10 = Set(truth.prefix(10).map(\.index))
            let exactLists = both(truth)
            let exactHybrid = Fusion.default.fuse(exactLists.bm25, exactLists.dense, k: 10)
            if let first = exactHybrid.first, docIDs[first.index] == gold { hitsExact1 += 1 }
            for ef in efs {
                t = clock.now
                let approx = hnsw.search(qv, k: 50, efSearch: max(ef, 50))
                let dt = ms(clock.now - t)
                hnswMs["ef\(ef)", default: []].append(dt)
                recall["ef\(ef)", default: 0] += Double(Set(approx.prefix(10).map(\.index)).intersection(truth10).count) / 10
                let t2 = clock.now
                let lists = both(approx)
                let fused = Fusion.default.fuse(lists.bm25, lists.dense, k: 10)
                totalMs["ef\(ef)", default: []].append(embedMs.last! + bm25Ms.last! + dt + ms(clock.now - t2))
                if ef == efs.first {
                    if let r = fused.firstIndex(where: { docIDs[$0.index] == gold }) { rr += 1 / Double(r + 1); if r == 0 { hits1 += 1 } }
                }
            }
        }
        let n = Double(max(questions.count, 1))
        var perEf: [String: ScaleReport.EfScore] = [:]
        for ef in efs {
            let key = "ef\(ef)"
            perEf[key] = .init(recallAt10VsExact: (recall[key, default: 0] / n * 1000).rounded() / 1000,
                               vectorMsP50: pct(hnswMs[key] ?? [], 0.5), vectorMsP99: pct(hnswMs[key] ?? [], 0.99),
                               hybridQueryMsP50: pct(totalMs[key] ?? [], 0.5), hybridQueryMsP99: pct(totalMs[key] ?? [], 0.99))
        }
        return ScaleReport(
            chunks: terms.count, realChunks: real.count, synthetic: synthetic, questions: questions.count, dimension: dim,
            hnsw: .init(m: m, efConstruction: efConstruction, buildSeconds: (buildSeconds * 10).rounded() / 10, byEfSearch: perEf),
            queryEmbeddingMsP50: pct(embedMs, 0.5), bm25MsP50: pct(bm25Ms, 0.5), bm25MsP99: pct(bm25Ms, 0.99),
            exactVectorMsP50: pct(exactMs, 0.5), exactVectorMsP99: pct(exactMs, 0.99),
            hybridHNSWRecallAt1: (Double(hits1) / n * 1000).rounded() / 1000, hybridHNSWMRRAt10: (rr / n * 1000).rounded() / 1000,
            hybridExactRecallAt1: (Double(hitsExact1) / n * 1000).rounded() / 1000, peakRSSBytes: peakResidentBytes())
    }
}

/// `damda bench scale`'s JSON (the command adds threads and the e5 arithmetic).
public struct ScaleReport: Codable, Sendable {
    public var chunks: Int
    public var realChunks: Int
    public var synthetic: String
    public var questions: Int
    public var dimension: Int
    public var hnsw: HNSW
    public var queryEmbeddingMsP50: Double
    public var bm25MsP50: Double
    public var bm25MsP99: Double
    public var exactVectorMsP50: Double
    public var exactVectorMsP99: Double
    public var hybridHNSWRecallAt1: Double
    public var hybridHNSWMRRAt10: Double
    public var hybridExactRecallAt1: Double
    public var peakRSSBytes: Int64
    public var threads = 0
    public var e5Arithmetic = ""

    enum CodingKeys: String, CodingKey {
        case chunks, synthetic, questions, dimension, hnsw, threads
        case realChunks = "real_chunks", queryEmbeddingMsP50 = "query_embedding_ms_p50", bm25MsP50 = "bm25_ms_p50", bm25MsP99 = "bm25_ms_p99"
        case exactVectorMsP50 = "exact_vector_ms_p50", exactVectorMsP99 = "exact_vector_ms_p99"
        case hybridHNSWRecallAt1 = "hybrid_hnsw_recall@1", hybridHNSWMRRAt10 = "hybrid_hnsw_mrr@10", hybridExactRecallAt1 = "hybrid_exact_recall@1"
        case peakRSSBytes = "peak_rss_bytes", e5Arithmetic = "e5_arithmetic"
    }

    public struct HNSW: Codable, Sendable {
        public var m: Int, efConstruction: Int, buildSeconds: Double
        public var byEfSearch: [String: EfScore]
        enum CodingKeys: String, CodingKey { case m, efConstruction = "ef_construction", buildSeconds = "build_seconds", byEfSearch = "by_ef_search" }
    }

    public struct EfScore: Codable, Sendable {
        public var recallAt10VsExact: Double, vectorMsP50: Double, vectorMsP99: Double, hybridQueryMsP50: Double, hybridQueryMsP99: Double
        enum CodingKeys: String, CodingKey {
            case recallAt10VsExact = "recall@10_vs_exact", vectorMsP50 = "vector_ms_p50", vectorMsP99 = "vector_ms_p99"
            case hybridQueryMsP50 = "hybrid_query_ms_p50", hybridQueryMsP99 = "hybrid_query_ms_p99"
        }
    }
}
