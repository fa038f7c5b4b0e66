import DamdaRetrieval
import Foundation
import GRDB

/// An answer as served, kept so that feedback on it can become eval and training data.
public struct AnswerRecord: Sendable, Equatable {
    public var id: String
    public var question: String
    public var answer: String
    public var citations: [Citation]
    public var model: String
    public var adapter: String?
    public init(id: String, question: String, answer: String, citations: [Citation], model: String, adapter: String?) {
        self.id = id; self.question = question; self.answer = answer; self.citations = citations
        self.model = model; self.adapter = adapter
    }

    public init(_ a: AssistantAnswer) {
        self.init(id: a.id, question: a.question, answer: a.answer, citations: a.citations, model: a.model, adapter: a.adapter)
    }
}

public enum Rating: String, Sendable, Codable { case up, down }

/// One rating joined with the answer it rates.
public struct FeedbackRecord: Sendable {
    public var id: Int64
    public var rating: Rating
    public var comment: String
    /// What the answer should have said (empty: no correction).
    public var correction: String
    public var createdAt: Date
    public var answer: AnswerRecord
    public init(id: Int64, rating: Rating, comment: String, correction: String, createdAt: Date, answer: AnswerRecord) {
        self.id = id; self.rating = rating; self.comment = comment; self.correction = correction; self.createdAt = createdAt; self.answer = answer
    }
}

/// The feedback flywheel's storage: answers served and their thumbs up/down with comments.
public protocol FeedbackStore: Sendable {
    func record(_ answer: AnswerRecord) throws
    /// Stores a rating, with an optional correction; nil when no answer has that id.
    func addFeedback(answerID: String, rating: Rating, comment: String, correction: String) throws -> Int64?
    func feedback() throws -> [FeedbackRecord]
}

/// Answers and ratings in SQLite: in a SQLite index's own database (one file to back up), or in
/// `feedback.sqlite` beside an index kept elsewhere (PostgreSQL).
public final class SQLiteFeedbackStore: FeedbackStore, @unchecked Sendable {
    let db: any DatabaseWriter

    /// Uses `database` (shared with the chunk store; the tables are this store's own).
    public init(database: any DatabaseWriter) throws {
        db = database
        try Self.migrator.migrate(db)
    }

    public convenience init(path: String) throws {
        try self.init(database: try DatabasePool(path: path))
    }

    /// The feedback store of `index`: its SQLite database, or `feedback.sqlite` in its directory.
    public convenience init(beside index: SearchIndex) throws {
        try self.init(database: try index.sqliteDatabase(orFile: "feedback.sqlite"))
    }

    /// "v3-answers-feedback" is the identifier the chunk store used when it created these tables,
    /// so databases written before the tables moved here are not migrated twice.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v3-answers-feedback") { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS answers (
                    id TEXT PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL,
                    model TEXT NOT NULL, adapter TEXT, created_at REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS feedback (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    answer_id TEXT NOT NULL REFERENCES answers(id),
                    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')), comment TEXT NOT NULL DEFAULT '',
                    created_at REAL NOT NULL);
                CREATE INDEX IF NOT EXISTS feedback_answer ON feedback(answer_id);
                """)
        }
        m.registerMigration("v4-feedback-correction") { db in
            try db.execute(sql: "ALTER TABLE feedback ADD COLUMN correction TEXT NOT NULL DEFAULT ''")
        }
        return m
    }

    public func record(_ a: AnswerRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let citations = String(decoding: try encoder.encode(a.citations), as: UTF8.self)
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO answers (id, question, answer, citations, model, adapter, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [a.id, a.question, a.answer, citations, a.model, a.adapter, Date().timeIntervalSince1970])
        }
    }

    public func addFeedback(answerID: String, rating: Rating, comment: String, correction: String = "") throws -> Int64? {
        try db.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM answers WHERE id = ?", arguments: [answerID]) != nil else { return nil }
            try db.execute(sql: "INSERT INTO feedback (answer_id, rating, comment, correction, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [answerID, rating.rawValue, comment, correction, Date().timeIntervalSince1970])
            return db.lastInsertedRowID
        }
    }

    /// Every rating with its answer, oldest first. Citations that no longer decode (a row written
    /// by hand) come back empty rather than failing the export.
    public func feedback() throws -> [FeedbackRecord] {
        let decoder = JSONDecoder()
        return try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT f.id, f.rating, f.comment, f.correction, f.created_at, a.id AS answer_id, a.question, a.answer, a.citations, a.model, a.adapter
                FROM feedback f JOIN answers a ON a.id = f.answer_id ORDER BY f.id
                """).map { r in
                let citations = (try? decoder.decode([Citation].self, from: Data((r["citations"] as String).utf8))) ?? []
                return FeedbackRecord(id: r["id"], rating: Rating(rawValue: r["rating"]) ?? .down, comment: r["comment"], correction: r["correction"],
                                      createdAt: Date(timeIntervalSince1970: r["created_at"]),
                                      answer: AnswerRecord(id: r["answer_id"], question: r["question"], answer: r["answer"],
                                                           citations: citations, model: r["model"], adapter: r["adapter"]))
            }
        }
    }
}

extension SearchIndex {
    /// Where the assistant keeps its own tables for this index: the index's SQLite database (one
    /// file to back up), or `file` in the index's directory when the chunks live in PostgreSQL.
    func sqliteDatabase(orFile file: String) throws -> any DatabaseWriter {
        if let lite = store as? SQLiteStore { return lite.database }
        return try DatabasePool(path: directory.appendingPathComponent(file).path)
    }
}
