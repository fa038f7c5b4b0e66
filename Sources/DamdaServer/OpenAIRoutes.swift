import DamdaAssistant
import DamdaEngine
import DamdaRetrieval
import Foundation
import Hummingbird

/// `/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` in OpenAI's schema.
struct OpenAIRoutes {
    let server: ServerState

    func register(_ v1: RouterGroup<BasicRequestContext>) {
        v1.get("models") { _, _ in try self.models() }
        v1.post("chat/completions") { req, _ in try await self.complete(req, chat: true) }
        v1.post("completions") { req, _ in try await self.complete(req, chat: false) }
        v1.post("embeddings") { req, _ in try await self.embeddings(req) }
    }

    func models() throws -> Response {
        var data: [[String: Any]] = [["id": server.modelName, "object": "model", "created": server.started, "owned_by": "damda"]]
        if let e = server.embedder { data.append(["id": e.name, "object": "model", "created": server.started, "owned_by": "damda"]) }
        return try JSONResponse.object(["object": "list", "data": data])
    }

    static func messageText(_ content: Any?, index: Int) throws -> String {
        if let s = content as? String { return s }
        // Content parts: only text parts are understood.
        if let parts = content as? [[String: Any]] {
            return try parts.map { p in
                guard p["type"] as? String == "text", let t = p["text"] as? String else {
                    throw APIError.invalid("messages[\(index)].content", "parts must be {\"type\":\"text\",\"text\":...}")
                }
                return t
            }.joined()
        }
        throw APIError.invalid("messages[\(index)].content", "must be a string or an array of text parts")
    }

    /// The prompt ids, with user text kept from becoming control tokens.
    func prompt(_ body: JSONBody, chat: Bool) throws -> [Int32] {
        let tok = server.model.tokenizer
        guard chat else {
            guard body.has("prompt") else { throw APIError.missing("prompt") }
            guard let p = body.object["prompt"] as? String else { throw APIError.invalid("prompt", "must be a string") }
            guard !p.isEmpty else { throw APIError.invalid("prompt", "must not be empty") }
            return tok.encode(p, addSpecial: true, parseSpecial: false)
        }
        guard body.has("messages") else { throw APIError.missing("messages") }
        guard let raw = body.object["messages"] as? [Any], !raw.isEmpty else { throw APIError.invalid("messages", "must be a non-empty array") }
        let messages = try raw.enumerated().map { i, m -> ChatMessage in
            guard let o = m as? [String: Any] else { throw APIError.invalid("messages[\(i)]", "must be an object") }
            guard let role = o["role"] as? String else { throw APIError.missing("messages[\(i)].role") }
            guard ["system", "user", "assistant", "developer"].contains(role) else {
                throw APIError.invalid("messages[\(i)].role", "must be system, user or assistant")
            }
            guard o["content"] != nil else { throw APIError.missing("messages[\(i)].content") }
            return ChatMessage(role: role == "developer" ? "system" : role, content: ChatTemplate.removingControlTokens(try Self.messageText(o["content"], index: i)))
        }
        return tok.encode(server.chatTemplate.render(messages), addSpecial: true, parseSpecial: true)
    }

