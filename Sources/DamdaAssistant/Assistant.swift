import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaRetrieval
import DamdaTokenizer
import Foundation

public struct AssistantConfig: Sendable {
    /// Eight hits: with `.sentences` packing the prompt holds four or five documents on average,
    /// and a right document ranked sixth to eighth still has a chance.
    public var k = 8
    /// nil: hybrid when the index has embeddings, else BM25.
    public var mode: SearchMode?
    public var filter = SearchFilter()
    public var template = PromptTemplate.korean
    /// The whole prompt (instruction, question, chunks) stays within this many model tokens.
    public var budgetTokens = 512
    /// How the budget is shared among the retrieved chunks. Sentences, breadth first: on the
    /// natural easylaw questions the right document reached the prompt for 65% against 51% with
    /// whole chunks, and KorQuAD held-out F1 went 60.5 → 64.4 with the same refusal probe
    /// (docs/benchmarks.md).
    public var contextPacking = ContextPacking.sentences
    public var maxAnswerTokens = 128
    public var sampling = SamplingParameters.greedy
    /// A retrieved chunk is relevant when its lexical relevance (the IDF-weighted share of the
    /// question's terms it holds) reaches `minRelevance`, or its embedding's cosine with the
    /// question reaches `minSimilarity`; with no relevant chunk the assistant refuses without
    /// calling the model.
    public var minRelevance: Float = 0.3
    /// nil: lexical relevance alone decides. 0.88 (multilingual-e5-small's cosine) was chosen with
    /// `damda bench relevance` on the paraphrased easylaw questions in evals/: with 0.3 lexical it
    /// lets 96% of them reach the model (lexical alone: 32%) and still refuses 62% of off-domain
    /// questions before the model; KorQuAD questions reach the model as before (100 of 100).
    public var minSimilarity: Float? = 0.88
    /// false: no retrieval, the model answers from the question alone (the "no context" rows of
    /// an evaluation; the prompt template gets an empty context).
    public var useRetrieval = true
    /// The model refuses only when its refusal's first token has at least this probability at the
    /// first step (otherwise that token is excluded and it answers); nil: greedy argmax decides.
    /// Chosen with `scripts/refusal-threshold.py` on questions of the training articles: see the
    /// model card of the default adapter.
    public var refusalThreshold: Float?
    /// Refusals read from the model's state at the prompt's end (`RefusalProbe`), with
    /// `refusalThreshold` applied to the probe's probability instead of the first token's.
    public var refusalProbe: RefusalProbe?
    /// The first-token threshold for answers without sources (`useRetrieval` off), where a probe,
    /// fitted on prompts with sources, does not apply; nil: greedy argmax.
    public var refusalThresholdWithoutSources: Float?
    /// Hand back the residual stream after this layer at the prompt's end
    /// (`AssistantAnswer.promptState`): what `damda adapter calibrate` fits a probe on.
    public var promptStateLayer: Int?
    /// Personal data and prompt injection in questions and answers (the input and output guards).
    public var guardrails = GuardPolicy()
    public var rewrite = RewriteMode.model
    /// The answer cache's lookups, lifetime and size (used when the assistant has a cache).
    public var cache = AnswerCacheSettings()
    /// Whose cache entries a request may see: one tenant (API key) never gets another's cached answer.
    public var cacheScope = "local"
    /// Wrap the RAG prompt in this chat template as a user turn; nil: raw completion.
    public var chatTemplate: ChatTemplate?
    public init() {}
}

public struct ContextReport: Sendable, Codable {
    public var budgetTokens: Int
    public var promptTokens: Int
    public var chunksUsed: Int
    public var truncated: Bool
    enum CodingKeys: String, CodingKey {
        case budgetTokens = "budget_tokens", promptTokens = "prompt_tokens", chunksUsed = "chunks_used", truncated
    }
}

public struct Usage: Sendable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int { promptTokens + completionTokens }
    enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens" }
    public init(promptTokens: Int, completionTokens: Int) { self.promptTokens = promptTokens; self.completionTokens = completionTokens }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try c.decode(Int.self, forKey: .promptTokens)
        completionTokens = try c.decode(Int.self, forKey: .completionTokens)
    }
}

public struct Timings: Sendable, Codable {
    public var retrievalMs: Double
    public var generationMs: Double
    public var totalMs: Double
    enum CodingKeys: String, CodingKey { case retrievalMs = "retrieval_ms", generationMs = "generation_ms", totalMs = "total_ms" }
}

