import DamdaAssistant
import Foundation
import HTTPTypes
import Hummingbird

/// One line of the feedback export: the rating with the answer and sources it rates.
struct ExportRow: Encodable {
    var id: Int64, answerID: String, rating: Rating, comment: String, correction: String, question: String, answer: String
    var citations: [Citation], model: String, adapter: String?, createdAt: String
    enum CodingKeys: String, CodingKey {
        case id, rating, comment, correction, question, answer, citations, model, adapter
        case answerID = "answer_id", createdAt = "created_at"
    }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(answerID, forKey: .answerID); try c.encode(rating, forKey: .rating)
        try c.encode(comment, forKey: .comment); try c.encode(correction, forKey: .correction); try c.encode(question, forKey: .question); try c.encode(answer, forKey: .answer)
        try c.encode(citations, forKey: .citations); try c.encode(model, forKey: .model)
        try c.encode(adapter, forKey: .adapter)   // null, not absent
        try c.encode(createdAt, forKey: .createdAt)
    }
}

/// `POST /v1/feedback` and `GET /v1/feedback/export`: ratings become eval and training data.
struct FeedbackRoutes {
    let server: ServerState

    func register(_ v1: RouterGroup<BasicRequestContext>) {
        v1.post("feedback") { req, _ in try await self.add(req) }
        v1.get("feedback/export") { req, _ in try await self.export(req) }
    }

    var log: any FeedbackStore { server.feedback }

    func add(_ request: Request) async throws -> Response {
        let body = try await JSONBody(request, limit: server.maxBodyBytes)
        let answerID = try body.requiredString("answer_id")
        let ratingText = try body.requiredString("rating")
        guard let rating = Rating(rawValue: ratingText) else { throw APIError.invalid("rating", "must be \"up\" or \"down\"") }
        // Comments become eval and training data: personal data in them is masked before it is stored.
        let comment = DocumentRedactor().masked(try body.string("comment") ?? "")
        guard comment.count <= 10_000 else { throw APIError.invalid("comment", "is longer than 10,000 characters") }
        // A correction becomes a training target: masked the same way, and only for a down-rated answer.
        let correction = DocumentRedactor().masked(try body.string("correction") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard correction.count <= 10_000 else { throw APIError.invalid("correction", "is longer than 10,000 characters") }
        if !correction.isEmpty && rating == .up { throw APIError.invalid("correction", "goes with rating \"down\": an answer rated up needs none") }
        let log = self.log
        guard let id = try log.addFeedback(answerID: answerID, rating: rating, comment: comment, correction: correction) else {
            throw APIError.notFound("no answer with id '\(answerID)'")
        }
        return try JSONResponse.object(["id": id, "answer_id": answerID, "rating": rating.rawValue, "correction": correction], status: .created)
    }

    func export(_ request: Request) async throws -> Response {
        let format = request.uri.queryParameters.get("format") ?? "jsonl"
        guard format == "jsonl" else { throw APIError.invalid("format", "must be jsonl") }
        if let kind = request.uri.queryParameters.get("as") { return try exportAs(kind, request) }
        let iso = ISO8601DateFormatter()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = ""
        for f in try log.feedback() {
            let row = ExportRow(id: f.id, answerID: f.answer.id, rating: f.rating, comment: f.comment, correction: f.correction, question: f.answer.question,
                                answer: f.answer.answer, citations: f.answer.citations, model: f.answer.model, adapter: f.answer.adapter,
                                createdAt: iso.string(from: f.createdAt))
            out += String(decoding: try encoder.encode(row), as: UTF8.self) + "\n"
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson; charset=utf-8",
                                               .contentDisposition: "attachment; filename=\"feedback.jsonl\""],
                        body: .init(byteBuffer: ByteBuffer(string: out)))
    }

    /// `?as=eval|sft|dpo|triage[&since=ISO8601]`: the ratings as eval or training data (the rows of
    /// `damda feedback export`; the manifest's counts and SHA-256 come as headers).
    func exportAs(_ kindText: String, _ request: Request) throws -> Response {
        guard let kind = FeedbackExportKind(rawValue: kindText) else { throw APIError.invalid("as", "must be eval, sft, dpo or triage") }
        var since: Date?
        if let s = request.uri.queryParameters.get("since") {
            guard let d = ISO8601DateFormatter().date(from: String(s)) else { throw APIError.invalid("since", "must be an ISO 8601 time") }
            since = d
        }
        var export = FeedbackExport(kind: kind, since: since, triage: FeedbackTriage(index: server.index))
        export.includeApproved = request.uri.queryParameters.get("include_approved") == "true"
        let (jsonl, manifest) = try export.run(try log.feedback(), preferences: kind == .dpo ? try server.panel.preferences() : [],
                                               panelCorrections: kind == .sft ? try server.panel.corrections() : [])
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson; charset=utf-8",
                                               .contentDisposition: "attachment; filename=\"feedback-\(kind.rawValue).jsonl\"",
                                               HTTPField.Name("X-Damda-Export-Rows")!: String(manifest.rows),
                                               HTTPField.Name("X-Damda-Export-SHA256")!: manifest.sha256],
                        body: .init(byteBuffer: ByteBuffer(string: jsonl)))
    }
}
