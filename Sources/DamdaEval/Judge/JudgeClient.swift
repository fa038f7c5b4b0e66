import DamdaCore
import Foundation

/// An LLM judge behind any OpenAI-compatible chat endpoint on the company's network (vLLM,
/// llama.cpp's server, `damda serve`): a Korean rubric scored 1–5 as JSON, and pairwise A/B asked
/// in both orders. Replies are validated; malformed ones are retried, then counted, never fatal.
public struct JudgeClient: Sendable {
    /// The judge model's endpoint.
    public var endpoint: ChatEndpoint
    /// Attempts per question when the reply is not the JSON the rubric asks for.
    public var attempts = 3

    public init(url: URL, model: String, key: String? = nil) { endpoint = ChatEndpoint(url: url, model: model, key: key) }

    /// The rubric's scores for one answer.
    public struct Scores: Codable, Sendable, Equatable {
        /// 정확성: agrees with the reference answer.
        public var correctness: Int
        /// 근거성: supported by the sources given.
        public var groundedness: Int
        /// 유용성: answers what was asked, clearly.
        public var helpfulness: Int
        public init(correctness: Int, groundedness: Int, helpfulness: Int) {
            self.correctness = correctness; self.groundedness = groundedness; self.helpfulness = helpfulness
        }
    }

    static let system = "당신은 한국어 질의응답 시스템의 답변을 평가하는 채점자입니다. 반드시 JSON 한 개만 출력하세요. 다른 말은 쓰지 마세요."

    static func rubric(question: String, reference: [String], sources: [String], answer: String) -> String {
        """
        아래 [질문]에 대한 [답변]을 [정답]과 [출처]에 비추어 1점부터 5점까지 채점하세요.
        - 정확성(correctness): [정답]과 뜻이 같으면 5, 틀리면 1. 정답이 없는 질문에 "답변을 찾을 수 없습니다."라고 하면 5.
        - 근거성(groundedness): [출처]에 근거가 있으면 5, 출처에 없는 내용을 지어내면 1.
        - 유용성(helpfulness): 질문에 바로, 분명하게 답하면 5.
        출력 형식: {"correctness": 정수, "groundedness": 정수, "helpfulness": 정수}
        예시: {"correctness": 5, "groundedness": 4, "helpfulness": 5}
        [질문]
        \(question)
        [정답]
        \(reference.isEmpty ? "(문서에 답이 없음)" : reference.joined(separator: " / "))
        [출처]
        \(sources.isEmpty ? "(없음)" : sources.prefix(3).joined(separator: "\n---\n"))
        [답변]
        \(answer)
        """
    }

    static func pairwise(question: String, reference: [String], first: String, second: String) -> String {
        """
        아래 [질문]에 대한 두 답변 중 [정답]에 비추어 더 나은 것을 고르세요. 비슷하면 "tie"라고 하세요.
        출력 형식: {"winner": "A"} 또는 {"winner": "B"} 또는 {"winner": "tie"}
        [질문]
        \(question)
        [정답]
        \(reference.isEmpty ? "(문서에 답이 없음: \"답변을 찾을 수 없습니다.\"가 옳음)" : reference.joined(separator: " / "))
        [답변 A]
        \(first)
        [답변 B]
        \(second)
        """
    }

    func complete(_ prompt: String) async throws -> String {
        try await endpoint.complete(system: Self.system, user: prompt, maxTokens: 64)
    }

    /// The first {...} object in a reply, loosely typed: judges write scores as 5, 5.0 or "5".
    static func firstObject(_ text: String) -> [String: Any]? {
        ChatEndpoint.firstJSONObject(in: text).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }

    /// Scores in 1...5, or nil when the reply does not hold all three.
    public static func parseScores(_ text: String) -> Scores? {
        guard let o = firstObject(text) else { return nil }
        func score(_ k: String) -> Int? {
            let v = (o[k] as? Int) ?? (o[k] as? Double).map { Int($0) } ?? (o[k] as? String).flatMap { Int($0) }
            return v.flatMap { (1...5).contains($0) ? $0 : nil }
        }
        guard let c = score("correctness"), let g = score("groundedness"), let h = score("helpfulness") else { return nil }
        return Scores(correctness: c, groundedness: g, helpfulness: h)
    }

    /// "A", "B" or "tie", or nil when the reply holds none of them.
    public static func parseWinner(_ text: String) -> String? {
        guard let w = (firstObject(text)?["winner"] as? String)?.trimmingCharacters(in: .whitespaces) else { return nil }
        switch w.lowercased() {
        case "a": return "A"
        case "b": return "B"
        case "tie", "무승부", "동점": return "tie"
        default: return nil
        }
    }

    /// The rubric's scores, retried on malformed replies; nil after `attempts` malformed replies.
    public func score(question: String, reference: [String], sources: [String], answer: String) async throws -> (scores: Scores?, attempts: Int) {
        let prompt = Self.rubric(question: question, reference: reference, sources: sources, answer: answer)
        for attempt in 1...max(attempts, 1) {
            if let s = Self.parseScores(try await complete(prompt)) { return (s, attempt) }
        }
        return (nil, max(attempts, 1))
    }

    /// Which of two answers is better, asked in both orders: a winner only when both orders
    /// agree, a tie when they disagree, nil when either order never gave a valid reply.
    public func compare(question: String, reference: [String], a: String, b: String) async throws -> String? {
        func ask(_ first: String, _ second: String) async throws -> String? {
            let prompt = Self.pairwise(question: question, reference: reference, first: first, second: second)
            for _ in 1...max(attempts, 1) { if let w = Self.parseWinner(try await complete(prompt)) { return w } }
            return nil
        }
        guard let forward = try await ask(a, b), let backward = try await ask(b, a) else { return nil }
        let unswapped = backward == "A" ? "B" : backward == "B" ? "A" : "tie"
        return forward == unswapped ? forward : "tie"
    }
}
