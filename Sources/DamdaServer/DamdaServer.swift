import DamdaAssistant
import DamdaEngine
import DamdaRetrieval
import Foundation
import Hummingbird
import Logging

public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var apiKeys: Set<String> = []
    public init() {}
}

/// The HTTP server: OpenAI-compatible routes, RAG, documents, feedback, health, metrics, the web page.
public enum DamdaServer {
    public static func makeRouter(_ state: ServerState, options: ServerOptions) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestMetricsMiddleware(metrics: state.metrics))
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: APIKeyMiddleware(keys: options.apiKeys))
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.index_html)))
        }
        router.get("/panel") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.panel_html)))
        }
        router.get("/health") { _, _ in
            try JSONResponse.object(["status": "ok", "model": state.modelName, "adapter": state.assistant.adapterName ?? NSNull(),
                                     "chunks": state.index.chunkCount,
                                     "embeddings": state.index.hasEmbeddings, "vector_search": state.index.vectorIndexKind, "queue_depth": state.scheduler.queueDepth])
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: state.metrics.text(scheduler: state.scheduler, cache: state.cache))))
        }
        let v1 = router.group("v1")
        OpenAIRoutes(server: state).register(v1)
        RAGRoutes(server: state).register(v1)
        DocumentRoutes(server: state).register(v1)
        FeedbackRoutes(server: state).register(v1)
        PanelRoutes(server: state).register(v1)
        return router
    }

    /// Serves until the process is stopped (SIGINT/SIGTERM end it gracefully).
    public static func run(_ state: ServerState, options: ServerOptions, logger: Logger) async throws {
        let app = Application(router: makeRouter(state, options: options),
                              configuration: .init(address: .hostname(options.host, port: options.port), serverName: "damda"),
                              onServerRunning: { channel in
                                  logger.info("damda serving on http://\(options.host):\(channel.localAddress?.port ?? options.port)")
                              },
                              logger: logger)
        try await app.runService()
    }
}
