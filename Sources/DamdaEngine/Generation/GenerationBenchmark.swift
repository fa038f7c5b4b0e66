import DamdaCore
import Foundation

/// `damda bench generate`: prefill of a fixed prompt and greedy decode, as llama-bench's pp and tg
/// tests measure them, plus decode with every logit computed (what llama-bench computes).
public struct GenerationBenchmark {
    public let model: any LanguageModel
    public var promptTokens = 512
    public var decodeTokens = 128
    public var repetitions = 3
    /// Batched decode runs: B sequences stepped together (`decodeStep`) for `decodeTokens` steps.
    public var batchSizes: [Int] = []

    public init(model: any LanguageModel, promptTokens: Int = 512, decodeTokens: Int = 128, repetitions: Int = 3) {
        self.model = model; self.promptTokens = promptTokens; self.decodeTokens = decodeTokens; self.repetitions = repetitions
    }

    public func run() throws -> GenerationBenchmarkReport {
        let prompt = promptTokens, decode = decodeTokens
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
        func r1(_ x: Double) -> Double { (x * 10).rounded() / 10 }
        let batches = try batchSizes.map { b in
            let runs = try (0..<max(repetitions, 1)).map { _ in try batchedDecode(b, prompt: ids) }
            let full = try (0..<max(repetitions, 1)).map { _ in try logitsDecode(b, prompt: ids, output: .logits) }
            let top = try (0..<max(repetitions, 1)).map { _ in try logitsDecode(b, prompt: ids, output: .top(count: 1024, including: [])) }
            return BatchDecodeReport(batch: b, totalTokensPerSecond: r1(median(runs.map(\.rate))),
                                     perSequenceTokensPerSecond: r1(median(runs.map(\.rate)) / Double(b)), runs: runs.map { r1($0.rate) },
                                     sameTokensAsLone: runs.allSatisfy(\.same),
                                     logitsTotalTokensPerSecond: r1(median(full)), topLogitsTotalTokensPerSecond: r1(median(top)))
        }
        return GenerationBenchmarkReport(
            model: "", threads: model.threads, promptTokens: prompt, decodeTokens: decode, repetitions: repetitions,
            prefillTokensPerSecond: r1(median(prefill)), decodeTokensPerSecond: r1(median(decodeRates)),
            prefillRuns: prefill.map(r1), decodeRuns: decodeRates.map(r1),
            decodeFullLogitsTokensPerSecond: r1(median(fullRates)), decodeFullLogitsRuns: fullRates.map(r1),
            greedyTokensMatchFullLogits: sameTokens, decodeWeightBytesPerToken: (model as? Gemma3Model)?.decodeWeightBytes ?? 0,
            batchDecode: batches, peakRSSBytes: peakResidentBytes(), blasKernels: BLAS.kernels)
    }

    /// `count` sequences from their own short prompts (different starts of the benchmark prompt,
    /// so their lengths differ), prefilled, with caches room for the decode and each first token.
    func startBatch(_ count: Int, prompt ids: [Int32]) throws -> (prompts: [[Int32]], caches: [KVCache], tokens: [Int32]) {
        let prompts = (0..<count).map { Array(ids.prefix(1 + $0 % 16)) }
        let caches = prompts.map { model.makeCache(capacity: $0.count + decodeTokens + 1) }
        return (prompts, caches, try zip(prompts, caches).map { try model.forwardGreedy($0, cache: $1) })
    }

    /// The batched step sampling needs, each sequence going on with its likeliest token: every
    /// logit (`.logits`), or the exact logits of the 1,024 largest that sampling draws from by
    /// default (`.top`, through the screened head). Returns total tokens/s.
    func logitsDecode(_ count: Int, prompt ids: [Int32], output: DecodeOutput) throws -> Double {
        let decode = decodeTokens
        let (_, caches, first) = try startBatch(count, prompt: ids)
        var tokens = first
        let clock = ContinuousClock()
        let t0 = clock.now
        for _ in 0..<decode {
            let slots = tokens.indices.map { DecodeSlot(token: tokens[$0], cache: caches[$0], output: output) }
            for (i, r) in try model.decodeStep(slots).enumerated() {
                switch r {
                case let .greedy(t): tokens[i] = t
                case let .logits(l): tokens[i] = Int32(Ops.argmax(l))
                case let .top(t): tokens[i] = t.tokens[Ops.argmax(t.values)]
                }
            }
        }
        return Double(count * decode) / (clock.now - t0).seconds
    }

