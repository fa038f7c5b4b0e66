import Foundation
import GRDB

/// The panel's tables in SQLite: the index's own database, or `feedback.sqlite` beside it.
public final class SQLitePanelStorage: PanelStorage, @unchecked Sendable {
    let db: any DatabaseWriter

    public init(database: any DatabaseWriter) throws {
        db = database
        try Self.migrator.migrate(db)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v5-panel") { db in
            try db.execute(sql: """
                CREATE TABLE panel_surveys (id TEXT PRIMARY KEY, name TEXT NOT NULL, configs TEXT NOT NULL, created_at REAL NOT NULL);
                CREATE TABLE panel_items (
                    survey_id TEXT NOT NULL REFERENCES panel_surveys(id), item_id TEXT NOT NULL, position INTEGER NOT NULL,
                    question TEXT NOT NULL, answers TEXT NOT NULL, PRIMARY KEY (survey_id, item_id));
                CREATE TABLE panel_assignments (
                    survey_id TEXT NOT NULL, item_id TEXT NOT NULL, evaluator TEXT NOT NULL,
                    first_config TEXT NOT NULL, second_config TEXT NOT NULL, PRIMARY KEY (survey_id, item_id, evaluator));
                CREATE TABLE panel_votes (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, survey_id TEXT NOT NULL, item_id TEXT NOT NULL, evaluator TEXT NOT NULL,
                    winner TEXT, ratings TEXT NOT NULL, correction TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
                    UNIQUE (survey_id, item_id, evaluator));
                """)
        }
        m.registerMigration("v6-panel-fingerprint") { db in
            try db.execute(sql: """
                ALTER TABLE panel_surveys ADD COLUMN fingerprint TEXT;
                CREATE UNIQUE INDEX panel_surveys_fingerprint ON panel_surveys(fingerprint);
                """)
        }
        return m
    }

    public func insertSurvey(id: String, name: String, configs: [String], createdAt: Date, items: [PanelItem], fingerprint: String) throws -> String? {
        try db.write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT id FROM panel_surveys WHERE fingerprint = ?", arguments: [fingerprint]) {
                return existing
            }
            try db.execute(sql: "INSERT INTO panel_surveys (id, name, configs, created_at, fingerprint) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, name, try PanelJSON.encode(configs), createdAt.timeIntervalSince1970, fingerprint])
            for (i, item) in items.enumerated() {
                try db.execute(sql: "INSERT INTO panel_items (survey_id, item_id, position, question, answers) VALUES (?, ?, ?, ?, ?)",
                               arguments: [id, item.id, i, item.question, try PanelJSON.encode(item.answers)])
            }
            return nil
        }
    }

    public func surveys() throws -> [PanelSurvey] { try fetchSurveys(where: "", []) }

    public func survey(id: String) throws -> PanelSurvey? { try fetchSurveys(where: "WHERE s.id = ?", [id]).first }

    func fetchSurveys(where condition: String, _ arguments: StatementArguments) throws -> [PanelSurvey] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT s.id, s.name, s.configs, s.created_at,
                       (SELECT COUNT(*) FROM panel_items i WHERE i.survey_id = s.id) AS items,
                       (SELECT COUNT(*) FROM panel_votes v WHERE v.survey_id = s.id) AS votes
                FROM panel_surveys s \(condition) ORDER BY s.created_at
                """, arguments: arguments).map { r in
                PanelSurvey(id: r["id"], name: r["name"], configs: try PanelJSON.decode([String].self, r["configs"]), items: r["items"],
                            votes: r["votes"], createdAt: PanelJSON.date(r["created_at"]))
            }
        }
    }

    public func items(survey: String) throws -> [PanelItem] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT item_id, question, answers FROM panel_items WHERE survey_id = ? ORDER BY position", arguments: [survey]).map {
                PanelItem(id: $0["item_id"], question: $0["question"], answers: try PanelJSON.decode([PanelAnswer].self, $0["answers"]))
            }
        }
    }

    public func hasItem(survey: String, item: String) throws -> Bool {
        try db.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM panel_items WHERE survey_id = ? AND item_id = ?", arguments: [survey, item]) != nil
        }
    }

    public func nextUnvoted(survey: String, evaluator: String) throws -> (item: PanelItem, voted: Int)? {
        try db.read { db in
            let voted = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM panel_votes WHERE survey_id = ? AND evaluator = ?",
                                         arguments: [survey, evaluator]) ?? 0
            guard let r = try Row.fetchOne(db, sql: """
                SELECT item_id, question, answers FROM panel_items i WHERE survey_id = ?
                  AND NOT EXISTS (SELECT 1 FROM panel_votes v WHERE v.survey_id = i.survey_id AND v.item_id = i.item_id AND v.evaluator = ?)
                ORDER BY position LIMIT 1
                """, arguments: [survey, evaluator]) else { return nil }
            return (PanelItem(id: r["item_id"], question: r["question"], answers: try PanelJSON.decode([PanelAnswer].self, r["answers"])), voted)
        }
    }

    public func assignment(survey: String, item: String, evaluator: String, proposed: PanelAssignment?) throws -> PanelAssignment? {
        try db.write { db in
            if let p = proposed {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO panel_assignments (survey_id, item_id, evaluator, first_config, second_config) VALUES (?, ?, ?, ?, ?)
                    """, arguments: [survey, item, evaluator, p.first, p.second])
            }
            return try Row.fetchOne(db, sql: "SELECT first_config, second_config FROM panel_assignments WHERE survey_id = ? AND item_id = ? AND evaluator = ?",
                                    arguments: [survey, item, evaluator]).map { PanelAssignment(first: $0["first_config"], second: $0["second_config"]) }
        }
    }

    public func insertVote(_ v: PanelVoteRow) throws -> Int64? {
        try db.write { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO panel_votes (survey_id, item_id, evaluator, winner, ratings, correction, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [v.survey, v.item, v.evaluator, v.winner, v.ratings, v.correction, v.createdAt.timeIntervalSince1970])
            return db.changesCount == 1 ? db.lastInsertedRowID : nil
        }
    }

    public func votes(survey: String) throws -> [PanelVote] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT v.id, v.item_id, v.evaluator, v.winner, v.ratings, v.correction, a.first_config, a.second_config
                FROM panel_votes v JOIN panel_assignments a ON a.survey_id = v.survey_id AND a.item_id = v.item_id AND a.evaluator = v.evaluator
                WHERE v.survey_id = ? ORDER BY v.id
                """, arguments: [survey]).map { r in
                PanelVote(id: r["id"], itemID: r["item_id"], evaluator: r["evaluator"], first: r["first_config"], second: r["second_config"],
                          winner: r["winner"], ratings: try PanelJSON.decode([String: PanelRatings].self, r["ratings"]), correction: r["correction"])
            }
        }
    }
}