/// A cited answer, as the CLI prints it and the server returns it.
public struct AssistantAnswer: Sendable, Codable {
    public var id: String
    public var question: String
    public var standaloneQuestion: String
    public var rewrite: String
    public var answer: String
    /// The model's text before cleaning (empty when it was not called).
    public var rawAnswer: String
    public var refused: Bool
    /// "no_documents" (the index holds no chunk; model not called), "no_relevant_chunks" (none
    /// was relevant; model not called), "model" (the model said it cannot answer), "unsupported",
    /// or "guard_…" (an input guard refused the question).
    public var refusalReason: String?
    /// The model wrote only template text (`[질문]` …): the sources carry the answer.
    public var echoOnly: Bool
    /// The answer shares no content (syllable bigrams, numbers) with the chunks it was given:
    /// the reader is told so and shown the sources' best sentences.
    public var unsupported: Bool = false
    public var citations: [Citation]
    public var context: ContextReport
    public var usage: Usage
    public var timings: Timings
    public var model: String
    public var adapter: String?
    public var finishReason: String?
    /// With a refusal threshold: the probability the model gave its refusal at the first token,
    /// or the refusal probe's.
    public var refusalProbability: Float?
    /// With `AssistantConfig.promptStateLayer`: the model's state at the prompt's end (not serialized).
    public var promptState: [Float]? = nil
    /// What the input and output guards found and did (nil with guardrails off).
    public var guardDecision: GuardDecision?
    /// Served from the answer cache ("exact" or "semantic"), nil when the pipeline ran.
    public var cache: CacheHit?

    enum CodingKeys: String, CodingKey {
        case id, question, rewrite, answer, refused, citations, context, usage, timings, model, adapter
        case standaloneQuestion = "standalone_question", rawAnswer = "raw_answer", refusalReason = "refusal_reason"
        case echoOnly = "echo_only", finishReason = "finish_reason", unsupported, refusalProbability = "refusal_probability"
        case guardDecision = "guard", cache
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(question, forKey: .question)
        try c.encode(standaloneQuestion, forKey: .standaloneQuestion); try c.encode(rewrite, forKey: .rewrite)
        try c.encode(answer, forKey: .answer); try c.encode(rawAnswer, forKey: .rawAnswer)
        try c.encode(refused, forKey: .refused); try c.encode(refusalReason, forKey: .refusalReason)   // null, not absent
        try c.encode(echoOnly, forKey: .echoOnly); try c.encode(unsupported, forKey: .unsupported)
        try c.encode(citations, forKey: .citations)
        try c.encode(context, forKey: .context); try c.encode(usage, forKey: .usage); try c.encode(timings, forKey: .timings)
        try c.encode(model, forKey: .model); try c.encode(adapter, forKey: .adapter); try c.encode(finishReason, forKey: .finishReason)
        try c.encodeIfPresent(refusalProbability, forKey: .refusalProbability)
        try c.encodeIfPresent(guardDecision, forKey: .guardDecision)
        try c.encode(cache, forKey: .cache)
    }
}

public enum AssistantEvent: Sendable {
    /// The chunks the model is given, before it starts writing.
    case sources([Citation])
    case text(String)
    case done(AssistantAnswer)
}

/// Input guard → cache lookup → rewrite → retrieve → build the prompt within the budget
/// (DamdaDatasets' `RAGPrompt`, the encoder training uses) → generate → clean → output guard →
/// check grounding → cite → cache store.
public final class Assistant: @unchecked Sendable {
    public let index: SearchIndex
    public let generator: any TextGenerating
    public var config: AssistantConfig
    public let modelName: String
    public let adapterName: String?
    /// Answers served before (nil: every question runs the whole pipeline).
    public let cache: AnswerCache?

    public init(index: SearchIndex, generator: any TextGenerating, config: AssistantConfig = AssistantConfig(),
                modelName: String, adapterName: String? = nil, cache: AnswerCache? = nil) {
        self.index = index; self.generator = generator; self.config = config
        self.modelName = modelName; self.adapterName = adapterName; self.cache = cache
    }

    public static func newAnswerID() -> String {
        "ans_" + (0..<12).map { _ in String("0123456789abcdef".randomElement()!) }.joined()
    }

    /// The RAG prompt encoder for a configuration (the same one training uses).
    func prompt(_ cfg: AssistantConfig) -> RAGPrompt {
        RAGPrompt(tokenizer: generator.model.tokenizer, template: cfg.template, chat: cfg.chatTemplate)
    }

