import ArgumentParser
import DamdaCore
import DamdaEngine
import Foundation

/// `--e5-arithmetic int8|fp32` on the retrieval and scale benches.
extension E5Arithmetic: ExpressibleByArgument {}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Benchmarks that print JSON.",
                                                    subcommands: [Generate.self, BandwidthBench.self, RetrievalBench.self, AnswersBench.self, RelevanceBench.self, ScaleBench.self, TrainBench.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prefill (512-token prompt) and decode (128 tokens) speed, like llama-bench -p 512 -n 128.")
        @OptionGroup var options: ModelOptions
        @Option(help: "Prompt length for the prefill test.") var prompt = 512
        @Option(help: "Tokens for the decode test.") var decode = 128
        @Option(help: "Repetitions; the median is reported.") var repetitions = 3
        @Flag(help: "Print JSON (the only output format; kept for symmetry with other benches).") var json = false

        func run() async throws {
            try await failing {
                let path = try options.resolvedModel()
                let model = try loadModel(path: path, threads: options.threads)
                // A deterministic Korean/English prompt, cut to exactly `prompt` tokens after BOS.
                let seed = "대한민국의 보험 약관은 피보험자의 권리와 의무를 정합니다. The insured must report changes within 30 days. "
                var ids = model.tokenizer.encode(String(repeating: seed, count: prompt / 10 + 8))
                ids = Array(ids.prefix(prompt))
                var prefill: [Double] = [], decodeRates: [Double] = [], fullRates: [Double] = []
                var sameTokens = true
                let clock = ContinuousClock()
                for _ in 0..<max(repetitions, 1) {
                    let cache = model.makeCache(capacity: prompt + decode + 1)
                    let t0 = clock.now
                    var logits = try model.forward(ids, cache: cache, logits: .last)
                    prefill.append(Double(prompt) / (clock.now - t0).seconds)
                    // Decode from a short prompt, as llama-bench's tg test does, greedily as generation
                    // runs it: through GreedyHead, which certifies the argmax without every fp32 logit.
                    let dcache = model.makeCache(capacity: decode + 2)
                    var next = try model.forwardGreedy([ids[0]], cache: dcache)
                    var greedyTokens: [Int32] = []
                    let t1 = clock.now
                    for _ in 0..<decode {
                        next = try model.forwardGreedy([next], cache: dcache)
                        greedyTokens.append(next)
                    }
                    decodeRates.append(Double(decode) / (clock.now - t1).seconds)
                    // The same decode with every logit computed in fp32, as llama-bench computes them.
                    let fcache = model.makeCache(capacity: decode + 2)
                    logits = try model.forward([ids[0]], cache: fcache, logits: .last)
                    var fullNext = Int32(Ops.argmax(logits))
                    var fullTokens: [Int32] = []
                    let t2 = clock.now
                    for _ in 0..<decode {
                        logits = try model.forward([fullNext], cache: fcache, logits: .last)
                        fullNext = Int32(Ops.argmax(logits))
                        fullTokens.append(fullNext)
                    }
                    fullRates.append(Double(decode) / (clock.now - t2).seconds)
                    sameTokens = sameTokens && greedyTokens == fullTokens
                }
                func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }
                printJSON([
                    "model": path, "threads": options.threads,
                    "prompt_tokens": prompt, "decode_tokens": decode, "repetitions": repetitions,
                    "prefill_tokens_per_s": (median(prefill) * 10).rounded() / 10,
                    "decode_tokens_per_s": (median(decodeRates) * 10).rounded() / 10,
                    "prefill_runs": prefill.map { ($0 * 10).rounded() / 10 },
                    "decode_runs": decodeRates.map { ($0 * 10).rounded() / 10 },
                    "decode_full_logits_tokens_per_s": (median(fullRates) * 10).rounded() / 10,
                    "decode_full_logits_runs": fullRates.map { ($0 * 10).rounded() / 10 },
                    "greedy_tokens_match_full_logits": sameTokens,
                    "decode_weight_bytes_per_token": (model as? Gemma3Model)?.decodeWeightBytes ?? 0,
                    "peak_rss_bytes": peakResidentBytes(),
                ])
            }
        }
    }
}
