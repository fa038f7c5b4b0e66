import Foundation
import Hummingbird

/// A request's JSON object with typed, validating accessors whose errors name the field.
struct JSONBody {
    let object: [String: Any]

    init(_ request: Request, limit: Int) async throws {
        var req = request
        let buffer = try await req.collectBody(upTo: limit)
        try self.init(data: Data(buffer: buffer))
    }

    init(data: Data) throws {
        guard !data.isEmpty else { throw APIError(.badRequest, "the request body is empty: send a JSON object", code: "invalid_json") }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            throw APIError(.badRequest, "the request body is not valid JSON", code: "invalid_json")
        }
        guard let o = parsed as? [String: Any] else { throw APIError(.badRequest, "the request body must be a JSON object", code: "invalid_json") }
        object = o
    }

    /// JSON true/false parse to a boolean NSNumber subclass, which `is Bool` cannot tell from 0 and 1 on Linux.
    static let booleanType: Any.Type = type(of: (try! JSONSerialization.jsonObject(with: Data("[true]".utf8)) as! [Any])[0])
    static func isBoolean(_ v: Any?) -> Bool { v.map { type(of: $0) == booleanType } ?? false }

    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let s = object[key] as? String else { throw APIError.invalid(key, "must be a string") }
        return s
    }
    func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw APIError.missing(key) }
        guard !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw APIError.invalid(key, "must not be empty") }
        return s
    }
    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !Self.isBoolean(object[key]), n.doubleValue == n.doubleValue.rounded() else {
            throw APIError.invalid(key, "must be an integer")
        }
        guard range.contains(n.intValue) else { throw APIError.invalid(key, "must be in \(range.lowerBound)...\(range.upperBound)") }
        return n.intValue
    }
    func double(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !Self.isBoolean(object[key]) else { throw APIError.invalid(key, "must be a number") }
        guard range.contains(n.doubleValue) else { throw APIError.invalid(key, "must be in \(range.lowerBound)...\(range.upperBound)") }
        return n.doubleValue
    }
    func bool(_ key: String) throws -> Bool? {
        guard has(key) else { return nil }
        guard Self.isBoolean(object[key]), let b = object[key] as? Bool else { throw APIError.invalid(key, "must be true or false") }
        return b
    }
    /// A string or an array of strings (OpenAI's `stop`, `input`).
    func strings(_ key: String, max: Int = .max) throws -> [String]? {
        guard has(key) else { return nil }
        if let s = object[key] as? String { return [s] }
        guard let a = object[key] as? [Any], let ss = a as? [String] else { throw APIError.invalid(key, "must be a string or an array of strings") }
        guard ss.count <= max else { throw APIError.invalid(key, "holds at most \(max) strings") }
        return ss
    }
}

extension Data {
    init(buffer: ByteBuffer) {
        self = buffer.withUnsafeReadableBytes { Data($0) }
    }
}

/// JSON responses from Foundation objects or Encodable values.
enum JSONResponse {
    static let headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]

    static func object(_ o: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: o, options: [.withoutEscapingSlashes])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func encodable<T: Encodable>(_ v: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let enc = JSONEncoder()
        enc.outputFormatting = [.withoutEscapingSlashes]
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try enc.encode(v))))
    }

    static func encode<T: Encodable>(_ v: T) -> Any {
        let enc = JSONEncoder()
        return (try? JSONSerialization.jsonObject(with: enc.encode(v))) ?? NSNull()
    }
}

/// Server-sent events: `data: …\n\n` lines, flushed as written.
struct EventStream {
    static let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]

    static func line(_ o: Any) -> ByteBuffer {
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
        var b = ByteBuffer(string: "data: ")
        b.writeBytes(data)
        b.writeString("\n\n")
        return b
    }

    static let done = ByteBuffer(string: "data: [DONE]\n\n")
}
