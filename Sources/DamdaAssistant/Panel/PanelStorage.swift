import Foundation

/// Which two configurations an evaluator was shown for an item, in the order shown.
public struct PanelAssignment: Sendable, Equatable {
    public var first: String
    public var second: String
    public init(first: String, second: String) { self.first = first; self.second = second }
}

/// A vote as the store writes it: the winner and ratings already mapped from slots to configurations.
public struct PanelVoteRow: Sendable {
    public var survey: String
    public var item: String
    public var evaluator: String
    public var winner: String?
    /// Configuration → ratings, as JSON.
    public var ratings: String
    public var correction: String
    public var createdAt: Date
}

/// Where the panel's surveys, assignments and votes live: SQLite beside the index, or PostgreSQL so
/// that several servers share one panel. `PanelStore` holds the rules (masking, blinding, one vote
/// per evaluator and item); a storage only keeps rows, and decides races by its unique keys.
public protocol PanelStorage: Sendable {
    /// Stores a survey and its items; when a survey with the same `fingerprint` exists, stores
    /// nothing and returns that survey's id (decided by a unique key, so two writers store one).
    func insertSurvey(id: String, name: String, configs: [String], createdAt: Date, items: [PanelItem], fingerprint: String) throws -> String?
    /// Every survey with its item and vote counts, oldest first.
    func surveys() throws -> [PanelSurvey]
    /// One survey with its counts; nil when there is none with that id.
    func survey(id: String) throws -> PanelSurvey?
    func items(survey: String) throws -> [PanelItem]
    func hasItem(survey: String, item: String) throws -> Bool
    /// The first item (in survey order) `evaluator` has not voted on, and how many items they voted on.
    func nextUnvoted(survey: String, evaluator: String) throws -> (item: PanelItem, voted: Int)?
    /// The stored assignment; when there is none and `proposed` is given, stores it unless another
    /// writer stored one first, and returns whichever is stored.
    func assignment(survey: String, item: String, evaluator: String, proposed: PanelAssignment?) throws -> PanelAssignment?
    /// Stores a vote and returns its id; nil when this evaluator already voted on this item.
    func insertVote(_ vote: PanelVoteRow) throws -> Int64?
    /// A survey's votes in the order cast, with the assignment each was cast on.
    func votes(survey: String) throws -> [PanelVote]
}

/// JSON columns shared by the storages.
public enum PanelJSON {
    static let encoder: JSONEncoder = { let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]; return e }()
    public static func encode<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
    public static func decode<T: Decodable>(_ t: T.Type, _ s: String) throws -> T { try JSONDecoder().decode(t, from: Data(s.utf8)) }
    public static func date(_ seconds: Double) -> String { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: seconds)) }
}
