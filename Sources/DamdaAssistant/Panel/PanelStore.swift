import Crypto
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
    /// The same survey (name, configurations, questions and answers) exists: its id.
    case duplicateSurvey(String)

    public var message: String {
        switch self {
        case let .badSurvey(why): "cannot create the survey: \(why)"
        case let .unknownSurvey(id): "no survey with id '\(id)'"
        case let .unknownItem(id): "the survey has no item '\(id)'"
        case let .notShown(item): "item '\(item)' was not shown to this evaluator: ask for the next item first"
        case let .duplicateVote(item): "this evaluator already voted on item '\(item)'"
        case let .badVote(why): why
        case let .duplicateSurvey(id): "this survey exists already (same name, configurations and answers): '\(id)'"
        }
    }
}

/// Blind A/B surveys: surveys and their items with every configuration's answer, which pair of
/// configurations each evaluator was shown for an item and in which order (drawn at random when
/// first shown), and the votes. A vote names slots "1" and "2"; the store maps them back to
/// configurations, so the page never learns which configuration wrote what. The rows live in a
/// `PanelStorage`: SQLite beside the index, or PostgreSQL shared by several servers.
public final class PanelStore: Sendable {
    public let storage: any PanelStorage

    public init(storage: any PanelStorage) { self.storage = storage }

    public convenience init(database: any DatabaseWriter) throws {
        self.init(storage: try SQLitePanelStorage(database: database))
    }

    /// The panel store of a SQLite index: its database, or `feedback.sqlite` in its directory.
    public convenience init(beside index: SearchIndex) throws {
        try self.init(database: try index.sqliteDatabase(orFile: "feedback.sqlite"))
    }

    /// A survey over the questions every configuration answered (matched by id), in the first
    /// configuration's order. Needs two or more configurations with distinct names.
    public func createSurvey(name: String, configs: [PanelConfigAnswers]) throws -> PanelSurvey {
        let names = configs.map(\.name)
        let title = try Self.checkShape(name: name, configs: names)
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
        // A survey posted twice (a retried upload, two administrators) is one survey: its content decides.
        let fingerprint = SHA256.hash(data: Data(try PanelJSON.encode([title] + names + [try PanelJSON.encode(items)]).utf8))
            .map { String(format: "%02x", $0) }.joined()
        if let existing = try storage.insertSurvey(id: id, name: title, configs: names, createdAt: now, items: items, fingerprint: fingerprint) {
            throw PanelError.duplicateSurvey(existing)
        }
        return PanelSurvey(id: id, name: title, configs: names, items: items.count, votes: 0, createdAt: ISO8601DateFormatter().string(from: now))
    }

    /// The survey's name trimmed, once it and its configurations' names are usable: a name, two or
    /// more configurations, each named, no name twice.
    static func checkShape(name: String, configs names: [String]) throws -> String {
        let title = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty else { throw PanelError.badSurvey("the name is empty") }
        guard names.count >= 2 else { throw PanelError.badSurvey("it needs two or more configurations (got \(names.count))") }
        guard names.allSatisfy({ !$0.isEmpty }), Set(names).count == names.count else {
            throw PanelError.badSurvey("configuration names must be non-empty and distinct (got \(names))")
        }
        return title
    }

    public func surveys() throws -> [PanelSurvey] { try storage.surveys() }

    public func survey(_ id: String) throws -> PanelSurvey {
        guard let s = try storage.survey(id: id) else { throw PanelError.unknownSurvey(id) }
        return s
    }

    public func items(_ surveyID: String) throws -> [PanelItem] {
        _ = try survey(surveyID)
        return try storage.items(survey: surveyID)
    }

    /// The next item `evaluator` has not voted on, with two configurations' answers in an order
    /// drawn at random the first time it is shown (and kept, so a reload shows the same); nil
    /// when the evaluator has voted on every item.
    public func nextTask(survey surveyID: String, evaluator: String) throws -> PanelTask? {
        let evaluator = evaluator.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !evaluator.isEmpty else { throw PanelError.badVote("the evaluator name is empty") }
        let survey = try survey(surveyID)
        guard let (item, voted) = try storage.nextUnvoted(survey: surveyID, evaluator: evaluator) else { return nil }
        var configs = survey.configs
        configs.shuffle()
        // The first writer's draw is kept: two servers showing the item at once show the same order.
        guard let pair = try storage.assignment(survey: surveyID, item: item.id, evaluator: evaluator,
                                                proposed: PanelAssignment(first: configs[0], second: configs[1])) else {
            throw PanelError.unknownItem(item.id)
        }
        func shown(_ slot: String, _ config: String) -> PanelTask.Shown {
            let a = item.answers.first { $0.config == config }
            return PanelTask.Shown(slot: slot, answer: a?.answer ?? "", citations: a?.citations ?? [])
        }
        return PanelTask(surveyID: surveyID, itemID: item.id, question: item.question,
                         answers: [shown("1", pair.first), shown("2", pair.second)], done: voted, total: survey.items)
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
        guard try storage.hasItem(survey: surveyID, item: itemID) else { throw PanelError.unknownItem(itemID) }
        guard let shown = try storage.assignment(survey: surveyID, item: itemID, evaluator: evaluator, proposed: nil) else {
            throw PanelError.notShown(itemID)
        }
        let winner: String? = choice == .first ? shown.first : choice == .second ? shown.second : nil
        var byConfig: [String: PanelRatings] = [:]
        if let r = ratings["1"] { byConfig[shown.first] = r }
        if let r = ratings["2"] { byConfig[shown.second] = r }
        // The unique (survey, item, evaluator) key decides a race between two servers: one vote is stored.
        guard let id = try storage.insertVote(PanelVoteRow(survey: surveyID, item: itemID, evaluator: evaluator, winner: winner,
                                                           ratings: try PanelJSON.encode(byConfig), correction: correction, createdAt: Date())) else {
            throw PanelError.duplicateVote(itemID)
        }
        return PanelVote(id: id, itemID: itemID, evaluator: evaluator, first: shown.first, second: shown.second, winner: winner,
                         ratings: byConfig, correction: correction)
    }

    public func votes(_ surveyID: String) throws -> [PanelVote] {
        _ = try survey(surveyID)
        return try storage.votes(survey: surveyID)
    }

    /// Every vote of every survey with the item it was cast on.
    func votesWithItems() throws -> [(survey: String, vote: PanelVote, item: PanelItem)] {
        var out: [(survey: String, vote: PanelVote, item: PanelItem)] = []
        for survey in try surveys() {
            let items = Dictionary(uniqueKeysWithValues: try storage.items(survey: survey.id).map { ($0.id, $0) })
            for v in try storage.votes(survey: survey.id) { if let item = items[v.itemID] { out.append((survey.id, v, item)) } }
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
