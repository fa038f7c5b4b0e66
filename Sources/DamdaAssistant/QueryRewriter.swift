import DamdaEngine
import Foundation

/// How a follow-up question becomes a standalone search query.
public enum RewriteMode: String, Sendable, Codable, CaseIterable {
    /// The model rewrites it; an implausible rewrite falls back to `concatenate`.
    case model
    /// The previous user question followed by the follow-up.
    case concatenate
    /// The follow-up as is.
    case off
}

public struct Rewrite: Sendable {
    public var question: String
    /// "none" (first turn or off), "model", "concatenate", or "fallback" (the model's rewrite was rejected).
    public var method: String
}

/// Rewrites a follow-up ("그럼 통원은요?") into a question that stands alone, before retrieval.
public struct QueryRewriter: Sendable {
    public var mode: RewriteMode
    public var maxTokens = 48

    public init(mode: RewriteMode) { self.mode = mode }

    public static func prompt(history: [ChatMessage], question: String) -> String {
        var turns = ""
        for m in history.suffix(6) {
            turns += (m.role == "user" ? "사용자: " : "도우미: ") + m.content.prefix(300) + "\n"
        }
        return """
            다음 대화를 참고해서 마지막 질문을 앞의 대화 없이도 이해할 수 있는 하나의 완전한 질문으로 다시 쓰세요.
            [대화]
            \(turns)[마지막 질문]
            \(question)
            [다시 쓴 질문]

            """
    }

    /// The previous user turn joined with the follow-up: keeps the topic's terms for BM25 and e5.
    public static func concatenated(history: [ChatMessage], question: String) -> String {
        guard let last = history.last(where: { $0.role == "user" }) else { return question }
        return last.content + " " + question
    }

    /// A rewrite is plausible when it is one short line, not template text, and keeps at least
    /// one word of the follow-up (a base model often drifts to an unrelated question).
    public static func plausible(_ rewrite: String, question: String) -> Bool {
        let r = rewrite.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !r.isEmpty, !r.contains("["), !r.contains("\n"), r.count <= question.count * 3 + 60 else { return false }
        let words = question.split(whereSeparator: { $0.isWhitespace || $0.isPunctuation }).map { String($0.prefix(2)) }.filter { $0.count == 2 }
        return words.isEmpty || words.contains { r.contains($0) }
    }

    public func rewrite(_ question: String, history: [ChatMessage], generator: any TextGenerating) async throws -> Rewrite {
        guard !history.isEmpty, mode != .off else { return Rewrite(question: question, method: "none") }
        if mode == .concatenate { return Rewrite(question: Self.concatenated(history: history, question: question), method: "concatenate") }
        let tok = generator.model.tokenizer
        let req = GenerationRequest(prompt: tok.encode(Self.prompt(history: history, question: question)),
                                    maxTokens: maxTokens, sampling: .greedy, stop: ["\n", "["])
        let out = try await generator.complete(req).text.trimmingCharacters(in: .whitespacesAndNewlines)
        if Self.plausible(out, question: question) { return Rewrite(question: out, method: "model") }
        return Rewrite(question: Self.concatenated(history: history, question: question), method: "fallback")
    }
}
