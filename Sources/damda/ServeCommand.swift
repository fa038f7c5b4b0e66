import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaPostgres
import DamdaRetrieval
import DamdaServer
import Foundation
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "HTTP server: OpenAI-compatible API, RAG endpoint, documents, feedback, metrics and the evaluator web page.")
    @OptionGroup var indexOptions: IndexOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var options: AssistantOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8080
    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer KEY' on /v1 routes (repeatable).") var apiKeys: [String] = []
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 8 << 20
    @Option(help: "Generations interleaved at once.") var maxActive = 8
    @Option(help: "Generation requests that may wait for a slot before 429.") var maxQueue = 16
    @Flag(help: "Mask personal data in uploaded documents before they are indexed (as `damda ingest --redact-pii`).") var redactPii = false
    @Option(help: "Megabytes of prompt keys and values kept so prompts that start the same skip that part of prefill (0: off).") var prefixCacheMegabytes = 128

    func run() async throws {
        try await failing {
            let (model, _, name, adapterName) = try modelOptions.load(useDefaultAdapter: true)
            let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: modelOptions.threads))
            let state = try ServerState(model: model, modelName: name, adapterName: adapterName,
                                    index: idx, config: try options.config(model: model, adapterDirectory: try modelOptions.assistantAdapterDirectory()), chatTemplate: model.chatTemplate,
                                    maxBodyBytes: maxBodyBytes, maxActive: maxActive, maxQueue: maxQueue,
                                    prefixCacheBytes: prefixCacheMegabytes << 20, feedback: try feedbackStore(beside: idx), panel: try panelStore(beside: idx),
                                    makeCache: answerCache(beside:))
            state.redactDocuments = redactPii
            state.panelJobs = PanelJobs(answering: LocalPanelAnswering(index: idx, modelPath: try modelOptions.resolvedModel(), threads: modelOptions.threads),
                                        store: state.panel)
            var server = ServerOptions()
            server.host = host
            server.port = port
            server.apiKeys = Set(apiKeys)
            var logger = Logger(label: "damda")
            logger.logLevel = .info
            try await DamdaServer.run(state, options: server, logger: logger)
        }
    }
}
