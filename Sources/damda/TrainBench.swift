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
            var bench = TrainingBenchmark(model: model, threads: modelOptions.threads)
            bench.lengths = seq.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            bench.batch = batch
            bench.steps = steps
            bench.answerTokens = answerTokens
            bench.fullLoss = fullLoss
            bench.rank = rank
            bench.targets = try LoRATarget.parseList(targets)
            bench.recompute = recompute
            bench.progress = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
            var report = try bench.run()
            report.model = path
            print(jsonString(report))
        }
    }
}
