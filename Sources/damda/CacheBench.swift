import ArgumentParser
import DamdaAssistant
import DamdaModelIO
import DamdaRetrieval
import Foundation

/// The semantic answer cache's threshold on paraphrases vs near misses, and lookup cost (JSON).
struct CacheBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Semantic-cache false hits on near-miss pairs and hit rate on paraphrases per cosine threshold; cached-answer lookup time (JSON).")
    @Option(help: "Pairs that mean the same (JSONL {\"a\", \"b\"}).") var paraphrases = "evals/cache-paraphrases.jsonl"
    @Option(help: "Pairs that must not share an answer (JSONL {\"a\", \"b\", \"kind\"}).") var nearMisses = "evals/cache-near-misses.jsonl"
    @Option(help: "The threshold to report in detail.") var threshold: Float = AnswerCacheSettings().semanticThreshold
    @Option(help: "Embedding model file (default: the fetched multilingual-e5-small).") var embeddingModel: String?
    @Option(help: "Answers in the cache for the latency test.") var entries = 1000
    @Option(help: "Worker threads.") var threads = 2
    @Option(help: "Also write the JSON here.") var out: String?

    func run() async throws {
        try await failing {
            let path = embeddingModel ?? ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no embedding model at \(path) (run `damda model fetch --embedding`)") }
            let embedder = try E5Embedder(path: path, threads: threads)
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("damda-cache-bench-\(getpid()).sqlite").path
            let report = try SemanticCacheCalibration().run(
                paraphrases: try SemanticCacheCalibration.read(paraphrases), nearMisses: try SemanticCacheCalibration.read(nearMisses),
                embedder: embedder, threshold: threshold, scratch: scratch, entries: entries)
            let json = jsonString(report)
            if let out { try (json + "\n").write(toFile: out, atomically: true, encoding: .utf8) }
            print(json)
        }
    }
}
