import DamdaCore
import Foundation

/// `damda bench prefix`: time to first token of a RAG prompt without the prefix cache, with only
/// the template's instruction cached (another question was asked before), and with the whole prompt
/// cached (the same prompt again: a resent chat turn, a sampled answer asked twice). Every run's
/// first token is checked against the uncached one.
public struct PrefixCacheBenchmark {
    public let model: any LanguageModel
    public var repetitions = 3

    public init(model: any LanguageModel, repetitions: Int = 3) { self.model = model; self.repetitions = repetitions }

    public struct Scenario: Codable, Sendable {
        public var name: String
        public var promptTokens: Int
        public var cachedTokens: Int
        public var timeToFirstTokenMs: Double
        public var runsMs: [Double]
        /// Uncached time to first token over this one.
        public var speedup: Double
        public var sameFirstToken: Bool
        enum CodingKeys: String, CodingKey {
            case name, speedup
            case promptTokens = "prompt_tokens", cachedTokens = "cached_tokens", timeToFirstTokenMs = "time_to_first_token_ms"
            case runsMs = "runs_ms", sameFirstToken = "same_first_token"
        }
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var threads: Int
        public var repetitions: Int
        public var scenarios: [Scenario]
        public var peakRSSBytes: Int64
        enum CodingKeys: String, CodingKey { case model, threads, repetitions, scenarios, peakRSSBytes = "peak_rss_bytes" }
    }

    /// `earlier` is another question's prompt with the same template; `prompt` the one measured.
    public func run(prompt: [Int32], earlier: [Int32]) throws -> Report {
        let clock = ContinuousClock()
        func firstToken(_ cache: PrefixCache?, warm: [Int32]?) throws -> (ms: Double, token: Int32, cached: Int) {
            if let cache, let warm {
                cache.clear()
                _ = try Generator(model: model, prefixCache: cache).generate(GenerationRequest(prompt: warm, maxTokens: 1))
            }
            let t0 = clock.now
            let s = try Generator(model: model, prefixCache: cache).generate(GenerationRequest(prompt: prompt, maxTokens: 1))
            return ((clock.now - t0).seconds * 1000, s.tokens.first ?? -1, s.cachedPromptTokens)
        }
        func scenario(_ name: String, _ cache: PrefixCache?, warm: [Int32]?, baseline: (Double, Int32)?) throws -> Scenario {
            var runs: [(ms: Double, token: Int32, cached: Int)] = []
            for _ in 0..<max(repetitions, 1) { runs.append(try firstToken(cache, warm: warm)) }
            let ms = runs.map(\.ms).sorted()[runs.count / 2]
            func r2(_ x: Double) -> Double { (x * 100).rounded() / 100 }
            return Scenario(name: name, promptTokens: prompt.count, cachedTokens: runs[0].cached, timeToFirstTokenMs: r2(ms), runsMs: runs.map { r2($0.ms) },
                            speedup: r2((baseline?.0 ?? ms) / ms), sameFirstToken: runs.allSatisfy { $0.token == (baseline?.1 ?? runs[0].token) })
        }
        _ = try Generator(model: model).generate(GenerationRequest(prompt: prompt, maxTokens: 1))   // warm-up: page in the weights
        let cold = try scenario("uncached", nil, warm: nil, baseline: nil)
        let baseline = (cold.timeToFirstTokenMs, try Generator(model: model).generate(GenerationRequest(prompt: prompt, maxTokens: 1)).tokens.first ?? -1)
        let cache = PrefixCache()
        return Report(model: "", threads: model.threads, repetitions: repetitions, scenarios: [
            cold,
            try scenario("instruction cached (another question before)", cache, warm: earlier, baseline: baseline),
            try scenario("whole prompt cached (same prompt again)", cache, warm: prompt, baseline: baseline),
        ], peakRSSBytes: peakResidentBytes())
    }
}
