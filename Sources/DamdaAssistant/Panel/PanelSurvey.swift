import Foundation

/// A source shown under a panel answer.
public struct PanelCitation: Sendable, Codable, Equatable {
    public var n: Int
    public var title: String
    public var source: String
    public var text: String
    public init(n: Int, title: String, source: String, text: String) { self.n = n; self.title = title; self.source = source; self.text = text }
}

/// One configuration's answer to a survey question.
public struct PanelAnswer: Sendable, Codable, Equatable {
    public var config: String
    public var answer: String
    public var citations: [PanelCitation]
    /// The context the answer was generated from (a preference pair's prompt).
    public var context: String
    public init(config: String, answer: String, citations: [PanelCitation], context: String) {
        self.config = config; self.answer = answer; self.citations = citations; self.context = context
    }
}

/// A question with every configuration's answer.
public struct PanelItem: Sendable, Codable, Equatable {
    public var id: String
    public var question: String
    public var answers: [PanelAnswer]
    public init(id: String, question: String, answers: [PanelAnswer]) { self.id = id; self.question = question; self.answers = answers }
}

/// The answers one configuration gave (the lines of a `damda batch` answers file, or answers the
/// server generated), to be compared with other configurations' answers to the same questions.
public struct PanelConfigAnswers: Sendable {
    public var name: String
    /// Question id → (question, answer).
    public var answers: [(id: String, question: String, answer: PanelAnswer)]
    public init(name: String, answers: [(id: String, question: String, answer: PanelAnswer)]) { self.name = name; self.answers = answers }
}

public struct PanelSurvey: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var configs: [String]
    public var items: Int
    public var votes: Int
    public var createdAt: String
    public init(id: String, name: String, configs: [String], items: Int, votes: Int, createdAt: String) {
        self.id = id; self.name = name; self.configs = configs; self.items = items; self.votes = votes; self.createdAt = createdAt
    }
    enum CodingKeys: String, CodingKey { case id, name, configs, items, votes, createdAt = "created_at" }
}

/// The survey's three criteria, each 1–5: 정확성 (accuracy), 근거 (grounding), 유용성 (usefulness).
public struct PanelRatings: Sendable, Codable, Equatable {
    public var accuracy: Int
    public var grounding: Int
    public var usefulness: Int
    public init(accuracy: Int, grounding: Int, usefulness: Int) { self.accuracy = accuracy; self.grounding = grounding; self.usefulness = usefulness }
    var isValid: Bool { [accuracy, grounding, usefulness].allSatisfy { (1...5).contains($0) } }
    static let criteria = ["accuracy", "grounding", "usefulness"]
    func value(_ criterion: String) -> Int {
        switch criterion { case "accuracy": accuracy; case "grounding": grounding; default: usefulness }
    }
}

/// What an evaluator sees: two answers as "1" and "2", never which configuration wrote them.
public struct PanelTask: Sendable, Codable, Equatable {
    public struct Shown: Sendable, Codable, Equatable {
        public var slot: String
        public var answer: String
        public var citations: [PanelCitation]
    }
    public var surveyID: String
    public var itemID: String
    public var question: String
    public var answers: [Shown]
    /// Items this evaluator has voted on, and the survey's item count.
    public var done: Int
    public var total: Int
    enum CodingKeys: String, CodingKey { case question, answers, done, total, surveyID = "survey_id", itemID = "item_id" }
}

/// "1", "2" (the slots shown) or a tie.
public enum PanelChoice: String, Sendable, Codable { case first = "1", second = "2", tie }

/// A stored vote, with the configurations behind the slots.
public struct PanelVote: Sendable, Codable, Equatable {
    public var id: Int64
    public var itemID: String
    public var evaluator: String
    public var first: String
    public var second: String
    /// The winning configuration (nil: a tie).
    public var winner: String?
    public var ratings: [String: PanelRatings]
    public var correction: String
    public init(id: Int64, itemID: String, evaluator: String, first: String, second: String, winner: String?,
                ratings: [String: PanelRatings], correction: String) {
        self.id = id; self.itemID = itemID; self.evaluator = evaluator; self.first = first; self.second = second
        self.winner = winner; self.ratings = ratings; self.correction = correction
    }
    enum CodingKeys: String, CodingKey { case id, evaluator, first, second, winner, ratings, correction, itemID = "item_id" }
}