    /// `count` sequences, each from its own short prompt (a different start of the benchmark
    /// prompt, so their lengths differ), decoded greedily in batched steps; every sequence's tokens
    /// are checked against its lone decode.
    func batchedDecode(_ count: Int, prompt ids: [Int32]) throws -> (rate: Double, same: Bool) {
        let decode = decodeTokens
        let (prompts, caches, first) = try startBatch(count, prompt: ids)
        var tokens = first
        var generated = [[Int32]](repeating: [], count: count)
        let clock = ContinuousClock()
        let t0 = clock.now
        for _ in 0..<decode {
            let results = try model.decodeStep(tokens.indices.map { DecodeSlot(token: tokens[$0], cache: caches[$0], wantsLogits: false) })
            for (i, r) in results.enumerated() {
                guard case let .greedy(t) = r else { continue }
                tokens[i] = t
                generated[i].append(t)
            }
        }
        let rate = Double(count * decode) / (clock.now - t0).seconds
        // Lone decodes of the distinct prompts (16 at most), after the timing.
        var same = true
        for i in 0..<min(count, 16) {
            let cache = model.makeCache(capacity: prompts[i].count + decode + 1)
            var t = try model.forwardGreedy(prompts[i], cache: cache)
            var lone: [Int32] = []
            for _ in 0..<decode { t = try model.forwardGreedy([t], cache: cache); lone.append(t) }
            same = same && lone == generated[i]
        }
        return (rate, same)
    }
}

/// Decode of `batch` sequences at once: the total rate and each sequence's share.
public struct BatchDecodeReport: Codable, Sendable {
    public var batch: Int
    public var totalTokensPerSecond: Double
    public var perSequenceTokensPerSecond: Double
    public var runs: [Double]
    /// Every sequence's tokens equal its lone greedy decode.
    public var sameTokensAsLone: Bool
    /// The same batch with every logit computed (total tokens/s).
    public var logitsTotalTokensPerSecond: Double
    /// The same batch with the exact logits of the 1,024 largest, what sampling reads (total tokens/s).
    public var topLogitsTotalTokensPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case batch, runs
        case totalTokensPerSecond = "total_tokens_per_s", perSequenceTokensPerSecond = "per_sequence_tokens_per_s"
        case sameTokensAsLone = "same_tokens_as_lone"
        case logitsTotalTokensPerSecond = "full_logits_total_tokens_per_s"
        case topLogitsTotalTokensPerSecond = "top_logits_total_tokens_per_s"
    }
}

public struct GenerationBenchmarkReport: Codable, Sendable {
    public var model: String
    public var threads: Int
    public var promptTokens: Int
    public var decodeTokens: Int
    public var repetitions: Int
    /// Medians over the repetitions.
    public var prefillTokensPerSecond: Double
    public var decodeTokensPerSecond: Double
    public var prefillRuns: [Double]
    public var decodeRuns: [Double]
    public var decodeFullLogitsTokensPerSecond: Double
    public var decodeFullLogitsRuns: [Double]
    /// Greedy decode through the screened head gave the same tokens as full fp32 logits.
    public var greedyTokensMatchFullLogits: Bool
    public var decodeWeightBytesPerToken: Int
    /// `--batch`: batched decode rates per batch size.
    public var batchDecode: [BatchDecodeReport]
    public var peakRSSBytes: Int64
    /// The kernels of prefill's products: "damda-avx512" where Damda's own run, else OpenBLAS's set ("SkylakeX", "Haswell", ...).
    public var blasKernels: String

    enum CodingKeys: String, CodingKey {
        case model, threads, repetitions
        case promptTokens = "prompt_tokens", decodeTokens = "decode_tokens"
        case prefillTokensPerSecond = "prefill_tokens_per_s", decodeTokensPerSecond = "decode_tokens_per_s"
        case prefillRuns = "prefill_runs", decodeRuns = "decode_runs"
        case decodeFullLogitsTokensPerSecond = "decode_full_logits_tokens_per_s", decodeFullLogitsRuns = "decode_full_logits_runs"
        case greedyTokensMatchFullLogits = "greedy_tokens_match_full_logits", decodeWeightBytesPerToken = "decode_weight_bytes_per_token"
        case batchDecode = "batch_decode", peakRSSBytes = "peak_rss_bytes", blasKernels = "blas_kernels"
    }
}
