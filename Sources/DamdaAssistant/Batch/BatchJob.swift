import DamdaCore
import DamdaEngine
import Foundation

/// One question of a batch file: its id (the file's `id`, else `line-N`) and where it was read.
public struct BatchQuestion: Sendable, Equatable {
    public var id: String
    public var question: String
    public var line: Int
    public init(id: String, question: String, line: Int) { self.id = id; self.question = question; self.line = line }
}

/// A questions-file line as read: "question", and "id" as a string or an integer (null: absent).
struct QuestionLine: Decodable {
    var question: String?
    var id: String?
    var invalidID = false
    enum CodingKeys: String, CodingKey { case question, id }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        question = try? c.decodeIfPresent(String.self, forKey: .question)
        guard c.contains(.id), try !c.decodeNil(forKey: .id) else { return }
        if let s = try? c.decode(String.self, forKey: .id), !s.isEmpty { id = s }
        else if let n = try? c.decode(Int64.self, forKey: .id) { id = String(n) }
        else { invalidID = true }
    }
}

/// The id of an answers-file line (all a rerun needs to skip it).
struct AnsweredLine: Decodable { var id: String }

/// A line of the questions file that was not answered, and why.
public struct BatchSkip: Sendable, Codable, Equatable {
    public var line: Int
    public var reason: String
}

/// A cited source of a batch answer: where it came from, not the whole chunk.
public struct BatchCitation: Sendable, Codable, Equatable {
    public var n: Int
    public var documentID: String
    public var chunkID: String
    public var title: String
    public var source: String
    public var heading: [String]
    public var page: Int?
    public var used: Bool
    /// The text the model was given (the whole chunk, or the sentences that fit the budget).
    public var text: String
    enum CodingKeys: String, CodingKey { case n, title, source, heading, page, used, text, documentID = "document_id", chunkID = "chunk_id" }
}

/// One line of the answers file.
public struct BatchResult: Sendable, Codable, Equatable {
    /// The question's id in the questions file.
    public var id: String
    public var question: String
    public var answer: String
    public var refused: Bool
    public var refusalReason: String?
    public var unsupported: Bool
    public var citations: [BatchCitation]
    public var promptTokens: Int
    public var completionTokens: Int
    public var finishReason: String?
    /// The assistant's answer id (the feedback routes rate answers by it).
    public var answerID: String
    public var cache: String?
    enum CodingKeys: String, CodingKey {
        case id, question, answer, refused, unsupported, citations, cache
        case refusalReason = "refusal_reason", promptTokens = "prompt_tokens", completionTokens = "completion_tokens"
        case finishReason = "finish_reason", answerID = "answer_id"
    }

    public init(id: String, _ a: AssistantAnswer) {
        self.id = id; question = a.question; answer = a.answer; refused = a.refused; refusalReason = a.refusalReason
        unsupported = a.unsupported
        citations = a.citations.map {
            BatchCitation(n: $0.n, documentID: $0.documentID, chunkID: $0.chunkID, title: $0.title, source: $0.source,
                          heading: $0.heading, page: $0.page, used: $0.used, text: $0.text)
        }
        promptTokens = a.usage.promptTokens; completionTokens = a.usage.completionTokens
        finishReason = a.finishReason; answerID = a.id; cache = a.cache?.rawValue
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(question, forKey: .question); try c.encode(answer, forKey: .answer)
        try c.encode(refused, forKey: .refused); try c.encode(refusalReason, forKey: .refusalReason)   // null, not absent
        try c.encode(unsupported, forKey: .unsupported); try c.encode(citations, forKey: .citations)
        try c.encode(promptTokens, forKey: .promptTokens); try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(finishReason, forKey: .finishReason); try c.encode(answerID, forKey: .answerID)
        try c.encode(cache, forKey: .cache)
    }
}

/// A question the assistant failed on (not written to the answers file: a rerun retries it).
public struct BatchFailure: Sendable, Codable, Equatable {
    public var id: String
    public var line: Int
    public var error: String
}

