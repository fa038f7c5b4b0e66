import Foundation

/// A chat model behind an OpenAI-compatible endpoint on the company's network (vLLM, llama.cpp's
/// server, `damda serve`): the plumbing the eval judge and the synthesis teacher share. Nothing
/// here defaults to a hosted API; the caller names the URL.
public struct ChatEndpoint: Sendable {
    /// Base URL, e.g. http://10.0.0.5:8000 (with or without a trailing /v1).
    public var url: URL
    public var model: String
    public var key: String?
    public var timeout: TimeInterval = 60

    public init(url: URL, model: String, key: String? = nil) { self.url = url; self.model = model; self.key = key }

    public enum Failure: Error, CustomStringConvertible {
        case http(Int, String)
        case timeout(TimeInterval)
        case transport(String)
        case malformed(String)
        public var description: String {
            switch self {
            case let .http(code, body): "the endpoint answered HTTP \(code): \(body.prefix(200))"
            case let .timeout(s): "the endpoint did not answer within \(Int(s)) s"
            case let .transport(why): "the endpoint is unreachable: \(why)"
            case let .malformed(reply): "the reply is not an OpenAI chat completion: \(reply.prefix(200))"
            }
        }
    }

    struct ChatRequest: Encodable {
        struct Message: Encodable { var role: String, content: String }
        var model: String
        var messages: [Message]
        var temperature: Double
        var maxTokens: Int
        enum CodingKeys: String, CodingKey { case model, messages, temperature, maxTokens = "max_tokens" }
    }

    struct ChatResponse: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable { var content: String? }
            var message: Message
        }
        var choices: [Choice]
    }

    var completionsURL: URL {
        var base = url.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return URL(string: base.hasSuffix("/v1") ? base + "/chat/completions" : base + "/v1/chat/completions")!
    }

    /// One completion's text for a system and a user message.
    public func complete(system: String, user: String, maxTokens: Int, temperature: Double = 0) async throws -> String {
        var headers = [("Content-Type", "application/json")]
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
        let body = try JSONEncoder().encode(ChatRequest(model: model, messages: [.init(role: "system", content: system),
                                                                                 .init(role: "user", content: user)],
                                                        temperature: temperature, maxTokens: maxTokens))
        let reply: HTTPPost.Reply
        do {
            reply = try await HTTPPost.send(completionsURL, headers: headers, body: body, timeout: timeout)
        } catch HTTPPost.Failure.timedOut {
            throw Failure.timeout(timeout)
        } catch {
            throw Failure.transport("\(error)")
        }
        guard reply.status == 200 else { throw Failure.http(reply.status, String(decoding: reply.body, as: UTF8.self)) }
        guard let response = try? JSONDecoder().decode(ChatResponse.self, from: reply.body),
              let text = response.choices.first?.message.content else {
            throw Failure.malformed(String(decoding: reply.body, as: UTF8.self))
        }
        return text
    }

    /// The first balanced {...} in a reply that parses as JSON (models wrap JSON in prose or code fences).
    public static func firstJSONObject(in text: String) -> Data? {
        var depth = 0
        var start: String.Index?
        var inString = false, escaped = false
        for i in text.indices {
            let c = text[i]
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
                continue
            }
            if c == "\"", depth > 0 { inString = true; continue }
            if c == "{" { if depth == 0 { start = i }; depth += 1 }
            if c == "}", depth > 0 {
                depth -= 1
                if depth == 0, let s = start {
                    let data = Data(text[s...i].utf8)
                    if (try? JSONSerialization.jsonObject(with: data)) is [String: Any] { return data }
                    start = nil
                }
            }
        }
        return nil
    }
}
