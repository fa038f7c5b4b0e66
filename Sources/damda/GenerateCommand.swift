import ArgumentParser
import DamdaEngine
import DamdaModelIO
import Foundation

/// Sampling flags shared by generate, ask and serve.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Maximum new tokens.") var maxTokens = 256
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0
    @Option(help: "Keep only the K most likely tokens (0: off).") var topK = 0
    @Option(help: "Nucleus sampling: keep tokens up to this cumulative probability.") var topP: Float = 1
    @Option(help: "Drop tokens below this fraction of the best token's probability.") var minP: Float = 0
    @Option(help: "Penalty for repeating recent tokens (1: off).") var repetitionPenalty: Float = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(name: .customLong("stop"), help: "Stop before this string (repeatable).") var stop: [String] = []

    var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                           repetitionPenalty: repetitionPenalty, seed: seed)
    }
}

struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Stream a completion of a prompt.")
    @OptionGroup var options: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Prompt text.") var prompt: String
    @Flag(help: "Wrap the prompt in the model's chat template as a user turn.") var chat = false
    @Flag(help: "Print timing statistics to standard error.") var stats = false

    func run() async throws {
        try await failing {
            let (model, _, _, _) = try options.load()
            let text = chat ? model.chatTemplate.render([ChatMessage(role: "user", content: prompt)]) : prompt
            let req = GenerationRequest(prompt: model.tokenizer.encode(text), maxTokens: sampling.maxTokens,
                                        sampling: sampling.parameters, stop: sampling.stop)
            for try await event in Generator(model: model).stream(req) {
                switch event {
                case let .text(piece):
                    FileHandle.standardOutput.write(piece.data(using: .utf8)!)
                case let .done(s):
                    print()
                    if stats {
                        let line = String(format: "[%d prompt tokens, %.1f tok/s prefill; %d generated, %.1f tok/s decode; %@]\n",
                                          s.promptTokens, s.promptTokensPerSecond, s.tokens.count, s.decodeTokensPerSecond, s.finishReason.rawValue)
                        FileHandle.standardError.write(line.data(using: .utf8)!)
                    }
                }
            }
        }
    }
}
