import Crypto
import DamdaAssistant
import DamdaRetrieval
import Foundation
import Hummingbird
import MultipartKit

/// `POST/GET /v1/documents`, `DELETE /v1/documents/{id}`: the index, managed over HTTP.
struct DocumentRoutes {
    let server: ServerState

    func register(_ v1: RouterGroup<BasicRequestContext>) {
        v1.post("documents") { req, _ in try await self.add(req) }
        v1.get("documents") { _, _ in try await self.list() }
        // Ids are often paths ("samples/insurance/policy.md"): take every remaining segment.
        v1.delete("documents/**") { _, ctx in
            let id = ctx.parameters.getCatchAll().joined(separator: "/")
            return try await self.delete(id.removingPercentEncoding ?? id)
        }
    }

    func add(_ request: Request) async throws -> Response {
        var req = request
        let contentType = request.headers[.contentType] ?? ""
        let buffer = try await req.collectBody(upTo: server.maxBodyBytes)
        var loaded: LoadResult
        if contentType.lowercased().hasPrefix("multipart/form-data") {
            loaded = try Self.upload(buffer, contentType: contentType)
        } else {
            loaded = LoadResult(documents: [try Self.document(JSONBody(data: Data(buffer: buffer)))])
        }
        guard !loaded.documents.isEmpty else {
            let why = loaded.problems.map(\.description).joined(separator: "; ")
            throw APIError(.badRequest, "no document could be read" + (why.isEmpty ? "" : ": " + why), code: "invalid_document")
        }
        if server.redactDocuments { DocumentRedactor().redact(&loaded) }
        let ids = loaded.documents.map(\.id)
        let toIngest = loaded
        let (summary, stored) = try await server.withIndex { idx in
            (try idx.ingest(toIngest, progress: false), try idx.store.documents().filter { ids.contains($0.id) })
        }
        return try JSONResponse.object([
            "documents": stored.map { ["id": $0.id, "title": $0.title, "source": $0.source, "chunks": $0.chunks] },
            "summary": ["added": summary.added, "updated": summary.updated, "skipped": summary.skipped, "chunks": summary.chunks,
                        "problems": loaded.problems.map(\.description), "seconds": summary.seconds],
        ], status: .created)
    }

    static func document(_ body: JSONBody) throws -> Document {
        let text = try body.requiredString("text")
        let digest = SHA256.hash(data: Data(text.utf8)).prefix(6).map { String(format: "%02x", $0) }.joined()
        let id = try body.string("id") ?? "doc-\(digest)"
        guard !id.isEmpty, !id.hasPrefix("/") else { throw APIError.invalid("id", "must be a non-empty id") }
        let firstLine = text.split(separator: "\n").first.map { String($0.prefix(60)) } ?? id
        let title = try body.string("title") ?? firstLine
        var tags: [String] = []
        if body.has("tags") {
            guard let t = body.object["tags"] as? [String] else { throw APIError.invalid("tags", "must be an array of strings") }
            tags = t
        }
        return Document(id: id, title: title, source: try body.string("source") ?? id,
                        sections: [Document.Section(text: text)], tags: tags)
    }

    /// A multipart upload: the `file` part is saved under its name and read by the ingest loader.
    static func upload(_ buffer: ByteBuffer, contentType: String) throws -> LoadResult {
        guard let boundary = contentType.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
            .first(where: { $0.lowercased().hasPrefix("boundary=") })?.dropFirst("boundary=".count) else {
            throw APIError(.badRequest, "multipart body without a boundary", code: "invalid_multipart")
        }
        var parts: [(headers: [String: String], body: ByteBuffer)] = []
        var headers: [String: String] = [:]
        var body = ByteBuffer()
        let parser = MultipartParser(boundary: String(boundary).trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
        parser.onHeader = { name, value in headers[name.lowercased()] = value }
        parser.onBody = { chunk in body.writeBuffer(&chunk) }
        parser.onPartComplete = { parts.append((headers, body)); headers = [:]; body = ByteBuffer() }
        do { try parser.execute(buffer) } catch {
            throw APIError(.badRequest, "malformed multipart body", code: "invalid_multipart")
        }
        func disposition(_ h: [String: String], _ key: String) -> String? {
            guard let d = h["content-disposition"] else { return nil }
            for item in d.split(separator: ";") {
                let kv = item.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == key { return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
            return nil
        }
        func field(_ name: String) -> String? {
            parts.first { disposition($0.headers, "name") == name }.map { String(buffer: $0.body) }
        }
        guard let file = parts.first(where: { disposition($0.headers, "name") == "file" }) else { throw APIError.missing("file") }
        let rawName = disposition(file.headers, "filename") ?? "upload.txt"
        let name = (rawName as NSString).lastPathComponent.replacingOccurrences(of: "..", with: "_")
        guard DocumentLoader.extensions.contains((name as NSString).pathExtension.lowercased()) else {
            throw APIError.invalid("file", "must be txt, md, html, pdf, jsonl or csv (got '\(name)')")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-upload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: path, contents: Data(buffer: file.body))
        var loaded = DocumentLoader().load([path])
        let tags = field("tags")?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
        let givenID = field("id")
        for i in loaded.documents.indices {
            let d = loaded.documents[i]
            // Records from jsonl/csv keep their ids; a whole file is named by the form's id or its file name.
            if d.id == path { loaded.documents[i].id = givenID ?? "upload/\(name)" }
            loaded.documents[i].source = d.source.replacingOccurrences(of: dir.path + "/", with: "")
            if d.title == path || d.title.isEmpty { loaded.documents[i].title = name }
            loaded.documents[i].tags += tags
        }
        return loaded
    }

    func list() async throws -> Response {
        let docs = try await server.withIndex { try $0.store.documents() }
        return try JSONResponse.object(["object": "list", "data": docs.map { ["id": $0.id, "title": $0.title, "source": $0.source, "chunks": $0.chunks] }])
    }

    func delete(_ id: String) async throws -> Response {
        let found = try await server.withIndex { idx -> Bool in
            guard try idx.store.documents().contains(where: { $0.id == id }) else { return false }
            try idx.store.remove(documentIDs: [id])
            try idx.reload()
            return true
        }
        guard found else { throw APIError.notFound("no document with id '\(id)'") }
        return try JSONResponse.object(["id": id, "deleted": true])
    }
}