    public func ask(_ question: String, history: [ChatMessage] = [], config override: AssistantConfig? = nil) -> AsyncThrowingStream<AssistantEvent, Error> {
        let cfg = override ?? config
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let answer = try await self.answer(question, history: history, config: cfg) { continuation.yield($0) }
                    continuation.yield(.done(answer))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The whole answer; `emit` sees sources and text pieces as they come.
    public func answer(_ question: String, history: [ChatMessage] = [], config override: AssistantConfig? = nil,
                       emit: (AssistantEvent) -> Void = { _ in }) async throws -> AssistantAnswer {
        let cfg = override ?? config
        var q = question.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !q.isEmpty else { throw AssistantError.emptyQuestion }
        let clock = ContinuousClock()
        let start = clock.now
        // The input guard runs first: nothing after it sees personal data it masked.
        var guardDecision: GuardDecision?
        var history = history
        if cfg.guardrails.enabled {
            let inputGuard = InputGuard(policy: cfg.guardrails)
            var (guarded, decision) = inputGuard.check(q)
            // The classifier reads the model's own states for the question, taken between generations.
            if let classifier = cfg.guardrails.injectionClassifier {
                let probe = InjectionProbe(features: classifier.features)
                if probe.mismatch(with: generator.model) == nil {
                    let text = guarded
                    inputGuard.classify(&decision, vector: try await generator.withModel { try probe.vector(text, model: $0) })
                }
            }
            q = guarded
            guardDecision = decision
            history = history.map { ChatMessage(role: $0.role, content: inputGuard.check($0.content).question) }
            if let reason = decision.blocked {
                let text = InputGuard.refusal(for: reason, decision: decision)
                emit(.text(text))
                var blocked = AssistantAnswer(
                    id: Self.newAnswerID(), question: q, standaloneQuestion: q, rewrite: "none", answer: text, rawAnswer: "", refused: true,
                    refusalReason: "guard_" + reason, echoOnly: false, citations: [],
                    context: ContextReport(budgetTokens: cfg.budgetTokens, promptTokens: 0, chunksUsed: 0, truncated: false),
                    usage: Usage(promptTokens: 0, completionTokens: 0),
                    timings: Timings(retrievalMs: 0, generationMs: 0, totalMs: (clock.now - start).milliseconds), model: modelName,
                    adapter: adapterName, finishReason: nil)
                blocked.guardDecision = decision
                return blocked
            }
        }
        let lookup = AnswerCacheLookup(cache: cache, index: index, config: cfg, history: history, guardDecision: guardDecision,
                                       model: modelName, adapter: adapterName)
        let prepared = try lookup.prepare(question: q)
        if let prepared, let hit = lookup.find(prepared) {
            var a = hit
            a.id = Self.newAnswerID()
            a.question = q
            a.standaloneQuestion = q
            a.guardDecision = guardDecision
            a.timings = Timings(retrievalMs: 0, generationMs: 0, totalMs: (clock.now - start).milliseconds)
            if !a.citations.isEmpty { emit(.sources(a.citations)) }
            emit(.text(a.answer))
            return a
        }
        let answer = try await pipeline(q, history: history, config: cfg, guardDecision: guardDecision, queryVector: prepared?.embedding,
                                        start: start, emit: emit)
        if let prepared { lookup.store(answer, prepared: prepared) }
        return answer
    }

    /// Rewrite → retrieve → build → generate → output guard → check → cite: everything after the
    /// input guard and the cache lookup.
    func pipeline(_ q: String, history: [ChatMessage], config cfg: AssistantConfig, guardDecision: GuardDecision?,
                  queryVector: [Float]?, start: ContinuousClock.Instant, emit: (AssistantEvent) -> Void) async throws -> AssistantAnswer {
        let clock = ContinuousClock()
        var guardDecision = guardDecision
        let outputGuard = OutputGuard(policy: cfg.guardrails)
        let rewrite = try await QueryRewriter(mode: cfg.rewrite).rewrite(q, history: history, generator: generator)
        let retrievalStart = clock.now
        if !cfg.useRetrieval {
            var a = try await answerWithoutContext(q, rewrite: rewrite, config: cfg, start: start, emit: emit)
            guardDecision?.answerPII = a.guardDecision?.answerPII ?? []
            a.guardDecision = guardDecision
            return a
        }
        // A mask label ("[주민등록번호]") is not a topic: it would only lower every chunk's relevance.
        let query = InputGuard.withoutMaskLabels(rewrite.question)
        // The question's vector (computed for the classifier or the semantic cache) fits only the same text.
        let hits = try index.search(query, k: cfg.k, mode: cfg.mode ?? (index.hasEmbeddings && index.embedder != nil ? .hybrid : .bm25),
                                    filter: cfg.filter, queryVector: query == q ? queryVector : nil)
        var relevant = hits.filter { Self.isRelevant($0, config: cfg) }
        // Indirect injection: a chunk that addresses the model is noted, or left out of the prompt.
        if cfg.guardrails.enabled {
            let scan = ChunkInjectionScan(action: cfg.guardrails.chunkInjection)
            let (kept, flagged) = scan.filter(relevant)
            relevant = kept
            guardDecision?.chunkInjection = flagged
        }
        let prompt = prompt(cfg)
        var builder = ContextBuilder(template: cfg.template, budgetTokens: cfg.budgetTokens)
        builder.packing = cfg.contextPacking
        // Each chunk's sentences and best sentence, found once: the budget trim and the citation both use them.
        var grounding: [String: (sentences: [String], best: Int)] = [:]
        for hit in relevant {
            let sentences = SentenceSplitter.split(hit.chunk.text)
            grounding[hit.chunk.id] = (sentences, hits.terms.bestSentence(sentences))
        }
        let (promptText, entries) = builder.build(
            question: q, hits: relevant, count: { prompt.encode($0).count },
            bestSentence: { hit, units in
                // The chunk's own sentences were scored above; clauses of long ones are scored here.
                if let g = grounding[hit.chunk.id], g.sentences == units { return g.best }
                return hits.terms.bestSentence(units)
            })
        let retrievalMs = (clock.now - retrievalStart).milliseconds
        var citations = entries.map { e -> Citation in
            let g = grounding[e.hit.chunk.id]
            let best = g.map { $0.sentences.isEmpty ? "" : $0.sentences[$0.best] } ?? ""
            return Citation(n: e.number, hit: e.hit, text: e.text, bestSentence: best)
        }
        let ids = prompt.encode(promptText)
        let context = ContextReport(budgetTokens: cfg.budgetTokens, promptTokens: entries.isEmpty ? 0 : ids.count,
                                    chunksUsed: entries.count, truncated: entries.contains { $0.truncated })
        var result = AssistantAnswer(
            id: Self.newAnswerID(), question: q, standaloneQuestion: rewrite.question, rewrite: rewrite.method,
            answer: PromptTemplate.refusal, rawAnswer: "", refused: true,
            // An empty index is a set-up problem, not a question the documents miss: said apart.
            refusalReason: index.chunkCount == 0 ? "no_documents" : "no_relevant_chunks", echoOnly: false,
            citations: citations, context: context, usage: Usage(promptTokens: 0, completionTokens: 0),
            timings: Timings(retrievalMs: retrievalMs, generationMs: 0, totalMs: 0), model: modelName, adapter: adapterName, finishReason: nil)
        result.guardDecision = guardDecision
        guard !entries.isEmpty else {
            emit(.text(PromptTemplate.refusal))
            result.timings.totalMs = (clock.now - start).milliseconds
            return result
        }
        emit(.sources(citations))
        let req = Self.request(ids, prompt: prompt, config: cfg)
        let genStart = clock.now
        var summary: GenerationSummary?
        // Stream the cleaned answer, not the raw text: a template echo never reaches the reader.
        // With grounding policy `refuse` nothing streams until the answer is checked.
        let holdUntilChecked = cfg.guardrails.enabled && cfg.guardrails.grounding == .refuse
        let cleaner = AnswerCleaner(markers: cfg.template.markers, question: q)
        var raw = "", sent = ""
        for try await event in generator.stream(req) {
            try Task.checkCancellation()
            switch event {
            case let .text(piece):
                raw += piece
                var c = cleaner.clean(raw)
                // Hold back what may be the start of a marker ("[내").
                if let open = c.lastIndex(of: "["), c.distance(from: open, to: c.endIndex) <= 12 { c = String(c[..<open]) }
                c = outputGuard.streamable(c)
                if !holdUntilChecked, c.count > sent.count, c.hasPrefix(sent) { emit(.text(String(c.dropFirst(sent.count)))); sent = c }
            case let .done(s): summary = s
            }
        }
        guard let s = summary else { throw CancellationError() }
        let (cleaned, maskedInAnswer) = outputGuard.check(cleaner.clean(s.text))
        if !holdUntilChecked, cleaned.count > sent.count, cleaned.hasPrefix(sent) { emit(.text(String(cleaned.dropFirst(sent.count)))) }
        let modelRefused = AnswerCleaner.isRefusal(cleaned)
        result.guardDecision?.answerPII = maskedInAnswer
        result.rawAnswer = outputGuard.check(s.text).answer
        result.answer = modelRefused ? PromptTemplate.refusal : cleaned
        result.refused = modelRefused
        result.refusalReason = modelRefused ? "model" : nil
        result.echoOnly = cleaned.isEmpty
        result.finishReason = s.finishReason.rawValue
        result.refusalProbability = s.firstTokenGateProbability
        result.promptState = s.promptState
        if !modelRefused && !cleaned.isEmpty {
            for i in citations.indices {
                citations[i].used = Grounding.isUsed(answer: cleaned, number: citations[i].n, chunkText: citations[i].text, terms: hits.terms)
            }
            let check = outputGuard.grounding(of: cleaned, sources: citations.map(\.text))
            result.unsupported = check.support == 0
            if cfg.guardrails.enabled { result.guardDecision?.grounding = check }
            if check.withheld {
                result.answer = PromptTemplate.refusal
                result.refused = true
                result.refusalReason = "unsupported"
            }
        }
        if holdUntilChecked { emit(.text(result.answer)) }
        result.citations = citations
        result.usage = Usage(promptTokens: s.promptTokens, completionTokens: s.tokens.count)
        result.timings.generationMs = (clock.now - genStart).milliseconds
        result.timings.totalMs = (clock.now - start).milliseconds
        return result
    }

    /// The answer's generation: stops at the template's markers (and the chat turn's end).
    static func request(_ ids: [Int32], prompt: RAGPrompt, config cfg: AssistantConfig) -> GenerationRequest {
        var req = GenerationRequest(prompt: ids, maxTokens: cfg.maxAnswerTokens, sampling: cfg.sampling, stop: prompt.stops)
        req.stopsSkipLeading = true
        if let t = cfg.refusalThreshold { req.firstTokenGate = FirstTokenGate(tokens: prompt.refusalFirstTokens, threshold: t, probe: cfg.refusalProbe) }
        req.promptStateLayer = cfg.promptStateLayer
        return req
    }

    /// Lexical coverage or, where the search embedded the question, meaning.
    public static func isRelevant(_ hit: SearchHit, config: AssistantConfig) -> Bool {
        if hit.relevance >= config.minRelevance { return true }
        if let t = config.minSimilarity, let s = hit.similarity, s >= t { return true }
        return false
    }

    /// The model alone: the template with an empty context, no sources.
    func answerWithoutContext(_ q: String, rewrite: Rewrite, config cfg: AssistantConfig, start: ContinuousClock.Instant,
                              emit: (AssistantEvent) -> Void) async throws -> AssistantAnswer {
        let clock = ContinuousClock()
        let prompt = prompt(cfg)
        let ids = prompt.encode(question: q, context: "")
        // A refusal probe was fitted on prompts with sources: without any it would only say
        // "nothing here"; the first-token threshold decides then.
        var gated = cfg
        if gated.refusalProbe != nil { (gated.refusalProbe, gated.refusalThreshold) = (nil, gated.refusalThresholdWithoutSources) }
        let req = Self.request(ids, prompt: prompt, config: gated)
        var summary: GenerationSummary?
        for try await event in generator.stream(req) {
            try Task.checkCancellation()
            if case let .done(s) = event { summary = s }
        }
        guard let s = summary else { throw CancellationError() }
        let outputGuard = OutputGuard(policy: cfg.guardrails)
        let (cleaned, maskedInAnswer) = outputGuard.check(AnswerCleaner(markers: cfg.template.markers, question: q).clean(s.text))
        let refused = AnswerCleaner.isRefusal(cleaned)
        emit(.text(refused ? PromptTemplate.refusal : cleaned))
        let total = (clock.now - start).milliseconds
        var answer = AssistantAnswer(
            id: Self.newAnswerID(), question: q, standaloneQuestion: rewrite.question, rewrite: rewrite.method,
            answer: refused ? PromptTemplate.refusal : cleaned, rawAnswer: outputGuard.check(s.text).answer, refused: refused, refusalReason: refused ? "model" : nil,
            echoOnly: cleaned.isEmpty, citations: [],
            context: ContextReport(budgetTokens: cfg.budgetTokens, promptTokens: ids.count, chunksUsed: 0, truncated: false),
            usage: Usage(promptTokens: s.promptTokens, completionTokens: s.tokens.count),
            timings: Timings(retrievalMs: 0, generationMs: total, totalMs: total), model: modelName, adapter: adapterName,
            finishReason: s.finishReason.rawValue)
        answer.refusalProbability = s.firstTokenGateProbability
        if cfg.guardrails.enabled { answer.guardDecision = GuardDecision(answerPII: maskedInAnswer) }
        return answer
    }
}
