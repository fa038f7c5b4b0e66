import Foundation
import GRDB

/// An answer as served, kept so that feedback on it can become eval and training data.
public struct AnswerRecord: Sendable {
    public var id: String
    public var question: String
    public var answer: String
    /// The citations as JSON (the assistant's shape), stored verbatim.
    public var citationsJSON: String
    public var model: String
    public var adapter: String?
    public init(id: String, question: String, answer: String, citationsJSON: String, model: String, adapter: String?) {
        self.id = id; self.question = question; self.answer = answer; self.citationsJSON = citationsJSON
        self.model = model; self.adapter = adapter
    }
}

public enum Rating: String, Sendable, Codable { case up, down }

/// One rating joined with the answer it rates.
public struct FeedbackRecord: Sendable {
    public var id: Int64
    public var rating: Rating
    public var comment: String
    public var createdAt: Date
    public var answer: AnswerRecord
}

/// The feedback flywheel's storage: answers served and their thumbs up/down with comments.
public protocol FeedbackLog: Sendable {
    func record(_ answer: AnswerRecord) throws
    /// Stores a rating; nil when no answer has that id.
    func addFeedback(answerID: String, rating: Rating, comment: String) throws -> Int64?
    func feedback() throws -> [FeedbackRecord]
}

extension SQLiteStore: FeedbackLog {
    public func record(_ a: AnswerRecord) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO answers (id, question, answer, citations, model, adapter, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [a.id, a.question, a.answer, a.citationsJSON, a.model, a.adapter, Date().timeIntervalSince1970])
        }
    }

    public func addFeedback(answerID: String, rating: Rating, comment: String) throws -> Int64? {
        try db.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM answers WHERE id = ?", arguments: [answerID]) != nil else { return nil }
            try db.execute(sql: "INSERT INTO feedback (answer_id, rating, comment, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [answerID, rating.rawValue, comment, Date().timeIntervalSince1970])
            return db.lastInsertedRowID
        }
    }

    public func feedback() throws -> [FeedbackRecord] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT f.id, f.rating, f.comment, f.created_at, a.id AS answer_id, a.question, a.answer, a.citations, a.model, a.adapter
                FROM feedback f JOIN answers a ON a.id = f.answer_id ORDER BY f.id
                """).map { r in
                FeedbackRecord(id: r["id"], rating: Rating(rawValue: r["rating"]) ?? .down, comment: r["comment"],
                               createdAt: Date(timeIntervalSince1970: r["created_at"]),
                               answer: AnswerRecord(id: r["answer_id"], question: r["question"], answer: r["answer"],
                                                    citationsJSON: r["citations"], model: r["model"], adapter: r["adapter"]))
            }
        }
    }
}
