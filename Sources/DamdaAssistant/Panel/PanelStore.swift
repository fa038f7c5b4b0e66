import DamdaCore
import DamdaRetrieval
import Foundation
import GRDB

public enum PanelError: DamdaError, Equatable {
    case badSurvey(String)
    case unknownSurvey(String)
    case unknownItem(String)
    case notShown(String)
    case duplicateVote(String)
    case badVote(String)

    public var message: String {
        switch self {
        case let .badSurvey(why): "cannot create the survey: \(why)"
        case let .unknownSurvey(id): "no survey with id '\(id)'"
        case let .unknownItem(id): "the survey has no item '\(id)'"
        case let .notShown(item): "item '\(item)' was not shown to this evaluator: ask for the next item first"
        case let .duplicateVote(item): "this evaluator already voted on item '\(item)'"
        case let .badVote(why): why
        }
    }
}

/// Blind A/B surveys in SQLite (the index's own database, like the feedback store): surveys and
/// their items with every configuration's answer, which pair of configurations each evaluator was
/// shown for an item and in which order (drawn at random when first shown), and the votes. A
/// vote names slots "1" and "2"; the store maps them back to configurations, so the page never
/// learns which configuration wrote what.
public final class PanelStore: @unchecked Sendable {
    let db: any DatabaseWriter

    public init(database: any DatabaseWriter) throws {
        db = database
        try Self.migrator.migrate(db)
    }

    /// The panel store of `index`: its SQLite database, or `feedback.sqlite` in its directory.
    public convenience init(beside index: SearchIndex) throws {
        try self.init(database: try index.sqliteDatabase(orFile: "feedback.sqlite"))
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
        return m
    }

