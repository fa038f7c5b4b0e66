import DamdaCore
import DamdaEngine
import DamdaTokenizer
import Foundation

/// Training file layouts.
public enum TrainingFormat: String, CaseIterable, Sendable, Codable {
    /// Alpaca / KoAlpaca: `instruction`, optional `input`, `output`.
    case alpaca
    /// `messages`: [{role, content}]; loss on every assistant turn.
    case chat
    /// `question`, `context` (or built by retrieval), `answer` (or `answers[0]`), optional `doc_id`.
    case rag
}

/// One line of a training file, parsed.
public enum TrainingRecord: Sendable {
    case instruction(instruction: String, input: String, output: String)
    case conversation([ChatMessage])
    case rag(question: String, context: String?, answer: String, documentID: String?)
}

/// A tokenized example: the loss is taken where `isAnswer` is true (answer tokens, not the prompt).
public struct TrainingSequence: Sendable, Codable, Equatable {
    public var ids: [Int32]
    public var isAnswer: [Bool]
    public init(ids: [Int32], isAnswer: [Bool]) { self.ids = ids; self.isAnswer = isAnswer }
    public var answerTokens: Int { isAnswer.reduce(0) { $0 + ($1 ? 1 : 0) } }
}

/// What reading a training file kept and skipped.
public struct DataReport: Sendable {
    public var lines = 0
    public var records = 0
    public var skipped = 0
    /// The first few problems, "FILE:LINE: reason".
    public var problems: [String] = []
    public init() {}

    mutating func skip(_ why: String) {
        skipped += 1
        if problems.count < 10 { problems.append(why) }
    }
}

public enum TrainingDataReader {
    /// Parses a JSONL file; malformed lines are skipped and reported with their line number and reason.
    public static func read(_ path: String, format: TrainingFormat) throws -> (records: [TrainingRecord], report: DataReport) {
        guard let data = FileManager.default.contents(atPath: path) else { throw DatasetError.badData("cannot read \(path)") }
        var report = DataReport()
        var records: [TrainingRecord] = []
        let text = String(decoding: data, as: UTF8.self)
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            report.lines += 1
            let at = "\(path):\(n + 1)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                report.skip("\(at): not a JSON object"); continue
            }
            switch parse(object, format: format) {
            case let .success(r): records.append(r); report.records += 1
            case let .failure(why): report.skip("\(at): \(why.message)")
            }
        }
        guard !records.isEmpty else {
            throw DatasetError.badData("\(path): no usable \(format.rawValue) examples in \(report.lines) lines" +
                                        (report.problems.first.map { " (first problem: \($0))" } ?? ""))
        }
        return (records, report)
    }

    static func parse(_ o: [String: Any], format: TrainingFormat) -> Result<TrainingRecord, DatasetError> {
        func text(_ key: String) -> String? { (o[key] as? String).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } }
        switch format {
        case .alpaca:
            guard let instruction = text("instruction"), !instruction.isEmpty else { return .failure(.badData("missing or empty \"instruction\"")) }
            guard let output = text("output"), !output.isEmpty else { return .failure(.badData("missing or empty \"output\"")) }
            if o["input"] != nil && !(o["input"] is String) { return .failure(.badData("\"input\" must be a string")) }
            return .success(.instruction(instruction: instruction, input: text("input") ?? "", output: output))
        case .chat:
            guard let list = o["messages"] as? [[String: Any]], !list.isEmpty else { return .failure(.badData("missing \"messages\" array")) }
            var messages: [ChatMessage] = []
            for (i, m) in list.enumerated() {
                guard let role = m["role"] as? String, let content = m["content"] as? String else {
                    return .failure(.badData("message \(i + 1) needs string \"role\" and \"content\""))
                }
                guard ["system", "user", "assistant", "model"].contains(role) else { return .failure(.badData("message \(i + 1) has role \"\(role)\"")) }
                messages.append(ChatMessage(role: role, content: content))
            }
            guard messages.contains(where: { $0.role == "assistant" || $0.role == "model" }) else {
                return .failure(.badData("no assistant message to learn from"))
            }
            return .success(.conversation(messages))
        case .rag:
            guard let question = text("question"), !question.isEmpty else { return .failure(.badData("missing or empty \"question\"")) }
            let answer = text("answer") ?? (o["answers"] as? [Any])?.compactMap({ $0 as? String ?? ($0 as? [String: Any])?["text"] as? String }).first
            guard let answer, !answer.isEmpty else { return .failure(.badData("missing \"answer\" (or a non-empty \"answers\" list)")) }
            return .success(.rag(question: question, context: text("context"), answer: answer, documentID: text("doc_id")))
        }
    }
}

/// What to do with an example longer than `--max-len`.
public enum TruncationPolicy: String, CaseIterable, Sendable, Codable {
    /// Skip it (counted in the report).
    case drop
    /// Cut prompt tokens just after BOS (the oldest context) until it fits; the answer is kept whole.
    case prompt
}

extension TrainingSequence {
    /// Fits the sequence in `maxLength` tokens, or nil when the policy drops it.
    public func truncated(to maxLength: Int, policy: TruncationPolicy) -> TrainingSequence? {
        guard ids.count > maxLength else { return self }
        guard policy == .prompt, let firstAnswer = isAnswer.firstIndex(of: true) else { return nil }
        let excess = ids.count - maxLength
        // Keep the first token (BOS) and at least a few prompt tokens before the answer.
        guard firstAnswer - 1 - excess >= 4 else { return nil }
        return TrainingSequence(ids: [ids[0]] + ids[(1 + excess)...], isAnswer: [isAnswer[0]] + isAnswer[(1 + excess)...])
    }
}
