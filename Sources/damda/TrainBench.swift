import ArgumentParser
import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaTraining
import Foundation

struct TrainBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "LoRA training speed and memory: forward + backward + AdamW on the default model (JSON).")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Sequence lengths, comma-separated.") var seq = "256,512"
    @Option(help: "Sequences per micro-batch (packed into one pass).") var batch = 1
    @Option(help: "Timed updates per length (after one warm-up update).") var steps = 3
    @Option(help: "Loss on the last N tokens of each sequence (an answer), as RAG QA training does.") var answerTokens = 32
    @Flag(help: "Loss at every position (the standard causal-LM objective: the LM head runs on all tokens).") var fullLoss = false
    @Option(help: "LoRA rank.") var rank = 16
    @Option(help: "Adapted projections.") var targets = "q,k,v,o,gate,up,down"
    @Flag(help: "Recompute activations in backward.") var recompute = false
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            let (loaded, path, _, _) = try modelOptions.load()
            guard let model = loaded as? any AdaptableModel else { throw TrainingError.unsupported("this model cannot be trained") }
            let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: rank, alpha: Float(2 * rank), targets: try LoRATarget.parseList(targets))
            adapter.initialize(seed: 0)
            // B = 0 would make every step identical to the base model; small values exercise all paths.
            var rng = SplitMix64(seed: 1)
            for layer in adapter.slots { for (_, s) in layer { for i in 0..<(s.output * rank) { adapter.parameters[s.b + i] = rng.gaussian() * 1e-3 } } }
            let bp = try DecoderBackprop.make(model: model, adapter: adapter, dropout: 0.05, recompute: recompute, threads: modelOptions.threads)
            let optimizer = AdamW(count: adapter.count)
            // Real Korean text (tokenized, repeated to length) rather than random ids.
            let text = "보험계약자는 보험기간 중 계약 내용을 변경할 수 있으며, 보험회사는 약관에서 정한 바에 따라 보험금을 지급합니다. "
            var ids = model.tokenizer.encode(text, addSpecial: false, parseSpecial: false)
            var results: [[String: Any]] = []
            for length in seq.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
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
                    let d = clock.now - t0
                    if step > 0 { times.append(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18) }
                }
                let mean = times.reduce(0, +) / Double(times.count)
                results.append([
                    "seq": length, "micro_batch": batch, "loss_positions": pass.lossTokens,
                    "tokens_per_s": (Double(length * batch) / mean * 10).rounded() / 10,
                    "seconds_per_step": (mean * 1000).rounded() / 1000,
                    "peak_rss_bytes": peakResidentBytes(),
                ])
                FileHandle.standardError.write("seq \(length): \(String(format: "%.1f", Double(length * batch) / mean)) tok/s, \(String(format: "%.2f", mean)) s/step\n".data(using: .utf8)!)
            }
            printJSON([
                "model": path, "threads": modelOptions.threads, "rank": rank, "targets": adapter.targets.map(\.rawValue),
                "trainable_parameters": adapter.count, "loss": fullLoss ? "all positions" : "last \(answerTokens) tokens",
                "recompute": recompute, "results": results,
            ])
        }
    }
}