    func complete(_ request: Request, chat: Bool) async throws -> Response {
        let body = try await JSONBody(request, limit: server.maxBodyBytes)
        if let n = try body.int("n", in: 1...1) { _ = n }
        let ids = try prompt(body, chat: chat)
        guard ids.count < server.model.contextLength else {
            throw APIError(.badRequest, "the prompt has \(ids.count) tokens but the model's context holds \(server.model.contextLength)",
                           code: "context_length_exceeded", param: chat ? "messages" : "prompt")
        }
        let maxTokens = try body.int("max_completion_tokens", in: 1...server.model.contextLength)
            ?? body.int("max_tokens", in: 1...server.model.contextLength) ?? 256
        var req = GenerationRequest(prompt: ids, maxTokens: min(maxTokens, server.model.contextLength - ids.count),
                                    sampling: SamplingParameters(temperature: Float(try body.double("temperature", in: 0...2) ?? 1),
                                                                 topP: Float(try body.double("top_p", in: 0.000001...1) ?? 1),
                                                                 seed: UInt64(try body.int("seed", in: 0...Int.max) ?? 0)),
                                    stop: try body.strings("stop", max: 4) ?? [])
        if chat { req.stop.append("<end_of_turn>") }
        let stream = try await server.startGeneration(req)   // 429 / 400 before any byte is sent
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(24).lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let model = server.modelName
        let object = chat ? "chat.completion" : "text_completion"
        if try body.bool("stream") == true {
            let includeUsage = (body.object["stream_options"] as? [String: Any])?["include_usage"] as? Bool ?? false
            return Response(status: .ok, headers: EventStream.headers, body: ResponseBody { writer in
                func chunk(_ text: String?, finish: String?) -> [String: Any] {
                    let choice: [String: Any] = chat
                        ? ["index": 0, "delta": text.map { ["content": $0] } ?? [:], "finish_reason": finish ?? NSNull()]
                        : ["index": 0, "text": text ?? "", "finish_reason": finish ?? NSNull()]
                    return ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created, "model": model, "choices": [choice]]
                }
                if chat {
                    var first = chunk(nil, finish: nil)
                    first["choices"] = [["index": 0, "delta": ["role": "assistant", "content": ""], "finish_reason": NSNull()]]
                    try await writer.write(EventStream.line(first))
                }
                for try await event in stream {
                    switch event {
                    case let .text(piece): try await writer.write(EventStream.line(chunk(piece, finish: nil)))
                    case let .done(s):
                        try await writer.write(EventStream.line(chunk(chat ? nil : "", finish: Self.finishReason(s))))
                        if includeUsage {
                            var u = chunk(nil, finish: nil)
                            u["choices"] = []
                            u["usage"] = Self.usage(s)
                            try await writer.write(EventStream.line(u))
                        }
                    }
                }
                try await writer.write(EventStream.done)
                try await writer.finish(nil)
            })
        }
        var summary: GenerationSummary?
        for try await event in stream { if case let .done(s) = event { summary = s } }
        guard let s = summary else { throw APIError(.internalServerError, "generation ended without a result", code: "internal_error") }
        let choice: [String: Any] = chat
            ? ["index": 0, "message": ["role": "assistant", "content": s.text], "finish_reason": Self.finishReason(s), "logprobs": NSNull()]
            : ["index": 0, "text": s.text, "finish_reason": Self.finishReason(s), "logprobs": NSNull()]
        return try JSONResponse.object(["id": id, "object": object, "created": created, "model": model, "choices": [choice], "usage": Self.usage(s)])
    }

    static func finishReason(_ s: GenerationSummary) -> String { s.finishReason == .length ? "length" : "stop" }

    static func usage(_ s: GenerationSummary) -> [String: Int] {
        ["prompt_tokens": s.promptTokens, "completion_tokens": s.tokens.count, "total_tokens": s.promptTokens + s.tokens.count]
    }

    func embeddings(_ request: Request) async throws -> Response {
        let body = try await JSONBody(request, limit: server.maxBodyBytes)
        guard let embedder = server.embedder as? E5Embedder else {
            throw APIError(.badRequest, "no embedding model is loaded: run `damda model fetch --embedding`", code: "model_not_available")
        }
        guard let inputs = try body.strings("input") else {
            if body.has("input") { throw APIError.invalid("input", "must be a string or an array of strings (token arrays are not supported)") }
            throw APIError.missing("input")
        }
        guard !inputs.isEmpty, inputs.count <= 256 else { throw APIError.invalid("input", "must hold 1 to 256 strings") }
        let format = try body.string("encoding_format") ?? "float"
        guard format == "float" || format == "base64" else { throw APIError.invalid("encoding_format", "must be float or base64") }
        // e5 wants a role prefix: inputs are queries unless they say "passage: ".
        let texts = inputs.map { $0.hasPrefix("passage: ") || $0.hasPrefix("query: ") ? $0 : "query: " + $0 }
        let vectors = try await server.embed(texts, with: embedder)
        let tokens = texts.reduce(0) { $0 + embedder.encoder.windows($1).reduce(0) { $0 + $1.count } }
        let data = vectors.enumerated().map { i, v -> [String: Any] in
            let value: Any = format == "base64" ? v.withUnsafeBytes { Data($0).base64EncodedString() } : v.map { Double($0) }
            return ["object": "embedding", "index": i, "embedding": value]
        }
        return try JSONResponse.object(["object": "list", "data": data, "model": embedder.name,
                                        "usage": ["prompt_tokens": tokens, "total_tokens": tokens]])
    }
}
