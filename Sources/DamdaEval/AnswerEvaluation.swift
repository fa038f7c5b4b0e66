import DamdaAssistant
import DamdaCore
import DamdaRetrieval
import Foundation

/// Answer quality of the whole assistant (retrieve → prompt → generate → clean → cite) on a QA
/// set: KorQuAD EM and character F1, the gold phrase in the answer, refusals on answerable,
/// unanswerable (the question's own article hidden) and off-domain questions, the gold document
/// in the prompt, grounding, tokens and speed.
public struct AnswerEvaluation {
    public let assistant: Assistant
    /// Every document id of the index, to hide a question's own article for unanswerable runs.
    public var documentIDs: [String]

    public init(assistant: Assistant, documentIDs: [String]) {
        self.assistant = assistant; self.documentIDs = documentIDs
    }

    /// One question's outcome (the `--out` JSONL rows).
    public struct Row: Codable, Sendable {
        public var id: String, question: String, gold: [String], answer: String, raw: String
        public var em: Bool, f1: Double, refused: Bool, goldChunkGiven: Bool, unanswerable: Bool, goldInAnswer: Bool, cited: [String]
    }

    /// Answers `answerable`, then `unanswerable` of them again with their article hidden, then
    /// `offDomain`; `row` sees each outcome as it comes.
    public func run(answerable: [EvalQuestion], unanswerable: Int, offDomain: [EvalQuestion] = [], progress: Bool = true,
                    row: (Row) -> Void = { _ in }) async throws -> AnswerReport {
        let cfg = assistant.config
        var em = 0, refusedAnswerable = 0, echo = 0, goldGiven = 0, promptTokens = 0, answerTokens = 0, goldInAnswer = 0, unsupported = 0
        var f1 = 0.0, bestSentenceF1 = 0.0, generationSeconds = 0.0
        let bar = progress ? ProgressBar(total: Int64(answerable.count + unanswerable + offDomain.count), label: "answers", unit: "q") : nil
        for (i, item) in answerable.enumerated() {
            let a = try await assistant.answer(item.question)
            let s = AnswerMetrics.score(a.answer, golds: item.answers)
            em += s.em ? 1 : 0
            f1 += s.f1
            bestSentenceF1 += a.citations.first.map { AnswerMetrics.score($0.bestSentence, golds: item.answers).f1 } ?? 0
            refusedAnswerable += a.refused ? 1 : 0
            echo += a.echoOnly ? 1 : 0
            unsupported += a.unsupported ? 1 : 0
            let given = a.citations.contains { $0.documentID == item.documentID }
            goldGiven += given ? 1 : 0
            let containsGold = !a.refused && AnswerMetrics.containsAnswer(a.answer, golds: item.answers)
            goldInAnswer += containsGold ? 1 : 0
            promptTokens += a.usage.promptTokens
            answerTokens += a.usage.completionTokens
            generationSeconds += a.timings.generationMs / 1000
            row(Row(id: item.id, question: item.question, gold: item.answers, answer: a.answer, raw: a.rawAnswer, em: s.em, f1: s.f1,
                    refused: a.refused, goldChunkGiven: given, unanswerable: false, goldInAnswer: containsGold, cited: a.citations.map(\.documentID)))
            bar?.update(to: Int64(i + 1))
        }
        // Unanswerable: the question against the index without its own article.
        var refusedUnanswerable = 0
        for j in 0..<(answerable.isEmpty ? 0 : unanswerable) {
            let item = answerable[j * answerable.count / unanswerable]
            var hidden = cfg
            hidden.filter.excludedDocuments = EvalQuestion.articleDocuments(of: item.documentID ?? "", among: documentIDs)
            let a = try await assistant.answer(item.question, config: hidden)
            refusedUnanswerable += a.refused ? 1 : 0
            row(Row(id: item.id, question: item.question, gold: [], answer: a.answer, raw: a.rawAnswer, em: false, f1: 0, refused: a.refused,
                    goldChunkGiven: false, unanswerable: true, goldInAnswer: false, cited: a.citations.map(\.documentID)))
            bar?.update(to: Int64(answerable.count + j + 1))
        }
        var refusedOffDomain = 0
        for (j, item) in offDomain.enumerated() {
            let a = try await assistant.answer(item.question)
            refusedOffDomain += a.refused ? 1 : 0
            row(Row(id: item.id, question: item.question, gold: [], answer: a.answer, raw: a.rawAnswer, em: false, f1: 0, refused: a.refused,
                    goldChunkGiven: false, unanswerable: true, goldInAnswer: false, cited: a.citations.map(\.documentID)))
            bar?.update(to: Int64(answerable.count + unanswerable + j + 1))
        }
        bar?.finish()
        let n = Double(max(answerable.count, 1))
        return AnswerReport(
            model: assistant.modelName, questions: answerable.count, mode: (cfg.mode ?? .bm25).rawValue, k: cfg.k,
            budgetTokens: cfg.budgetTokens, maxAnswerTokens: cfg.maxAnswerTokens,
            exactMatch: round1(Double(em) / n * 100), f1: round1(f1 / n * 100),
            refusedAnswerablePct: round1(Double(refusedAnswerable) / n * 100), echoOnlyPct: round1(Double(echo) / n * 100),
            unsupportedPct: round1(Double(unsupported) / n * 100), goldInAnswerPct: round1(Double(goldInAnswer) / n * 100),
            offDomainQuestions: offDomain.count,
            refusedOffDomainPct: offDomain.isEmpty ? nil : round1(Double(refusedOffDomain) / Double(offDomain.count) * 100),
            retrieval: cfg.useRetrieval, minRelevance: cfg.minRelevance, minSimilarity: cfg.minSimilarity,
            goldChunkInContextPct: round1(Double(goldGiven) / n * 100), bestSentenceF1: round1(bestSentenceF1 / n * 100),
            unanswerableQuestions: unanswerable,
            refusedUnanswerablePct: unanswerable > 0 ? round1(Double(refusedUnanswerable) / Double(unanswerable) * 100) : nil,
            meanPromptTokens: round1(Double(promptTokens) / n), meanAnswerTokens: round1(Double(answerTokens) / n),
            secondsPerQuestion: round2(generationSeconds / n), threads: assistant.generator.model.threads, adapter: assistant.adapterName)
    }
}