    static let encoder: JSONEncoder = { let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]; return e }()
    static func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
    static func decode<T: Decodable>(_ t: T.Type, _ s: String) throws -> T { try JSONDecoder().decode(t, from: Data(s.utf8)) }

    /// A survey over the questions every configuration answered (matched by id), in the first
    /// configuration's order. Needs two or more configurations with distinct names.
    public func createSurvey(name: String, configs: [PanelConfigAnswers]) throws -> PanelSurvey {
        let title = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty else { throw PanelError.badSurvey("the name is empty") }
        guard configs.count >= 2 else { throw PanelError.badSurvey("it needs two or more configurations (got \(configs.count))") }
        let names = configs.map(\.name)
        guard names.allSatisfy({ !$0.isEmpty }), Set(names).count == names.count else {
            throw PanelError.badSurvey("configuration names must be non-empty and distinct (got \(names))")
        }
        // Questions, answers and their sources become what evaluators read and training pairs: personal data is masked first.
        let mask = DocumentRedactor()
        let configs = configs.map { c in
            PanelConfigAnswers(name: c.name, answers: c.answers.map { a in
                var answer = a.answer
                answer.answer = mask.masked(answer.answer)
                answer.context = mask.masked(answer.context)
                answer.citations = answer.citations.map { var x = $0; x.text = mask.masked(x.text); x.title = mask.masked(x.title); return x }
                return (a.id, mask.masked(a.question), answer)
            })
        }
        let byConfig = configs.map { c in Dictionary(c.answers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }) }
        var items: [PanelItem] = []
        for a in configs[0].answers where byConfig.allSatisfy({ $0[a.id] != nil }) && !items.contains(where: { $0.id == a.id }) {
            items.append(PanelItem(id: a.id, question: a.question, answers: configs.indices.map {
                var answer = byConfig[$0][a.id]!.answer
                answer.config = names[$0]
                return answer
            }))
        }
        guard !items.isEmpty else { throw PanelError.badSurvey("no question id is answered by every configuration") }
        let id = "srv_" + (0..<10).map { _ in String("0123456789abcdef".randomElement()!) }.joined()
        let now = Date()
        try db.write { db in
            try db.execute(sql: "INSERT INTO panel_surveys (id, name, configs, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [id, title, try Self.json(names), now.timeIntervalSince1970])
            for (i, item) in items.enumerated() {
                try db.execute(sql: "INSERT INTO panel_items (survey_id, item_id, position, question, answers) VALUES (?, ?, ?, ?, ?)",
                               arguments: [id, item.id, i, item.question, try Self.json(item.answers)])
            }
        }
        return PanelSurvey(id: id, name: title, configs: names, items: items.count, votes: 0, createdAt: ISO8601DateFormatter().string(from: now))
    }

    public func surveys() throws -> [PanelSurvey] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT s.id, s.name, s.configs, s.created_at,
                       (SELECT COUNT(*) FROM panel_items i WHERE i.survey_id = s.id) AS items,
                       (SELECT COUNT(*) FROM panel_votes v WHERE v.survey_id = s.id) AS votes
                FROM panel_surveys s ORDER BY s.created_at
                """).map { r in
                PanelSurvey(id: r["id"], name: r["name"], configs: try Self.decode([String].self, r["configs"]), items: r["items"], votes: r["votes"],
                            createdAt: ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: r["created_at"])))
            }
        }
    }

    public func survey(_ id: String) throws -> PanelSurvey {
        guard let s = try surveys().first(where: { $0.id == id }) else { throw PanelError.unknownSurvey(id) }
        return s
    }

    public func items(_ surveyID: String) throws -> [PanelItem] {
        _ = try survey(surveyID)
        return try db.read { db in
            try Row.fetchAll(db, sql: "SELECT item_id, question, answers FROM panel_items WHERE survey_id = ? ORDER BY position", arguments: [surveyID]).map {
                PanelItem(id: $0["item_id"], question: $0["question"], answers: try Self.decode([PanelAnswer].self, $0["answers"]))
            }
        }
    }

    /// The next item `evaluator` has not voted on, with two configurations' answers in an order
    /// drawn at random the first time it is shown (and kept, so a reload shows the same); nil
    /// when the evaluator has voted on every item.
    public func nextTask(survey surveyID: String, evaluator: String) throws -> PanelTask? {
        let evaluator = evaluator.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !evaluator.isEmpty else { throw PanelError.badVote("the evaluator name is empty") }
        let survey = try survey(surveyID)
        return try db.write { db -> PanelTask? in
            let voted = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM panel_votes WHERE survey_id = ? AND evaluator = ?",
                                         arguments: [surveyID, evaluator]) ?? 0
            guard let row = try Row.fetchOne(db, sql: """
                SELECT item_id, question, answers FROM panel_items i WHERE survey_id = ?
                  AND NOT EXISTS (SELECT 1 FROM panel_votes v WHERE v.survey_id = i.survey_id AND v.item_id = i.item_id AND v.evaluator = ?)
                ORDER BY position LIMIT 1
                """, arguments: [surveyID, evaluator]) else { return nil }
            let itemID: String = row["item_id"]
            let answers = try Self.decode([PanelAnswer].self, row["answers"])
            var pair: (String, String)
            if let a = try Row.fetchOne(db, sql: "SELECT first_config, second_config FROM panel_assignments WHERE survey_id = ? AND item_id = ? AND evaluator = ?",
                                        arguments: [surveyID, itemID, evaluator]) {
                pair = (a["first_config"], a["second_config"])
            } else {
                var configs = survey.configs
                configs.shuffle()
                pair = (configs[0], configs[1])
                try db.execute(sql: "INSERT INTO panel_assignments (survey_id, item_id, evaluator, first_config, second_config) VALUES (?, ?, ?, ?, ?)",
                               arguments: [surveyID, itemID, evaluator, pair.0, pair.1])
            }
            func shown(_ slot: String, _ config: String) -> PanelTask.Shown {
                let a = answers.first { $0.config == config }
                return PanelTask.Shown(slot: slot, answer: a?.answer ?? "", citations: a?.citations ?? [])
            }
            return PanelTask(surveyID: surveyID, itemID: itemID, question: row["question"],
                             answers: [shown("1", pair.0), shown("2", pair.1)], done: voted, total: survey.items)
        }
    }

    /// Records a vote on the slots an evaluator was shown; ratings by slot ("1", "2"), each
    /// criterion 1–5. A second vote by the same evaluator on the same item is refused.
    @discardableResult
    public func vote(survey surveyID: String, item itemID: String, evaluator: String, choice: PanelChoice,
                     ratings: [String: PanelRatings], correction: String) throws -> PanelVote {
        let evaluator = evaluator.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !evaluator.isEmpty else { throw PanelError.badVote("the evaluator name is empty") }
        let correction = DocumentRedactor().masked(correction)
        guard Set(ratings.keys).isSubset(of: ["1", "2"]) else { throw PanelError.badVote("ratings are keyed by the slots shown, \"1\" and \"2\"") }
        guard ratings.values.allSatisfy(\.isValid) else { throw PanelError.badVote("each rating (accuracy, grounding, usefulness) is an integer from 1 to 5") }
        _ = try survey(surveyID)
        return try db.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM panel_items WHERE survey_id = ? AND item_id = ?", arguments: [surveyID, itemID]) != nil else {
                throw PanelError.unknownItem(itemID)
            }
            guard let a = try Row.fetchOne(db, sql: "SELECT first_config, second_config FROM panel_assignments WHERE survey_id = ? AND item_id = ? AND evaluator = ?",
                                           arguments: [surveyID, itemID, evaluator]) else { throw PanelError.notShown(itemID) }
            let first: String = a["first_config"], second: String = a["second_config"]
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM panel_votes WHERE survey_id = ? AND item_id = ? AND evaluator = ?",
                                    arguments: [surveyID, itemID, evaluator]) == nil else { throw PanelError.duplicateVote(itemID) }
            let winner: String? = choice == .first ? first : choice == .second ? second : nil
            var byConfig: [String: PanelRatings] = [:]
            if let r = ratings["1"] { byConfig[first] = r }
            if let r = ratings["2"] { byConfig[second] = r }
            try db.execute(sql: "INSERT INTO panel_votes (survey_id, item_id, evaluator, winner, ratings, correction, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [surveyID, itemID, evaluator, winner, try Self.json(byConfig), correction, Date().timeIntervalSince1970])
            return PanelVote(id: db.lastInsertedRowID, itemID: itemID, evaluator: evaluator, first: first, second: second, winner: winner,
                             ratings: byConfig, correction: correction)
        }
    }

    public func votes(_ surveyID: String) throws -> [PanelVote] {
        _ = try survey(surveyID)
        return try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT v.id, v.item_id, v.evaluator, v.winner, v.ratings, v.correction, a.first_config, a.second_config
                FROM panel_votes v JOIN panel_assignments a ON a.survey_id = v.survey_id AND a.item_id = v.item_id AND a.evaluator = v.evaluator
                WHERE v.survey_id = ? ORDER BY v.id
                """, arguments: [surveyID]).map { r in
                PanelVote(id: r["id"], itemID: r["item_id"], evaluator: r["evaluator"], first: r["first_config"], second: r["second_config"],
                          winner: r["winner"], ratings: try Self.decode([String: PanelRatings].self, r["ratings"]), correction: r["correction"])
            }
        }
    }

    /// Every vote of every survey with the item it was cast on.
    func votesWithItems() throws -> [(survey: String, vote: PanelVote, item: PanelItem)] {
        var out: [(survey: String, vote: PanelVote, item: PanelItem)] = []
        for survey in try surveys() {
            let items = Dictionary(uniqueKeysWithValues: try items(survey.id).map { ($0.id, $0) })
            for v in try votes(survey.id) { if let item = items[v.itemID] { out.append((survey.id, v, item)) } }
        }
        return out
    }

    /// Every correction written on the panel, with the two answers its evaluator was shown.
    public func corrections() throws -> [PanelCorrection] {
        try votesWithItems().filter { !$0.vote.correction.isEmpty }.map { s, v, item in
            PanelCorrection(surveyID: s, voteID: v.id, question: item.question, correction: v.correction,
                            answers: item.answers.filter { $0.config == v.first || $0.config == v.second })
        }
    }

    /// Every vote that picked a winner, with the winning and losing answers: preference pairs.
    public func preferences() throws -> [PanelPreference] {
        try votesWithItems().compactMap { s, v, item in
            guard let winner = v.winner else { return nil }
            let loser = winner == v.first ? v.second : v.first
            guard let chosen = item.answers.first(where: { $0.config == winner }),
                  let rejected = item.answers.first(where: { $0.config == loser }) else { return nil }
            return PanelPreference(surveyID: s, voteID: v.id, question: item.question, chosen: chosen, rejected: rejected)
        }
    }
}

/// A correction an evaluator wrote on the panel, with the answers (and contexts) the item showed.
public struct PanelCorrection: Sendable, Equatable {
    public var surveyID: String
    public var voteID: Int64
    public var question: String
    public var correction: String
    public var answers: [PanelAnswer]
}

/// A blind A/B vote as a preference: the winner's answer chosen over the loser's.
public struct PanelPreference: Sendable, Equatable {
    public var surveyID: String
    public var voteID: Int64
    public var question: String
    public var chosen: PanelAnswer
    public var rejected: PanelAnswer
}
