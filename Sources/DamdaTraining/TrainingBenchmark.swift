import DamdaCore
import DamdaEngine
import Foundation

/// `damda bench train`: LoRA update speed (forward + backward + clipping + AdamW) and peak memory
/// per sequence length, on real Korean text repeated to length.
public struct TrainingBenchmark {
    public let model: any AdaptableModel
    public var lengths = [256, 512]
    /// Sequences per micro-batch (packed into one pass).
    public var batch = 1
    /// Timed updates per length, after one warm-up update.
    public var steps = 3
    /// Loss on the last N tokens of each sequence (an answer), as RAG QA training does.
    public var answerTokens = 32
    /// Loss at every position (the standard causal-LM objective).
    public var fullLoss = false
    public var rank = 16
    public var targets = LoRATarget.allCases
    public var recompute = false
    public var threads: Int
    /// Sees "seq N: R tok/s, S s/step" per length.
    public var progress: (String) -> Void = { _ in }

    public init(model: any AdaptableModel, threads: Int) { self.model = model; self.threads = threads }

    public func run() throws -> TrainingBenchmarkReport {
        let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: rank, alpha: Float(2 * rank), targets: targets)
        adapter.initialize(seed: 0)
        // B = 0 would make every step identical to the base model; small values exercise all paths.
        var rng = SplitMix64(seed: 1)
        for layer in adapter.slots { for (_, s) in layer { for i in 0..<(s.output * rank) { adapter.parameters[s.b + i] = rng.gaussian() * 1e-3 } } }
        let bp = try DecoderBackprop(model: model, adapter: adapter, dropout: 0.05, recompute: recompute, threads: threads)
        let optimizer = AdamW(count: adapter.count)
        let text = "보험계약자는 보험기간 중 계약 내용을 변경할 수 있으며, 보험회사는 약관에서 정한 바에 따라 보험금을 지급합니다. "
        var ids = model.tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        var results: [TrainingBenchmarkReport.Result] = []
        for length in lengths {
            while ids.count < length { ids += ids }
            var pass = PackedBatch()
            for _ in 0..<batch {
                let s = [model.tokenizer.bosID ?? 2] + ids.prefix(length - 1)
                pass.append(ids: Array(s), lossFrom: fullLoss ? 1 : length - answerTokens)
            }
            var times: [Double] = []
            let clock = ContinuousClock()
            for step in 0...steps {
                let t0 = clock.now
                bp.zeroGradients()
                _ = try bp.accumulate(pass, lossScale: 1 / Float(pass.lossTokens), dropoutSeed: UInt64(step))
                clipGradientNorm(bp.gradients, count: adapter.count, maxNorm: 1)
                optimizer.update(adapter.parameters, gradients: bp.gradients, learningRate: 1e-4)
                if step > 0 { times.append((clock.now - t0).seconds) }
            }
            let mean = times.reduce(0, +) / Double(times.count)
            results.append(.init(seq: length, microBatch: batch, lossPositions: pass.lossTokens,
                                 tokensPerSecond: (Double(length * batch) / mean * 10).rounded() / 10,
                                 secondsPerStep: (mean * 1000).rounded() / 1000, peakRSSBytes: peakResidentBytes()))
            progress("seq \(length): \(String(format: "%.1f", Double(length * batch) / mean)) tok/s, \(String(format: "%.2f", mean)) s/step")
        }
        return TrainingBenchmarkReport(model: "", threads: threads, rank: rank, targets: adapter.targets.map(\.rawValue),
                                       trainableParameters: adapter.count, loss: fullLoss ? "all positions" : "last \(answerTokens) tokens",
                                       recompute: recompute, results: results)
    }
}

public struct TrainingBenchmarkReport: Codable, Sendable {
    public var model: String
    public var threads: Int
    public var rank: Int
    public var targets: [String]
    public var trainableParameters: Int
    /// Which positions carry the loss.
    public var loss: String
    public var recompute: Bool
    public var results: [Result]

    enum CodingKeys: String, CodingKey { case model, threads, rank, targets, loss, recompute, results, trainableParameters = "trainable_parameters" }

    public struct Result: Codable, Sendable {
        public var seq: Int
        public var microBatch: Int
        public var lossPositions: Int
        public var tokensPerSecond: Double
        public var secondsPerStep: Double
        public var peakRSSBytes: Int64
        enum CodingKeys: String, CodingKey {
            case seq, microBatch = "micro_batch", lossPositions = "loss_positions", tokensPerSecond = "tokens_per_s"
            case secondsPerStep = "seconds_per_step", peakRSSBytes = "peak_rss_bytes"
        }
    }
}
