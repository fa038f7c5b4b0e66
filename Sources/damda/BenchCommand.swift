import ArgumentParser
import DamdaCore
import DamdaDatasets
import DamdaEngine
import Foundation

/// `--e5-arithmetic int8|fp32` on the retrieval and scale benches.
extension E5Arithmetic: ExpressibleByArgument {}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Benchmarks that print JSON.",
                                                    subcommands: [Generate.self, BandwidthBench.self, RetrievalBench.self, AnswersBench.self, RelevanceBench.self, ScaleBench.self, TrainBench.self, GuardBench.self, PIIBench.self, CacheBench.self, Prefix.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prefill (512-token prompt) and decode (128 tokens) speed, like llama-bench -p 512 -n 128.")
        @OptionGroup var options: ModelOptions
        @Option(help: "Prompt length for the prefill test.") var prompt = 512
        @Option(help: "Tokens for the decode test.") var decode = 128
        @Option(help: "Repetitions; the median is reported.") var repetitions = 3
        @Option(help: "Also decode this many sequences at once in batched steps, e.g. 1,4,8 (total and per-sequence rates).")
        var batch: String?
        @Flag(help: "Print JSON (the only output format; kept for symmetry with other benches).") var json = false

        func run() async throws {
            try await failing {
                let path = try options.resolvedModel()
                let sizes = try batch.map { list in
                    try list.split(separator: ",").map { item -> Int in
                        guard let n = Int(item.trimmingCharacters(in: .whitespaces)), n >= 1, n <= 64 else {
                            throw ValidationError("--batch takes sizes from 1 to 64 separated by commas, got '\(item)'")
                        }
                        return n
                    }
                } ?? []
                var bench = GenerationBenchmark(model: try loadModel(path: path, threads: options.threads, weights: options.weights), promptTokens: prompt,
                                                decodeTokens: decode, repetitions: repetitions)
                bench.batchSizes = sizes
                var report = try bench.run()
                report.model = path
                print(jsonString(report))
            }
        }
    }

    struct Prefix: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time to first token on a 512-token RAG prompt without the prefix cache, with the instruction cached, with the whole prompt cached (JSON).")
        @OptionGroup var options: ModelOptions
        @Option(help: "Prompt length in tokens (the sample policy fills the context).") var prompt = 512
        @Option(help: "Repetitions; the median is reported.") var repetitions = 3

        func run() async throws {
            try await failing {
                let path = try options.resolvedModel()
                let model = try loadModel(path: path, threads: options.threads, weights: options.weights)
                let policy = (try? String(contentsOfFile: "samples/insurance/policy.md", encoding: .utf8))
                    ?? String(repeating: "제3조 (입원보험금) 회사는 피보험자가 입원한 경우 입원 1일당 5만원을 지급합니다. ", count: 40)
                func rag(_ question: String) -> [Int32] {
                    let encode = { (context: String) in
                        model.tokenizer.encode(PromptTemplate.korean.render(question: question, context: context), addSpecial: true, parseSpecial: false)
                    }
                    // The longest slice of the policy that keeps the prompt within `prompt` tokens.
                    var lo = 0, hi = policy.count
                    while lo < hi {
                        let mid = (lo + hi + 1) / 2
                        if encode(String(policy.prefix(mid))).count <= prompt { lo = mid } else { hi = mid - 1 }
                    }
                    return encode(String(policy.prefix(lo)))
                }
                var report = try PrefixCacheBenchmark(model: model, repetitions: repetitions)
                    .run(prompt: rag("입원하면 하루에 보험금을 얼마 받나요?"), earlier: rag("보험금 청구에 필요한 서류는 무엇인가요?"))
                report.model = path
                print(jsonString(report))
            }
        }
    }
}
