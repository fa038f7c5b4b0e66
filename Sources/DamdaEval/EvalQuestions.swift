import DamdaCore
import Foundation

public enum EvalError: DamdaError {
    case badQuestions(String)
    case unreadable(String)

    public var message: String {
        switch self {
        case let .badQuestions(why): why
        case let .unreadable(path): "cannot read \(path)"
        }
    }
}

/// One evaluation question: KorQuAD-style `{id, question, answers, doc_id}`. `answers` and
/// `doc_id` are absent for questions the documents do not answer.
public struct EvalQuestion: Sendable, Codable, Equatable {
    public var id: String
    public var question: String
    public var answers: [String]
    /// The document that answers it (nil: none does).
    public var documentID: String?

    public init(id: String, question: String, answers: [String] = [], documentID: String? = nil) {
        self.id = id; self.question = question; self.answers = answers; self.documentID = documentID
    }

    enum CodingKeys: String, CodingKey { case id, question, answers, documentID = "doc_id" }

    /// Ids may be numbers in some files; answers may be strings or `{text}` objects.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        question = try c.decode(String.self, forKey: .question)
        if let s = try? c.decode(String.self, forKey: .id) { id = s } else if let n = try? c.decode(Int.self, forKey: .id) { id = "\(n)" } else { id = "" }
        if let list = try? c.decode([String].self, forKey: .answers) {
            answers = list
        } else if let objects = try? c.decode([[String: String]].self, forKey: .answers) {
            answers = objects.compactMap { $0["text"] }
        } else {
            answers = []
        }
        documentID = try c.decodeIfPresent(String.self, forKey: .documentID)
    }

    /// A JSONL file of questions; a malformed line is an error naming it. Questions without an id
    /// get `prefix` + their line number.
    public static func read(_ path: String, require: Requirement = .question, idPrefix: String = "") throws -> [EvalQuestion] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw EvalError.unreadable(path) }
        let decoder = JSONDecoder()
        var out: [EvalQuestion] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            guard var q = try? decoder.decode(EvalQuestion.self, from: Data(line.utf8)) else {
                throw EvalError.badQuestions("\(path):\(n + 1): not a JSON object with a \"question\" string")
            }
            switch require {
            case .question: break
            case .document where q.documentID == nil:
                throw EvalError.badQuestions("\(path):\(n + 1): no \"doc_id\"")
            case .answers where q.documentID == nil || q.answers.isEmpty:
                throw EvalError.badQuestions("\(path):\(n + 1): not a {question, answers, doc_id} object")
            default: break
            }
            if q.id.isEmpty { q.id = idPrefix + "\(n)" }
            out.append(q)
        }
        return out
    }

    public enum Requirement: Sendable { case question, document, answers }

    /// `n` questions spread evenly over `all` (all of them for n ≤ 0), so a small sample still
    /// covers many documents.
    public static func evenlySpaced(_ all: [EvalQuestion], _ n: Int) -> [EvalQuestion] {
        n > 0 && n < all.count ? (0..<n).map { all[$0 * all.count / n] } : all
    }
}

/// Rounds for reports: one decimal for percentages, three for recalls.
func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }
func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }
func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
