import ArgumentParser
import DamdaCore
import DamdaEngine
import Foundation

/// `--e5-arithmetic int8|fp32` on the retrieval and scale benches.
extension E5Arithmetic: ExpressibleByArgument {}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Benchmarks that print JSON.",
                                                    subcommands: [Generate.self, BandwidthBench.self, RetrievalBench.self, AnswersBench.self, RelevanceBench.self, ScaleBench.self, TrainBench.self, GuardBench.self])

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
                var report = try GenerationBenchmark(model: try loadModel(path: path, threads: options.threads), promptTokens: prompt,
                                                     decodeTokens: decode, repetitions: repetitions).run()
                report.model = path
                print(jsonString(report))
            }
        }
    }
}