/// `damda bench answers`' JSON. Percentages have one decimal; absent rates are null.
public struct AnswerReport: Codable, Sendable {
    public var model: String
    public var questions: Int
    public var mode: String
    public var k: Int
    public var budgetTokens: Int
    public var maxAnswerTokens: Int
    public var exactMatch: Double
    public var f1: Double
    public var refusedAnswerablePct: Double
    public var echoOnlyPct: Double
    public var unsupportedPct: Double
    public var goldInAnswerPct: Double
    public var offDomainQuestions: Int
    public var refusedOffDomainPct: Double?
    public var retrieval: Bool
    public var minRelevance: Float
    public var minSimilarity: Float?
    public var goldChunkInContextPct: Double
    public var bestSentenceF1: Double
    public var unanswerableQuestions: Int
    public var refusedUnanswerablePct: Double?
    public var meanPromptTokens: Double
    public var meanAnswerTokens: Double
    public var secondsPerQuestion: Double
    public var threads: Int
    public var adapter: String?

    enum CodingKeys: String, CodingKey {
        case model, questions, mode, k, f1, retrieval, threads, adapter
        case budgetTokens = "budget_tokens", maxAnswerTokens = "max_answer_tokens", exactMatch = "exact_match"
        case refusedAnswerablePct = "refused_answerable_pct", echoOnlyPct = "echo_only_pct", unsupportedPct = "unsupported_pct"
        case goldInAnswerPct = "gold_in_answer_pct", offDomainQuestions = "off_domain_questions", refusedOffDomainPct = "refused_off_domain_pct"
        case minRelevance = "min_relevance", minSimilarity = "min_similarity", goldChunkInContextPct = "gold_chunk_in_context_pct"
        case bestSentenceF1 = "best_sentence_f1", unanswerableQuestions = "unanswerable_questions"
        case refusedUnanswerablePct = "refused_unanswerable_pct", meanPromptTokens = "mean_prompt_tokens"
        case meanAnswerTokens = "mean_answer_tokens", secondsPerQuestion = "seconds_per_question"
    }

    /// Optional fields are written as null, not left out, so every report has the same keys.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model); try c.encode(questions, forKey: .questions); try c.encode(mode, forKey: .mode)
        try c.encode(k, forKey: .k); try c.encode(budgetTokens, forKey: .budgetTokens); try c.encode(maxAnswerTokens, forKey: .maxAnswerTokens)
        try c.encode(exactMatch, forKey: .exactMatch); try c.encode(f1, forKey: .f1)
        try c.encode(refusedAnswerablePct, forKey: .refusedAnswerablePct); try c.encode(echoOnlyPct, forKey: .echoOnlyPct)
        try c.encode(unsupportedPct, forKey: .unsupportedPct); try c.encode(goldInAnswerPct, forKey: .goldInAnswerPct)
        try c.encode(offDomainQuestions, forKey: .offDomainQuestions); try c.encode(refusedOffDomainPct, forKey: .refusedOffDomainPct)
        try c.encode(retrieval, forKey: .retrieval); try c.encode(minRelevance, forKey: .minRelevance)
        try c.encode(minSimilarity, forKey: .minSimilarity); try c.encode(goldChunkInContextPct, forKey: .goldChunkInContextPct)
        try c.encode(bestSentenceF1, forKey: .bestSentenceF1); try c.encode(unanswerableQuestions, forKey: .unanswerableQuestions)
        try c.encode(refusedUnanswerablePct, forKey: .refusedUnanswerablePct); try c.encode(meanPromptTokens, forKey: .meanPromptTokens)
        try c.encode(meanAnswerTokens, forKey: .meanAnswerTokens); try c.encode(secondsPerQuestion, forKey: .secondsPerQuestion)
        try c.encode(threads, forKey: .threads); try c.encode(adapter, forKey: .adapter)
    }
}
