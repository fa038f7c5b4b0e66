import DamdaRetrieval
import DamdaAssistant
import Foundation
import PostgresNIO

/// The blind A/B panel's tables in PostgreSQL, beside a `--store postgres://…` index: every
/// `damda serve` on the database shows the same surveys, keeps one shown order per evaluator and
/// item (the first server to draw it wins), and counts one vote per evaluator and item.
public final class PostgresPanelStorage: PanelStorage, @unchecked Sendable {
    let store: PostgresStore

    public init(store: PostgresStore) throws {
        self.store = store
        try store.execute(inOneTransaction: [
            """
            CREATE TABLE IF NOT EXISTS damda_panel_surveys (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, configs TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS damda_panel_items (
                survey_id TEXT NOT NULL REFERENCES damda_panel_surveys(id), item_id TEXT NOT NULL, position INTEGER NOT NULL,
                question TEXT NOT NULL, answers TEXT NOT NULL, PRIMARY KEY (survey_id, item_id))
            """,
            """
            CREATE TABLE IF NOT EXISTS damda_panel_assignments (
                survey_id TEXT NOT NULL, item_id TEXT NOT NULL, evaluator TEXT NOT NULL,
                first_config TEXT NOT NULL, second_config TEXT NOT NULL, PRIMARY KEY (survey_id, item_id, evaluator))
            """,
            """
            CREATE TABLE IF NOT EXISTS damda_panel_votes (
                id BIGSERIAL PRIMARY KEY, survey_id TEXT NOT NULL, item_id TEXT NOT NULL, evaluator TEXT NOT NULL,
                winner TEXT, ratings TEXT NOT NULL, correction TEXT NOT NULL DEFAULT '', created_at DOUBLE PRECISION NOT NULL,
                UNIQUE (survey_id, item_id, evaluator))
            """,
            "ALTER TABLE damda_panel_surveys ADD COLUMN IF NOT EXISTS fingerprint TEXT",
            "CREATE UNIQUE INDEX IF NOT EXISTS damda_panel_surveys_fingerprint ON damda_panel_surveys(fingerprint)",
        ])
    }

    public func insertSurvey(id: String, name: String, configs: [String], createdAt: Date, items: [PanelItem], fingerprint: String) throws -> String? {
        let configs = try PanelJSON.encode(configs)
        let rows = try items.enumerated().map { (i, item) in (item.id, i, item.question, try PanelJSON.encode(item.answers)) }
        let created = createdAt.timeIntervalSince1970
        return try store.blocking { [client = store.client, logger = store.logger] () async throws -> String? in
            try await client.withTransaction(logger: logger) { c -> String? in
                let inserted = try await c.query("""
                    INSERT INTO damda_panel_surveys (id, name, configs, created_at, fingerprint) VALUES (\(id), \(name), \(configs), \(created), \(fingerprint))
                    ON CONFLICT (fingerprint) DO NOTHING RETURNING id
                    """, logger: logger)
                var stored = false
                for try await _ in inserted { stored = true }
                guard stored else {
                    for try await existing in try await c.query("SELECT id FROM damda_panel_surveys WHERE fingerprint = \(fingerprint)", logger: logger)
                        .decode(String.self) { return existing }
                    return nil
                }
                for (itemID, position, question, answers) in rows {
                    try await c.query("""
                        INSERT INTO damda_panel_items (survey_id, item_id, position, question, answers)
                        VALUES (\(id), \(itemID), \(position), \(question), \(answers))
                        """, logger: logger)
                }
                return nil
            }
        }
    }

    public func surveys() throws -> [PanelSurvey] { try fetchSurveys(id: nil) }

    public func survey(id: String) throws -> PanelSurvey? { try fetchSurveys(id: id).first }

    /// Every survey, or the one with `id`.
    func fetchSurveys(id: String?) throws -> [PanelSurvey] {
        try fetchSurveys("""
            SELECT s.id, s.name, s.configs, s.created_at,
                   (SELECT COUNT(*) FROM damda_panel_items i WHERE i.survey_id = s.id),
                   (SELECT COUNT(*) FROM damda_panel_votes v WHERE v.survey_id = s.id)
            FROM damda_panel_surveys s WHERE \(id)::TEXT IS NULL OR s.id = \(id) ORDER BY s.created_at
            """)
    }

    func fetchSurveys(_ query: PostgresQuery) throws -> [PanelSurvey] {
        let rows = try store.blocking { [client = store.client, logger = store.logger] in
            var out: [(String, String, String, Double, Int64, Int64)] = []
            for try await r in try await client.query(query, logger: logger).decode((String, String, String, Double, Int64, Int64).self) { out.append(r) }
            return out
        }
        return try rows.map { id, name, configs, created, items, votes in
            PanelSurvey(id: id, name: name, configs: try PanelJSON.decode([String].self, configs), items: Int(items), votes: Int(votes),
                        createdAt: PanelJSON.date(created))
        }
    }