/// What a batch run did; also written beside the answers as JSON.
public struct BatchSummary: Sendable, Codable {
    public var questionsFile: String
    public var answersFile: String
    /// Non-blank lines of the questions file.
    public var lines: Int
    public var questions: Int
    /// Answered by an earlier run (found in the answers file) and not asked again.
    public var alreadyAnswered: Int
    public var answered: Int
    public var refused: Int
    public var skipped: [BatchSkip]
    public var failed: [BatchFailure]
    /// A partial last line an interrupted run left in the answers file, cut before resuming.
    public var truncatedPartialLine: Bool
    public var concurrency: Int
    public var elapsedSeconds: Double
    public var questionsPerSecond: Double
    public var completionTokens: Int
    public var completionTokensPerSecond: Double
    /// Tokens per batched decode step (the scheduler's mean batch); nil with a lone generator.
    public var meanDecodeBatch: Double?
    enum CodingKeys: String, CodingKey {
        case lines, questions, answered, refused, skipped, failed, concurrency
        case questionsFile = "questions_file", answersFile = "answers_file", alreadyAnswered = "already_answered"
        case truncatedPartialLine = "truncated_partial_line", elapsedSeconds = "elapsed_s", questionsPerSecond = "questions_per_s"
        case completionTokens = "completion_tokens", completionTokensPerSecond = "completion_tokens_per_s"
        case meanDecodeBatch = "mean_decode_batch"
    }
}

public enum BatchError: DamdaError {
    case unreadable(String)
    case foreignAnswersLine(String, Int)
    case badConcurrency(Int)

    public var message: String {
        switch self {
        case let .unreadable(path): "cannot read \(path)"
        case let .foreignAnswersLine(path, line):
            "\(path):\(line) is not an answer this command wrote (no \"id\"): it would be overwritten or asked twice; move the file away or fix that line"
        case let .badConcurrency(n): "--concurrency must be at least 1 (got \(n))"
        }
    }
}

/// One question's answer, or why it has none.
struct BatchOutcome: Sendable {
    let question: BatchQuestion
    var answer: AssistantAnswer?
    var error: String?
    var cancelled = false

    init(_ q: BatchQuestion, _ assistant: Assistant) async {
        question = q
        do { answer = try await assistant.answer(q.question) } catch is CancellationError { cancelled = true } catch { self.error = "\(error)" }
    }
}

/// Answers a file of questions into a JSONL file of cited answers, `concurrency` at a time (with
/// the `DecodeScheduler` as the assistant's generator, their tokens decode in one batched step).
/// Each answer is one line written whole and flushed to disk before the next, so a run killed at
/// any point loses at most the answers still being written; a rerun cuts a partial last line,
/// skips every id already answered and asks the rest. Questions that fail are listed in the
/// summary and not written, so a rerun retries them.
public struct BatchJob: Sendable {
    public var questionsPath: String
    public var answersPath: String
    public var concurrency: Int
    /// Where served answers are recorded so they can be rated later (the server's answer log).
    public var answerLog: (any FeedbackStore)?

    public init(questions: String, answers: String, concurrency: Int = 8) {
        questionsPath = questions; answersPath = answers; self.concurrency = concurrency
    }

