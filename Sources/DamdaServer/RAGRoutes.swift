import Crypto
import DamdaAssistant
import DamdaDatasets
import DamdaEngine
import DamdaRetrieval
import Foundation
import HTTPTypes
import Hummingbird

/// `POST /v1/rag/ask`: a cited answer from the index, whole or as server-sent events.
struct RAGRoutes {
    let server: ServerState

    func register(_ v1: RouterGroup<BasicRequestContext>) {
        v1.post("rag/ask") { req, _ in try await self.ask(req) }
    }

    func ask(_ request: Request) async throws -> Response {
        let body = try await JSONBody(request, limit: server.maxBodyBytes)
        let question = try body.requiredString("question")
        var config = server.assistant.config
        if let k = try body.int("k", in: 1...50) { config.k = k }
        if let m = try body.string("mode") {
            guard let mode = SearchMode(rawValue: m) else { throw APIError.invalid("mode", "must be bm25, vector or hybrid") }
            if mode != .bm25 && !server.index.hasEmbeddings { throw APIError.invalid("mode", "needs an index with embeddings; use bm25") }
            config.mode = mode
        }
        if let b = try body.int("budget_tokens", in: 64...server.model.contextLength) { config.budgetTokens = b }
        if let c = try body.string("context") {
            guard let packing = ContextPacking(rawValue: c) else { throw APIError.invalid("context", "must be chunks or sentences") }
            config.contextPacking = packing
        }
        if let t = try body.int("max_tokens", in: 1...1024) { config.maxAnswerTokens = t }
        if let r = try body.double("min_relevance", in: 0...1) { config.minRelevance = Float(r) }
        if try body.bool("cache") == false { config.cache.exact = false; config.cache.semantic = false }
        config.cacheScope = Self.cacheScope(request)
        var history: [ChatMessage] = []
        if body.has("history") {
            guard let turns = body.object["history"] as? [[String: Any]] else { throw APIError.invalid("history", "must be an array of {role, content}") }
            history = try turns.enumerated().map { i, t in
                guard let role = t["role"] as? String, let content = t["content"] as? String else {
                    throw APIError.invalid("history[\(i)]", "must be {role, content} strings")
                }
                return ChatMessage(role: role, content: content)
            }
        }
        if server.scheduler.isFull { throw SchedulerError.queueFull(capacity: server.scheduler.maxQueue) }
        let assistant = server.assistant
        let stream = assistant.ask(question, history: history, config: config)
        if try body.bool("stream") == true {
            return Response(status: .ok, headers: EventStream.headers, body: ResponseBody { writer in
                do {
                    for try await event in stream {
                        switch event {
                        case .sources: break
                        case let .text(piece): try await writer.write(EventStream.line(["type": "delta", "text": piece]))
                        case let .done(answer):
                            try self.log(answer)
                            var final = JSONResponse.encode(answer) as? [String: Any] ?? [:]
                            final["type"] = "final"
                            try await writer.write(EventStream.line(final))
                        }
                    }
                } catch let e where !(e is CancellationError) {
                    let api = APIError.from(e)
                    try await writer.write(EventStream.line(["type": "error", "error": ["message": api.message, "type": api.type, "code": api.code]]))
                }
                try await writer.write(EventStream.done)
                try await writer.finish(nil)
            })
        }
        var result: AssistantAnswer?
        for try await event in stream { if case let .done(a) = event { result = a } }
        guard let answer = result else { throw APIError(.internalServerError, "no answer was produced", code: "internal_error") }
        try log(answer)
        var response = try JSONResponse.encodable(answer)
        response.headers[Self.cacheHeader] = answer.cache?.rawValue ?? "miss"
        return response
    }

    static let cacheHeader = HTTPField.Name("X-Damda-Cache")!

    /// The tenant a request's cached answers belong to: a digest of its API key (never the key itself).
    static func cacheScope(_ request: Request) -> String {
        guard let auth = request.headers[.authorization], !auth.isEmpty else { return "public" }
        return "key:" + SHA256.hash(data: Data(auth.utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// Every served answer is kept so feedback can refer to it.
    func log(_ a: AssistantAnswer) throws {
        server.metrics.record(a.guardDecision)
        try server.feedback.record(AnswerRecord(a))
    }
}
