import DamdaCore
import DamdaEngine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var code: String
    public var param: String?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, code: String, param: String? = nil) {
        self.status = status; self.message = message; self.code = code; self.param = param
        self.type = type ?? (status == .unauthorized ? "authentication_error" : status == .notFound ? "not_found_error"
            : status == .tooManyRequests ? "rate_limit_error" : status.code >= 500 ? "server_error" : "invalid_request_error")
    }

    public static func missing(_ field: String) -> APIError {
        APIError(.badRequest, "'\(field)' is required", code: "missing_field", param: field)
    }
    public static func invalid(_ field: String, _ why: String) -> APIError {
        APIError(.badRequest, "'\(field)' \(why)", code: "invalid_value", param: field)
    }
    public static func notFound(_ what: String) -> APIError { APIError(.notFound, what, code: "not_found") }

    public var headers: HTTPFields { [.contentType: "application/json; charset=utf-8"] }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: [String: Any] = ["error": ["message": message, "type": type, "param": param as Any? ?? NSNull(), "code": code]]
        let data = try JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Maps anything thrown below the routes to the API's error shape.
    static func from(_ error: Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as EngineError:
            if case .contextOverflow = e { return APIError(.badRequest, e.message, code: "context_length_exceeded") }
            return APIError(.badRequest, e.message, code: "invalid_value")
        case let e as SchedulerError:
            if case let .queueFull(n) = e { return APIError(.tooManyRequests, "the generation queue is full (\(n) waiting): retry later", code: "queue_full") }
            return APIError(.tooManyRequests, "busy", code: "queue_full")
        case let e as HTTPError:
            switch e.status {
            case .contentTooLarge: return APIError(.contentTooLarge, "the request body is over the size limit", code: "request_too_large")
            case .notFound: return APIError(.notFound, "no such route", code: "not_found")
            case .methodNotAllowed: return APIError(.methodNotAllowed, "method not allowed on this route", code: "method_not_allowed")
            default: return APIError(e.status, e.body ?? e.status.reasonPhrase, code: "http_\(e.status.code)")
            }
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, "the request body is over the size limit", code: "request_too_large")
        case let e as DamdaError: return APIError(.badRequest, e.message, code: "invalid_value")
        default: return APIError(.internalServerError, "internal error: \(error)", code: "internal_error")
        }
    }
}

/// Turns every thrown error into OpenAI's error JSON, including the router's own 404/413.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await next(request, context) } catch { throw APIError.from(error) }
    }
}

/// With keys configured, every /v1 route needs `Authorization: Bearer KEY`.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: Set<String>
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !keys.isEmpty, request.uri.path.hasPrefix("/v1") else { return try await next(request, context) }
        guard let auth = request.headers[.authorization] else {
            throw APIError(.unauthorized, "missing API key: send 'Authorization: Bearer KEY'", code: "invalid_api_key")
        }
        let parts = auth.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", keys.contains(String(parts[1]).trimmingCharacters(in: .whitespaces)) else {
            throw APIError(.unauthorized, "invalid API key", code: "invalid_api_key")
        }
        return try await next(request, context)
    }
}
