import ArgumentParser
import DamdaEngine
import Foundation

struct LogitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits", abstract: "Print the next-token logits after a prompt as JSON (ids and the top K).")
    @OptionGroup var options: ModelOptions
    @Option(help: "Prompt text (BOS added as the model's metadata says).") var prompt: String
    @Option(help: "How many of the highest logits to print.") var top = 10
    @Option(help: "Also write all logits as raw little-endian float32 to this file.") var rawOut: String?

    func run() async throws {
        try await failing {
            let model = try options.load().model
            let ids = model.tokenizer.encode(prompt)
            let cache = model.makeCache(capacity: ids.count)
            let logits = try model.forward(ids, cache: cache, logits: .last)
            let order = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }.prefix(top)
            let topList: [[String: Any]] = order.map {
                ["id": $0, "logit": Double(logits[$0]), "piece": model.tokenizer.tokenText(Int32($0))]
            }
            if let path = rawOut {
                try logits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path)) }
            }
            printJSON(["ids": ids.map(Int.init), "top": topList])
        }
    }
}
