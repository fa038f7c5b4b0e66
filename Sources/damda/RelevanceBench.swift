import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaRetrieval
import Foundation

struct RelevanceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relevance",
        abstract: "Relevance gate and fusion on natural questions: gold-document recall by fusion weight, and per gate threshold the gold documents kept and off-domain questions refused (JSON).")
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "Worker threads (default: all cores).") var threads: Int = Threads.available
    @Option(help: "Answerable questions: JSONL {question, doc_id}.") var qa: String
    @Option(help: "Questions the documents do not answer: JSONL {question}.") var offDomain: String?
    @Option(help: "Hits retrieved per question.") var k = 10
    @Option(help: "Relevant hits the prompt usually holds (for gold_kept).") var within = 3
    @Option(help: "BM25 weights to try in weighted fusion (the vector gets 1 − w).") var bm25Weights = "0.6,0.5,0.4,0.3"
    @Option(help: "minRelevance values to try.") var minRelevance = "0.2,0.3,0.4,0.5"
    @Option(help: "minSimilarity values to try (0: off).") var minSimilarity = "0,0.86,0.87,0.88,0.89,0.90"
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: threads))
            guard idx.hasEmbeddings, idx.embedder != nil else { throw ValidationError("the index has no embeddings: ingest without --no-embeddings") }
            var questions: [(question: String, goldDocument: String?)] = try readJSONLines(qa).map { o in
                guard let q = o["question"] as? String, let d = o["doc_id"] as? String else { throw ValidationError("\(qa): a line lacks question or doc_id") }
                return (q, d)
            }
            if let off = offDomain {
                questions += try readJSONLines(off).map { o in
                    guard let q = o["question"] as? String else { throw ValidationError("\(off): a line lacks question") }
                    return (q, nil)
                }
            }
            func floats(_ s: String) -> [Float] { s.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) } }
            var fusionRows: [[String: Any]] = []
            for w in floats(bm25Weights) {
                idx.fusion = .weighted(bm25: w, vector: 1 - w)
                let probes = try RelevanceSweep.probe(index: idx, questions: questions, k: k, mode: .hybrid)
                let r = RelevanceSweep.recall(probes, ks: [1, 3, 5, 10])
                fusionRows.append(["bm25_weight": w, "recall_at_1": r[1]!, "recall_at_3": r[3]!, "recall_at_5": r[5]!, "recall_at_10": r[10]!])
            }
            var single: [[String: Any]] = []
            for mode in [SearchMode.bm25, .vector] {
                let probes = try RelevanceSweep.probe(index: idx, questions: questions, k: k, mode: mode)
                let r = RelevanceSweep.recall(probes, ks: [1, 3, 5, 10])
                single.append(["mode": mode.rawValue, "recall_at_1": r[1]!, "recall_at_3": r[3]!, "recall_at_5": r[5]!, "recall_at_10": r[10]!])
            }
            idx.fusion = .default
            let probes = try RelevanceSweep.probe(index: idx, questions: questions, k: k, mode: .hybrid)
            let gates = RelevanceSweep.sweep(probes, minRelevance: floats(minRelevance),
                                             minSimilarity: floats(minSimilarity).map { $0 > 0 ? $0 : nil }, within: within)
            let perQuestion: [[String: Any]] = probes.map { p in
                ["question": p.question, "gold": p.goldDocument ?? NSNull(), "gold_rank": p.goldRank ?? NSNull(),
                 "top": p.hits.prefix(3).map { ["document_id": $0.chunk.documentID, "relevance": Double($0.relevance),
                                                "similarity": $0.similarity.map(Double.init) ?? 0] }]
            }
            printJSON(["answerable": questions.filter { $0.goldDocument != nil }.count, "unanswerable": questions.filter { $0.goldDocument == nil }.count,
                       "k": k, "within": within, "fusion": fusionRows, "single_modes": single,
                       "gates": gates.map { g in ["min_relevance": g.minRelevance, "min_similarity": g.minSimilarity ?? 0, "gold_kept": g.goldKept,
                                                  "answered": g.answered, "refused_unanswerable": g.refusedUnanswerable] },
                       "questions": perQuestion])
        }
    }
}

/// JSON objects, one per non-empty line; a malformed line is an error naming it.
func readJSONLines(_ path: String) throws -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read \(path)") }
    return try text.split(separator: "\n").enumerated().compactMap { n, line in
        if line.trimmingCharacters(in: .whitespaces).isEmpty { return nil }
        guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ValidationError("\(path):\(n + 1): not a JSON object")
        }
        return o
    }
}
