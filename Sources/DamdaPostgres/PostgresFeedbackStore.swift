import DamdaAssistant
import DamdaRetrieval
import Foundation
import PostgresNIO

/// The answer log and ratings in PostgreSQL, beside the chunks of a `--store postgres://…` index:
/// every `damda serve` on the same database records into and rates from the same tables, so an
/// answer served by one server can be rated through another and every export sees all of them.
public final class PostgresFeedbackStore: FeedbackStore, @unchecked Sendable {
    let store: PostgresStore

    public init(store: PostgresStore) throws {
        self.store = store
        try store.execute(inOneTransaction: [
            """
            CREATE TABLE IF NOT EXISTS damda_answers (
                id TEXT PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL,
                model TEXT NOT NULL, adapter TEXT, created_at DOUBLE PRECISION NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS damda_feedback (
                id BIGSERIAL PRIMARY KEY, answer_id TEXT NOT NULL REFERENCES damda_answers(id),
                rating TEXT NOT NULL CHECK (rating IN ('up', 'down')), comment TEXT NOT NULL DEFAULT '',
                correction TEXT NOT NULL DEFAULT '', created_at DOUBLE PRECISION NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS damda_feedback_answer ON damda_feedback(answer_id)",
        ])
    }

    public func record(_ a: AnswerRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let citations = String(decoding: try encoder.encode(a.citations), as: UTF8.self)
        let now = Date().timeIntervalSince1970
        try store.blocking { [client = store.client, logger = store.logger] in
            try await client.query("""
                INSERT INTO damda_answers (id, question, answer, citations, model, adapter, created_at)
                VALUES (\(a.id), \(a.question), \(a.answer), \(citations), \(a.model), \(a.adapter), \(now))
                ON CONFLICT (id) DO UPDATE SET question = EXCLUDED.question, answer = EXCLUDED.answer, citations = EXCLUDED.citations,
                    model = EXCLUDED.model, adapter = EXCLUDED.adapter, created_at = EXCLUDED.created_at
                """, logger: logger)
        }
    }

    public func addFeedback(answerID: String, rating: Rating, comment: String, correction: String) throws -> Int64? {
        let now = Date().timeIntervalSince1970
        return try store.blocking { [client = store.client, logger = store.logger] () async throws -> Int64? in
            // One statement: the answer's existence and the insert cannot interleave with another server's writes.
            let rows = try await client.query("""
                INSERT INTO damda_feedback (answer_id, rating, comment, correction, created_at)
                SELECT id, \(rating.rawValue), \(comment), \(correction), \(now) FROM damda_answers WHERE id = \(answerID)
                RETURNING id
                """, logger: logger)
            for try await id in rows.decode(Int64.self) { return id }
            return nil
        }
    }

    public func feedback() throws -> [FeedbackRecord] {
        let decoder = JSONDecoder()
        return try store.blocking { [client = store.client, logger = store.logger] in
            var out: [FeedbackRecord] = []
            let rows = try await client.query("""
                SELECT f.id, f.rating, f.comment, f.correction, f.created_at, a.id, a.question, a.answer, a.citations, a.model, a.adapter
                FROM damda_feedback f JOIN damda_answers a ON a.id = f.answer_id ORDER BY f.id
                """, logger: logger)
            for try await (id, rating, comment, correction, created, answerID, question, answer, citations, model, adapter)
                    in rows.decode((Int64, String, String, String, Double, String, String, String, String, String, String?).self) {
                let cited = (try? decoder.decode([Citation].self, from: Data(citations.utf8))) ?? []
                out.append(FeedbackRecord(id: id, rating: Rating(rawValue: rating) ?? .down, comment: comment, correction: correction,
                                          createdAt: Date(timeIntervalSince1970: created),
                                          answer: AnswerRecord(id: answerID, question: question, answer: answer, citations: cited,
                                                               model: model, adapter: adapter)))
            }
            return out
        }
    }
}

/// The feedback store of `index`: in its PostgreSQL database when its chunks live there (shared
/// by every server on that database), else in its SQLite file.
public func feedbackStore(beside index: SearchIndex) throws -> any FeedbackStore {
    if let pg = index.store as? PostgresStore { return try PostgresFeedbackStore(store: pg) }
    return try SQLiteFeedbackStore(beside: index)
}
