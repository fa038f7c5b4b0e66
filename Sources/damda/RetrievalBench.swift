import ArgumentParser
import DamdaCore
import DamdaModelIO
import DamdaRetrieval
import Foundation

struct RetrievalBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval", abstract: "Recall@k and MRR@10 of retrieval on a QA set, with ingest and query speed (JSON).")
    @Option(help: "Documents JSONL: {id, title, text} per line.") var docs: String
    @Option(help: "Questions JSONL: {id, question, answers, doc_id} per line.") var qa: String
    @Option(help: "Comma-separated k values.") var k = "1,5,10"
    @Option(help: "Analyzers to compare (comma-separated).") var analyzers = "bigram,particle,whitespace"
    @Option(help: "Chunk budget in approximate tokens.") var chunkTokens = 256
    @Option(help: "Only the first N questions (0: all).") var limit = 0
    @Option(help: "Embedding model file (default: the fetched multilingual-e5-small).") var embeddingModel: String?
    @Option(help: "Worker threads.") var threads: Int = Threads.available
    @Option(help: "Weighted-fusion BM25 weight (vector gets 1 − w).") var bm25Weight: Float = 0.5
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            let ks = k.split(separator: ",").compactMap { Int($0) }
            let maxK = max(ks.max() ?? 10, 10)
            var questions: [(q: String, doc: String)] = []
            for line in try String(contentsOfFile: qa, encoding: .utf8).split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let q = o["question"] as? String, let d = o["doc_id"] as? String else { continue }
                questions.append((q, d))
            }
            if limit > 0 { questions = Array(questions.prefix(limit)) }
            let loaded = DocumentLoader().load([docs])
            var results: [String: Any] = [:]
            let e5Path = embeddingModel ?? ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
            let embedder: E5Embedder? = FileManager.default.fileExists(atPath: e5Path) ? try E5Embedder(path: e5Path, threads: threads) : nil
            let analyzerNames = analyzers.split(separator: ",").map(String.init)
            for name in analyzerNames {
                let withVectors = embedder != nil && name == analyzerNames.first
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-bench-\(getpid())-\(name)")
                try? FileManager.default.removeItem(at: dir)
                defer { try? FileManager.default.removeItem(at: dir) }
                let idx = try SearchIndex(directory: dir.path, analyzer: name,
                                          chunker: Chunker(maxTokens: chunkTokens, overlapTokens: chunkTokens / 5),
                                          embedder: withVectors ? embedder : nil)
                let s = try idx.ingest(loaded, progress: withVectors)
                var modes: [(String, SearchMode, Fusion)] = [("bm25_" + name, .bm25, .default)]
                if withVectors {
                    modes += [("vector", .vector, .default), ("hybrid", .hybrid, .weighted(bm25: bm25Weight, vector: 1 - bm25Weight)),
                              ("hybrid_rrf", .hybrid, .reciprocalRank(k: 60))]
                    let chunkTexts = try idx.store.allChunks().map { "passage: " + $0.chunk.text }
                    let tokens = chunkTexts.reduce(0) { $0 + embedder!.encoder.windows($1).reduce(0) { $0 + $1.count } }
                    results["embedding"] = ["model": embedder!.name, "tokens": tokens, "ingest_seconds": (s.seconds * 100).rounded() / 100,
                                            "embed_tokens_per_s": (Double(tokens) / s.seconds).rounded(), "threads": threads]
                }
                for (label, mode, fusion) in modes {
                idx.fusion = fusion
                var hitsAt = [Int: Int](), rr = 0.0
                var latencies: [Double] = []
                let clock = ContinuousClock()
                for (q, d) in questions {
                    let t0 = clock.now
                    let hits = try idx.search(q, k: maxK, mode: mode)
                    let dt = clock.now - t0
                    latencies.append(Double(dt.components.attoseconds) * 1e-15 + Double(dt.components.seconds) * 1000)
                    if let r = hits.firstIndex(where: { $0.chunk.documentID == d }) {
                        for kk in ks where r < kk { hitsAt[kk, default: 0] += 1 }
                        if r < 10 { rr += 1 / Double(r + 1) }
                    }
                }
                latencies.sort()
                let n = Double(max(questions.count, 1))
                var entry: [String: Any] = ["mrr@10": (rr / n * 1000).rounded() / 1000,
                                            "ingest_chunks_per_s": (Double(s.chunks) / max(s.seconds, 1e-9)).rounded(),
                                            "chunks": s.chunks,
                                            "latency_ms_p50": latencies.isEmpty ? 0 : (latencies[latencies.count / 2] * 100).rounded() / 100,
                                            "latency_ms_p99": latencies.isEmpty ? 0 : (latencies[min(latencies.count - 1, latencies.count * 99 / 100)] * 100).rounded() / 100]
                for kk in ks { entry["recall@\(kk)"] = (Double(hitsAt[kk] ?? 0) / n * 1000).rounded() / 1000 }
                results[label] = entry
                }
            }
            printJSON(["questions": questions.count, "documents": loaded.documents.count, "chunk_tokens": chunkTokens, "modes": results])
        }
    }
}
