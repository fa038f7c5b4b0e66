import DamdaCore
import DamdaRetrieval
import Foundation

/// Questions written by a larger model on the company's network (any OpenAI-compatible chat
/// endpoint: vLLM, llama.cpp's server, `damda serve`): a Korean system prompt with few-shot
/// examples asks for JSON questions, answers and the evidence quote. Replies are validated against
/// that schema and retried when malformed; a timeout, an HTTP error, a refusal or a reply that
/// never parses is reported as the chunk's failure, never thrown, so one bad chunk stops nothing.
public struct TeacherSynthesizer: Sendable {
    public var endpoint: ChatEndpoint
    public var perChunk = 3
    /// Requests per chunk when the reply is not the JSON asked for.
    public var attempts = 3
    public var maxTokens = 512

    public init(endpoint: ChatEndpoint, perChunk: Int = 3) { self.endpoint = endpoint; self.perChunk = perChunk }

    /// Why a chunk got no questions from the teacher; the summary counts each.
    public enum Failure: String, Sendable {
        case timeout = "teacher_timeout", http = "teacher_http_error", unreachable = "teacher_unreachable"
        case malformed = "teacher_malformed", refused = "teacher_refused"
    }

    public struct Outcome: Sendable {
        public var questions: [SynthesizedQuestion] = []
        public var failure: Failure?
        /// Requests sent for the chunk.
        public var requests = 0
        /// The last error's text, for the log.
        public var detail: String?
    }

    /// The schema asked for: {"questions": [{"question", "answer", "evidence"}]}.
    struct Reply: Decodable {
        struct Item: Decodable { var question: String, answer: String, evidence: String? }
        var questions: [Item]
    }

    static let system = """
        당신은 회사 문서로 고객 상담용 질문과 답을 만드는 도우미입니다. 주어진 [문서]만 보고, 고객이 실제로 물어볼 법한 질문을 \
        자기 말로(문서 문장을 그대로 베끼지 말고) 해요체로 쓰세요. 답은 [문서]에 그대로 있는 짧은 구절이어야 하고, \
        evidence는 답이 들어 있는 [문서]의 문장을 그대로 옮기세요. 반드시 JSON 한 개만 출력하세요. 다른 말은 쓰지 마세요.
        """

    static func prompt(for chunk: Chunk, count: Int) -> String {
        """
        [예시 문서]
        회사는 피보험자가 질병으로 입원한 경우 입원 1일당 5만원의 입원일당을 지급합니다. 보험금은 서류를 받은 날부터 3영업일 이내에 지급합니다.
        [예시 출력]
        {"questions": [{"question": "병으로 입원하면 하루에 얼마씩 받을 수 있나요?", "answer": "5만원", "evidence": "회사는 피보험자가 질병으로 입원한 경우 입원 1일당 5만원의 입원일당을 지급합니다."}, {"question": "서류를 내면 보험금은 언제까지 들어오나요?", "answer": "3영업일 이내", "evidence": "보험금은 서류를 받은 날부터 3영업일 이내에 지급합니다."}]}

        [문서]
        \(chunk.title.isEmpty ? "" : "제목: \(chunk.title)\n")\(chunk.text)
        [출력]
        질문 \(count)개를 위 형식의 JSON으로 쓰세요.
        """
    }

    /// Phrases of a reply that declines instead of answering.
    static let refusalMarkers = ["답변을 찾을 수 없습니다", "죄송", "할 수 없습니다", "I cannot", "I can't", "sorry"]

    /// Parsed and validated items, or nil when the reply does not hold the schema.
    static func parse(_ text: String) -> [Reply.Item]? {
        guard let data = ChatEndpoint.firstJSONObject(in: text), let reply = try? JSONDecoder().decode(Reply.self, from: data) else { return nil }
        return reply.questions
    }

    /// A reply's questions for `chunk`, or nil when the reply does not hold the schema. Answers
    /// are kept as the teacher wrote them (the synthesis filters drop those that are not a span of
    /// the chunk); the evidence is the teacher's quote when it is one, else the sentence holding the answer.
    public static func questions(fromReply text: String, chunk: Chunk, model: String, perChunk: Int) -> [SynthesizedQuestion]? {
        parse(text).map { questions(from: $0, chunk: chunk, model: model, perChunk: perChunk) }
    }

    static func questions(from items: [Reply.Item], chunk: Chunk, model: String, perChunk: Int) -> [SynthesizedQuestion] {
        let sentences = SentenceSplitter.split(chunk.text)
        return items.prefix(perChunk).compactMap { item in
            let question = item.question.trimmingCharacters(in: .whitespacesAndNewlines)
            let answer = item.answer.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !question.isEmpty, !answer.isEmpty else { return nil }
            let quoted = item.evidence?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let evidence = !quoted.isEmpty && chunk.text.contains(quoted) ? quoted : sentences.first(where: { $0.contains(answer) }) ?? ""
            return SynthesizedQuestion(id: "", question: question, answers: [answer], documentID: chunk.documentID, chunkID: chunk.id,
                                       evidence: evidence, generator: "teacher/" + model)
        }
    }

    public func questions(for chunk: Chunk) async -> Outcome {
        var outcome = Outcome()
        let prompt = Self.prompt(for: chunk, count: perChunk)
        for _ in 0..<max(attempts, 1) {
            outcome.requests += 1
            let text: String
            do {
                text = try await endpoint.complete(system: Self.system, user: prompt, maxTokens: maxTokens)
            } catch let failure as ChatEndpoint.Failure {
                outcome.detail = failure.description
                switch failure {
                case .timeout: outcome.failure = .timeout
                case .http: outcome.failure = .http
                case .transport: outcome.failure = .unreachable
                case .malformed: outcome.failure = .malformed; continue
                }
                return outcome   // a network failure is not retried here: a rerun asks again
            } catch {
                outcome.failure = .unreachable; outcome.detail = "\(error)"
                return outcome
            }
            guard let items = Self.parse(text) else {
                outcome.detail = String(text.prefix(200))
                outcome.failure = Self.refusalMarkers.contains(where: { text.localizedCaseInsensitiveContains($0) }) ? .refused : .malformed
                continue
            }
            outcome.failure = nil
            outcome.questions = Self.questions(from: items, chunk: chunk, model: endpoint.model, perChunk: perChunk)
            if outcome.questions.isEmpty { outcome.failure = .refused; outcome.detail = "no usable question in the reply" }
            return outcome
        }
        return outcome
    }
}
