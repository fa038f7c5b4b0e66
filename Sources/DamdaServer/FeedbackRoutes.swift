import DamdaRetrieval
import Foundation
import Hummingbird

/// `POST /v1/feedback` and `GET /v1/feedback/export`: ratings become eval and training data.
struct FeedbackRoutes {
    let server: ServerState

    func register(_ v1: RouterGroup<BasicRequestContext>) {
        v1.post("feedback") { req, _ in try await self.add(req) }
        v1.get("feedback/export") { req, _ in try await self.export(req) }
    }

    var log: any FeedbackLog { server.feedback }

    func add(_ request: Request) async throws -> Response {
        let body = try await JSONBody(request, limit: server.maxBodyBytes)
        let answerID = try body.requiredString("answer_id")
        let ratingText = try body.requiredString("rating")
        guard let rating = Rating(rawValue: ratingText) else { throw APIError.invalid("rating", "must be \"up\" or \"down\"") }
        let comment = try body.string("comment") ?? ""
        guard comment.count <= 10_000 else { throw APIError.invalid("comment", "is longer than 10,000 characters") }
        let log = self.log
        guard let id = try log.addFeedback(answerID: answerID, rating: rating, comment: comment) else {
            throw APIError.notFound("no answer with id '\(answerID)'")
        }
        return try JSONResponse.object(["id": id, "answer_id": answerID, "rating": rating.rawValue], status: .created)
    }

    func export(_ request: Request) async throws -> Response {
        let format = request.uri.queryParameters.get("format") ?? "jsonl"
        guard format == "jsonl" else { throw APIError.invalid("format", "must be jsonl") }
        let iso = ISO8601DateFormatter()
        var out = ""
        for f in try log.feedback() {
            let citations = (try? JSONSerialization.jsonObject(with: Data(f.answer.citationsJSON.utf8))) ?? []
            let row: [String: Any] = ["id": f.id, "answer_id": f.answer.id, "rating": f.rating.rawValue, "comment": f.comment,
                                      "question": f.answer.question, "answer": f.answer.answer, "citations": citations,
                                      "model": f.answer.model, "adapter": f.answer.adapter ?? NSNull(), "created_at": iso.string(from: f.createdAt)]
            out += String(decoding: try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson; charset=utf-8",
                                               .contentDisposition: "attachment; filename=\"feedback.jsonl\""],
                        body: .init(byteBuffer: ByteBuffer(string: out)))
    }
}
