import DamdaCore
import Foundation

public enum EvalError: DamdaError {
    case badQuestions(String)
    case unreadable(String)
    case badConfiguration(String)
    case badBaseline(String)

    public var message: String {
        switch self {
        case let .badQuestions(why): why
        case let .unreadable(path): "cannot read \(path)"
        case let .badConfiguration(why): "--config \(why)"
        case let .badBaseline(why): "baseline: \(why)"
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
    /// get `idPrefix` + their line number.
    public static func read(_ path: String, require: Requirement = .question, idPrefix: String = "") throws -> [EvalQuestion] {
        try parse(path, require: require, idPrefix: idPrefix, lenient: false).questions
    }

    /// Like `read`, but malformed lines are skipped and returned as "FILE:LINE: reason".
    public static func readSkipping(_ path: String, idPrefix: String = "") throws -> (questions: [EvalQuestion], skipped: [String]) {
        try parse(path, require: .question, idPrefix: idPrefix, lenient: true)
    }

    static func parse(_ path: String, require: Requirement, idPrefix: String, lenient: Bool) throws -> (questions: [EvalQuestion], skipped: [String]) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw EvalError.unreadable(path) }
        let decoder = JSONDecoder()
        var out: [EvalQuestion] = [], skipped: [String] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            var problem: String?
            var parsed = try? decoder.decode(EvalQuestion.self, from: Data(line.utf8))
            if parsed == nil {
                problem = "not a JSON object with a \"question\" string"
            } else if require == .document, parsed?.documentID == nil {
                problem = "no \"doc_id\""
            } else if require == .answers, parsed?.documentID == nil || parsed?.answers.isEmpty == true {
                problem = "not a {question, answers, doc_id} object"
            }
            if let problem {
                let why = "\(path):\(n + 1): \(problem)"
                if lenient { skipped.append(why); continue }
                throw EvalError.badQuestions(why)
            }
            if parsed!.id.isEmpty { parsed!.id = idPrefix + "\(n)" }
            out.append(parsed!)
        }
        return (out, skipped)
    }

    /// The documents hidden to make an answerable question unanswerable: its whole article
    /// (KorQuAD ids are "<article>-<paragraph>"), or the document alone when its id has no article.
    public static func articleDocuments(of document: String, among all: [String]) -> Set<String> {
        let article = document.split(separator: "-").dropLast().joined(separator: "-")
        return Set(all.filter { article.isEmpty ? $0 == document : $0.hasPrefix(article + "-") || $0 == document })
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
