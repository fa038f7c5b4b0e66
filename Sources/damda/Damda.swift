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
        subcommands: [ModelCommand.self, TokenizeCommand.self, LogitsCommand.self, GenerateCommand.self, IngestCommand.self, SearchCommand.self, AskCommand.self, ChatCommand.self, BatchCommand.self, ServeCommand.self, FeedbackCommand.self, PanelCommand.self, DataCommand.self, GuardCommand.self, TrainCommand.self, TuneCommand.self, AdapterCommand.self, EvalCommand.self, BenchCommand.self])
}

/// Options every model-using command shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Path to a GGUF model (default: $DAMDA_MODEL, else the default model in the cache).")
    var model: String?

    @Option(name: .long, help: "Worker threads (default: all cores).")
    var threads: Int = Threads.available

    @Option(name: .long, help: "A LoRA adapter folder (Hugging Face PEFT format, e.g. from `damda train`) applied to the model; ask, chat, serve and bench answers apply the shipped Korean RAG adapter (models/ko-rag) to the default model without it.")
    var adapter: String?

    @Flag(name: .long, help: "Run the base model alone: no default adapter.")
    var noAdapter = false

    @Option(name: .long, help: "Where the layer weights live: decode (copied once at load into huge pages, the 4- and 6-bit ones, and the 5-bit ones without AVX-512, re-laid for the fastest decode) or file (read from the model file's mapping as stored, shared between processes: for the default model about 11 MB less memory with AVX-512 and 38 MB less without, decode up to a fifth slower). Default: decode, or file with DAMDA_REPACK=0.")
    var weights: WeightLayout = .standard

    func resolvedModel() throws -> String {
        try ModelCache.resolveModel(model)
    }

    /// The adapter a command applies: --adapter, else (for the assistant commands, on the default
    /// model, without --no-adapter) the shipped default adapter; nil for the base model alone.
    func adapterChoice(modelPath: String, useDefault: Bool) throws -> (directory: String, isDefault: Bool)? {
        if let dir = adapter {
            if noAdapter { throw ValidationError("--adapter and --no-adapter contradict each other") }
            return (dir, false)
        }
        guard useDefault, !noAdapter, DefaultAdapter.isDefaultModel(modelPath) else { return nil }
        return (try DefaultAdapter.locate(), true)
    }

    /// The folder of the adapter the assistant commands apply (nil: the base model alone).
    func assistantAdapterDirectory() throws -> String? {
        try adapterChoice(modelPath: try resolvedModel(), useDefault: true)?.directory
    }

    /// The model with its adapter applied (`useDefaultAdapter`: the assistant commands' default).
    func load(useDefaultAdapter: Bool = false) throws -> (model: any LanguageModel, path: String, name: String, adapterName: String?) {
        let path = try resolvedModel()
        let choice = try adapterChoice(modelPath: path, useDefault: useDefaultAdapter)
        if let c = choice, c.isDefault { try DefaultAdapter.verify(directory: c.directory) }
        let model = try loadModel(path: path, threads: threads, weights: weights)
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        guard let dir = choice?.directory else { return (model, path, name, nil) }
        try applyAdapter(directory: dir, to: model)
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

extension WeightLayout: ExpressibleByArgument {}