    public func items(survey: String) throws -> [PanelItem] {
        let rows = try store.blocking { [client = store.client, logger = store.logger] in
            var out: [(String, String, String)] = []
            let rows = try await client.query("SELECT item_id, question, answers FROM damda_panel_items WHERE survey_id = \(survey) ORDER BY position",
                                              logger: logger)
            for try await r in rows.decode((String, String, String).self) { out.append(r) }
            return out
        }
        return try rows.map { PanelItem(id: $0.0, question: $0.1, answers: try PanelJSON.decode([PanelAnswer].self, $0.2)) }
    }

    public func hasItem(survey: String, item: String) throws -> Bool {
        try store.rowCount("SELECT 1 FROM damda_panel_items WHERE survey_id = \(survey) AND item_id = \(item)") > 0
    }

    public func nextUnvoted(survey: String, evaluator: String) throws -> (item: PanelItem, voted: Int)? {
        let row = try store.blocking { [client = store.client, logger = store.logger] () async throws -> (String, String, String, Int64)? in
            let rows = try await client.query("""
                SELECT i.item_id, i.question, i.answers,
                       (SELECT COUNT(*) FROM damda_panel_votes v WHERE v.survey_id = \(survey) AND v.evaluator = \(evaluator))
                FROM damda_panel_items i WHERE i.survey_id = \(survey)
                  AND NOT EXISTS (SELECT 1 FROM damda_panel_votes v WHERE v.survey_id = i.survey_id AND v.item_id = i.item_id AND v.evaluator = \(evaluator))
                ORDER BY i.position LIMIT 1
                """, logger: logger)
            for try await r in rows.decode((String, String, String, Int64).self) { return r }
            return nil
        }
        guard let (id, question, answers, voted) = row else { return nil }
        return (PanelItem(id: id, question: question, answers: try PanelJSON.decode([PanelAnswer].self, answers)), Int(voted))
    }

    public func assignment(survey: String, item: String, evaluator: String, proposed: PanelAssignment?) throws -> PanelAssignment? {
        try store.blocking { [client = store.client, logger = store.logger] () async throws -> PanelAssignment? in
            if let p = proposed {
                try await client.query("""
                    INSERT INTO damda_panel_assignments (survey_id, item_id, evaluator, first_config, second_config)
                    VALUES (\(survey), \(item), \(evaluator), \(p.first), \(p.second)) ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            let rows = try await client.query("""
                SELECT first_config, second_config FROM damda_panel_assignments
                WHERE survey_id = \(survey) AND item_id = \(item) AND evaluator = \(evaluator)
                """, logger: logger)
            for try await (first, second) in rows.decode((String, String).self) { return PanelAssignment(first: first, second: second) }
            return nil
        }
    }

    public func insertVote(_ v: PanelVoteRow) throws -> Int64? {
        let created = v.createdAt.timeIntervalSince1970
        return try store.blocking { [client = store.client, logger = store.logger] () async throws -> Int64? in
            let rows = try await client.query("""
                INSERT INTO damda_panel_votes (survey_id, item_id, evaluator, winner, ratings, correction, created_at)
                VALUES (\(v.survey), \(v.item), \(v.evaluator), \(v.winner), \(v.ratings), \(v.correction), \(created))
                ON CONFLICT (survey_id, item_id, evaluator) DO NOTHING RETURNING id
                """, logger: logger)
            for try await id in rows.decode(Int64.self) { return id }
            return nil
        }
    }

    public func votes(survey: String) throws -> [PanelVote] {
        let rows = try store.blocking { [client = store.client, logger = store.logger] in
            var out: [(Int64, String, String, String?, String, String, String, String)] = []
            let rows = try await client.query("""
                SELECT v.id, v.item_id, v.evaluator, v.winner, v.ratings, v.correction, a.first_config, a.second_config
                FROM damda_panel_votes v JOIN damda_panel_assignments a
                  ON a.survey_id = v.survey_id AND a.item_id = v.item_id AND a.evaluator = v.evaluator
                WHERE v.survey_id = \(survey) ORDER BY v.id
                """, logger: logger)
            for try await r in rows.decode((Int64, String, String, String?, String, String, String, String).self) { out.append(r) }
            return out
        }
        return try rows.map { id, item, evaluator, winner, ratings, correction, first, second in
            PanelVote(id: id, itemID: item, evaluator: evaluator, first: first, second: second, winner: winner,
                      ratings: try PanelJSON.decode([String: PanelRatings].self, ratings), correction: correction)
        }
    }
}

/// The panel of `index`: in its PostgreSQL database when its chunks live there (shared by every
/// server on that database), else in its SQLite file.
public func panelStore(beside index: SearchIndex) throws -> PanelStore {
    if let pg = index.store as? PostgresStore { return PanelStore(storage: try PostgresPanelStorage(store: pg)) }
    return try PanelStore(beside: index)
}