    /// The questions of a JSONL file: objects with a non-empty "question" and optionally an "id"
    /// (string or integer, unique); other lines are skipped with their reason.
    public static func readQuestions(_ path: String) throws -> (questions: [BatchQuestion], skipped: [BatchSkip], lines: Int) {
        guard let data = FileManager.default.contents(atPath: path) else { throw BatchError.unreadable(path) }
        var questions: [BatchQuestion] = [], skipped: [BatchSkip] = [], lines = 0
        var firstLine: [String: Int] = [:]
        for (i, raw) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = i + 1
            let text = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { continue }
            lines += 1
            guard let parsed = try? JSONDecoder().decode(QuestionLine.self, from: Data(text.utf8)) else {
                skipped.append(BatchSkip(line: line, reason: "not a JSON object")); continue
            }
            guard let q = parsed.question?.trimmingCharacters(in: .whitespacesAndNewlines), !q.isEmpty else {
                skipped.append(BatchSkip(line: line, reason: "no non-empty \"question\" string")); continue
            }
            guard !parsed.invalidID else {
                skipped.append(BatchSkip(line: line, reason: "\"id\" is neither a non-empty string nor an integer")); continue
            }
            let id = parsed.id ?? "line-\(line)"
            if let first = firstLine[id] {
                skipped.append(BatchSkip(line: line, reason: "duplicate id '\(id)' (first on line \(first))")); continue
            }
            firstLine[id] = line
            questions.append(BatchQuestion(id: id, question: q, line: line))
        }
        return (questions, skipped, lines)
    }

    /// The ids an earlier run answered. A partial last line (a kill mid-write) is cut off the
    /// file; any other line without an id stops the run rather than be overwritten.
    static func answeredIDs(_ path: String) throws -> (ids: Set<String>, truncated: Bool) {
        guard FileManager.default.fileExists(atPath: path) else { return ([], false) }
        guard let data = FileManager.default.contents(atPath: path) else { throw BatchError.unreadable(path) }
        var keep = data.count
        var truncated = false
        if let last = data.last, last != UInt8(ascii: "\n") {
            keep = (data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }) ?? 0
            truncated = true
        }
        var ids = Set<String>()
        for (i, raw) in data.prefix(keep).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !raw.isEmpty {
            guard let answered = try? JSONDecoder().decode(AnsweredLine.self, from: Data(raw)) else {
                throw BatchError.foreignAnswersLine(path, i + 1)
            }
            ids.insert(answered.id)
        }
        if truncated {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: UInt64(keep))
            try handle.close()
        }
        return (ids, truncated)
    }

    public func run(assistant: Assistant, note: (String) -> Void = { _ in }) async throws -> BatchSummary {
        guard concurrency >= 1 else { throw BatchError.badConcurrency(concurrency) }
        let clock = ContinuousClock()
        let start = clock.now
        let (questions, skipped, lines) = try Self.readQuestions(questionsPath)
        for s in skipped { note("\(questionsPath):\(s.line): skipped: \(s.reason)") }
        let (done, truncated) = try Self.answeredIDs(answersPath)
        if truncated { note("\(answersPath): cut a partial last line an interrupted run left") }
        let todo = questions.filter { !done.contains($0.id) }
        if !done.isEmpty { note("resuming: \(questions.count - todo.count) of \(questions.count) questions already answered in \(answersPath)") }

        if !FileManager.default.fileExists(atPath: answersPath) {
            guard FileManager.default.createFile(atPath: answersPath, contents: nil) else { throw BatchError.unreadable(answersPath) }
        }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: answersPath))
        defer { try? out.close() }
        try out.seekToEnd()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let scheduler = assistant.generator as? DecodeScheduler
        let statsBefore = scheduler?.decodeStats

        let bar = ProgressBar(total: Int64(todo.count), label: "answering", unit: "questions")
        var answered = 0, refused = 0, tokens = 0
        var failed: [BatchFailure] = []
        try await withThrowingTaskGroup(of: BatchOutcome.self) { group in
            var next = 0
            while next < min(concurrency, todo.count) {
                let q = todo[next]
                next += 1
                group.addTask { await BatchOutcome(q, assistant) }
            }
            while let outcome = try await group.next() {
                let q = outcome.question
                if let a = outcome.answer {
                    try answerLog?.record(AnswerRecord(a))
                    var line = try encoder.encode(BatchResult(id: q.id, a))
                    line.append(UInt8(ascii: "\n"))
                    try out.write(contentsOf: line)
                    try out.synchronize()
                    answered += 1
                    if a.refused { refused += 1 }
                    tokens += a.usage.completionTokens
                } else if outcome.cancelled {
                    throw CancellationError()
                } else {
                    failed.append(BatchFailure(id: q.id, line: q.line, error: outcome.error ?? "unknown error"))
                    note("\(questionsPath):\(q.line): failed: \(outcome.error ?? "")")
                }
                bar.detail = String(format: "%.1f answer tokens/s", Double(tokens) / max((clock.now - start).seconds, 1e-9))
                bar.advance(by: 1)
                if next < todo.count {
                    let q = todo[next]
                    next += 1
                    group.addTask { await BatchOutcome(q, assistant) }
                }
            }
        }
        if !todo.isEmpty { bar.finish() }
        let elapsed = (clock.now - start).seconds
        var meanBatch: Double?
        if let scheduler, let before = statsBefore {
            let after = scheduler.decodeStats
            let steps = after.steps - before.steps
            if steps > 0 { meanBatch = Double(after.tokens - before.tokens) / Double(steps) }
        }
        return BatchSummary(
            questionsFile: questionsPath, answersFile: answersPath, lines: lines, questions: questions.count,
            alreadyAnswered: questions.count - todo.count, answered: answered, refused: refused, skipped: skipped, failed: failed,
            truncatedPartialLine: truncated, concurrency: concurrency, elapsedSeconds: elapsed,
            questionsPerSecond: elapsed > 0 ? Double(answered) / elapsed : 0, completionTokens: tokens,
            completionTokensPerSecond: elapsed > 0 ? Double(tokens) / elapsed : 0, meanDecodeBatch: meanBatch)
    }
}
