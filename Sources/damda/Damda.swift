import ArgumentParser
import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

@main
struct Damda: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "damda",
        abstract: "Put your company's knowledge into a small LLM: exact CPU inference, retrieval, fine-tuning, serving.",
        subcommands: [ModelCommand.self, TokenizeCommand.self, LogitsCommand.self, GenerateCommand.self, IngestCommand.self, SearchCommand.self, AskCommand.self, ChatCommand.self, ServeCommand.self, TrainCommand.self, AdapterCommand.self, BenchCommand.self])
}

/// Options every model-using command shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Path to a GGUF model (default: $DAMDA_MODEL, else the default model in the cache).")
    var model: String?

    @Option(name: .long, help: "Worker threads (default: all cores).")
    var threads: Int = Threads.available

    @Option(name: .long, help: "A LoRA adapter folder (Hugging Face PEFT format, e.g. from `damda train`) applied to the model.")
    var adapter: String?

    func resolvedModel() throws -> String {
        try ModelCache.resolveModel(model)
    }

    /// The model with --adapter applied (Gemma 3 only: Llama GGUFs store Q/K permuted).
    func load() throws -> (model: any LanguageModel, path: String, name: String, adapterName: String?) {
        let path = try resolvedModel()
        let model = try loadModel(path: path, threads: threads)
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        guard let dir = adapter else { return (model, path, name, nil) }
        guard let adaptable = model as? any AdaptableModel else { throw LoRAError.badAdapter("this model cannot take adapters") }
        adaptable.adapter = try LoRAAdapter.load(directory: dir, geometry: adaptable.loraGeometry, rowOrder: adaptable.huggingFaceRowOrder).adapter
        return (model, path, name, URL(fileURLWithPath: dir).standardizedFileURL.lastPathComponent)
    }
}

/// Prints a DamdaError's message without Swift's error decoration and exits non-zero.
func failing<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let e as DamdaError {
        FileHandle.standardError.write("error: \(e.message)\n".data(using: .utf8)!)
        throw ExitCode(1)
    }
}

func printJSON(_ object: Any) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}
