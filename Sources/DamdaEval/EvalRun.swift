import DamdaAssistant
import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaModelIO
import DamdaRetrieval
import Foundation

/// One question answered by one configuration, with every per-question metric (`--out` JSONL;
/// a rerun with `--resume` skips the rows already there).
public struct EvalRow: Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        /// The documents answer it.
        case answerable
        /// An answerable question asked with its own article hidden from retrieval.
        case unanswerable
        /// A question the documents do not answer at all.
        case offDomain = "off_domain"
    }

    public var config: String
    public var id: String
    public var kind: Kind
    public var question: String
    public var gold: [String]
    public var documentID: String?
    public var answer: String
    public var refused: Bool
    public var refusalReason: String?
    /// With a refusal threshold: the model's probability of its refusal at the first token.
    public var refusalProbability: Double? = nil
    /// Documents of the chunks in the prompt, in order.
    public var cited: [String]
    /// The prompt's chunk texts, for a judge's groundedness score (nil in rows written before they were kept).
    public var sources: [String]? = nil
    public var goldInPrompt: Bool
    /// A chunk text in the prompt holds a gold answer (answerable, with retrieval): the gold
    /// document may be in the prompt without the sentences that answer (nil in rows written before it was kept).
    public var goldPhraseInPrompt: Bool? = nil
    /// 1-based rank of the gold document in a top-10 search by the configuration's retrieval (nil: missed or no retrieval).
    public var goldRank: Int?
    public var exactMatch: Bool
    public var f1: Double
    public var chrF: Double
    public var rougeL: Double
    public var bleu: Double
    /// e5 cosine of the answer and the gold answer (nil without embeddings).
    public var similarity: Double?
    public var goldInAnswer: Bool
    /// Share of the answer's content (syllable bigrams, numbers) found in the prompt's chunks (answered, with chunks).
    public var grounding: Double?
    /// Share of the prompt's chunks that hold a gold answer (answerable, with chunks).
    public var citationPrecision: Double?
    public var unsupported: Bool
    public var promptTokens: Int
    public var answerTokens: Int
    public var generationSeconds: Double
    public var seconds: Double
    /// retrieval_miss, passage_miss, wrong_refusal, missed_refusal, wrong_span, unsupported.
    public var tags: [String]

    public var key: String { EvalRow.key(config: config, kind: kind, id: id) }
    public static func key(config: String, kind: Kind, id: String) -> String { "\(config)/\(kind.rawValue)/\(id)" }

    enum CodingKeys: String, CodingKey {
        case config, id, kind, question, gold, answer, refused, cited, sources, f1, bleu, similarity, grounding, unsupported, seconds, tags
        case documentID = "doc_id", refusalReason = "refusal_reason", refusalProbability = "refusal_probability", goldInPrompt = "gold_in_prompt", goldRank = "gold_rank"
        case goldPhraseInPrompt = "gold_phrase_in_prompt"
        case exactMatch = "em", chrF = "chrf", rougeL = "rouge_l", goldInAnswer = "gold_in_answer"
        case citationPrecision = "citation_precision", promptTokens = "prompt_tokens", answerTokens = "answer_tokens"
        case generationSeconds = "generation_seconds"
    }
}

/// `damda eval`: every configuration answers the same questions (answerable, the same questions
/// with their article hidden, off-domain), one configuration after another on one loaded model.
public struct EvalRunner {
    public let index: SearchIndex
    public let model: any LanguageModel
    public var modelName: String
    /// Puts a configuration's adapter on the model ("default", "none" or a folder) and returns its folder (nil: none).
    public var applyAdapter: (String) throws -> String?
    /// Answerable questions (with answers and doc_id) and off-domain ones (neither).
    public var questions: [EvalQuestion]
    /// Answerable questions asked again with their own article hidden.
    public var unanswerable = 0
    /// Rows of an earlier, interrupted run: not asked again.
    public var done: [String: EvalRow] = [:]
    public var progress = true

    public init(index: SearchIndex, model: any LanguageModel, modelName: String, questions: [EvalQuestion],
                applyAdapter: @escaping (String) throws -> String?) {
        self.index = index; self.model = model; self.modelName = modelName; self.questions = questions; self.applyAdapter = applyAdapter
    }

    struct Item { var question: EvalQuestion, kind: EvalRow.Kind, hidden: Set<String> }

    func items() throws -> [Item] {
        let answerable = questions.filter { $0.documentID != nil && !$0.answers.isEmpty }
        let allDocuments = try index.store.documents().map(\.id)
        var out = answerable.map { Item(question: $0, kind: .answerable, hidden: []) }
        if !answerable.isEmpty && unanswerable > 0 {
            for j in 0..<unanswerable {
                let q = answerable[j * answerable.count / unanswerable]
                out.append(Item(question: q, kind: .unanswerable, hidden: EvalQuestion.articleDocuments(of: q.documentID ?? "", among: allDocuments)))
            }
        }
        out += questions.filter { $0.documentID == nil }.map { Item(question: $0, kind: .offDomain, hidden: []) }
        return out
    }

    /// Rows in configuration order, then question order; `row` sees each new row as it is made.
    /// `overheadPct` is nil when every row came from an earlier run (nothing was timed).
    public func run(_ configs: [EvalConfiguration], row: (EvalRow) throws -> Void = { _ in }) async throws -> (rows: [EvalRow], overheadPct: Double?) {
        let work = try items()
        var rows: [EvalRow] = []
        let bar = progress ? ProgressBar(total: Int64(work.count * configs.count), label: "eval", unit: "answers") : nil
        let clock = ContinuousClock()
        var answerSeconds = 0.0, totalSeconds = 0.0
        for (ci, config) in configs.enumerated() {
            let pending = work.filter { done[EvalRow.key(config: config.name, kind: $0.kind, id: $0.question.id)] == nil }
            // With nothing left to ask, the adapter is not even loaded.
            let assistant = pending.isEmpty ? Assistant(index: index, generator: Generator(model: model), config: try assistantConfig(config),
                                                        modelName: modelName) : try assistant(for: config)
            for (qi, item) in work.enumerated() {
                defer { bar?.update(to: Int64(ci * work.count + qi + 1)) }
                if let old = done[EvalRow.key(config: config.name, kind: item.kind, id: item.question.id)] { rows.append(old); continue }
                let start = clock.now
                var cfg = assistant.config
                cfg.filter.excludedDocuments = item.hidden
                let a = try await assistant.answer(item.question.question, config: cfg)
                let answered = (clock.now - start).seconds
                let r = try score(a, item: item, config: config, assistantConfig: cfg, seconds: answered)
                answerSeconds += answered
                totalSeconds += (clock.now - start).seconds
                try row(r)
                rows.append(r)
            }
        }
        bar?.finish()
        return (rows, answerSeconds > 0 ? (totalSeconds - answerSeconds) / answerSeconds * 100 : nil)
    }

    /// Puts the configuration's adapter on the model and returns the assistant it configures.
    public func assistant(for config: EvalConfiguration) throws -> Assistant {
        let adapterDirectory = try applyAdapter(config.adapter)
        let adapterName = adapterDirectory.map { URL(fileURLWithPath: $0).standardizedFileURL.lastPathComponent }
        var assistantConfig = try assistantConfig(config)
        try RefusalSettings.apply(probe: config.refusalProbe, threshold: config.refusalThreshold, adapterDirectory: adapterDirectory,
                                  model: model, to: &assistantConfig)
        return Assistant(index: index, generator: Generator(model: model), config: assistantConfig, modelName: modelName, adapterName: adapterName)
    }

    func assistantConfig(_ c: EvalConfiguration) throws -> AssistantConfig {
        var cfg = AssistantConfig()
        cfg.k = c.k
        cfg.budgetTokens = c.budget
        cfg.contextPacking = c.context
        cfg.maxAnswerTokens = c.maxTokens
        if let t = c.template { cfg.template = try PromptTemplate(file: t) }
        if c.chat { cfg.chatTemplate = model.chatTemplate }
        cfg.useRetrieval = c.usesRetrieval
        cfg.mode = try searchMode(c)
        return cfg
    }

    func searchMode(_ c: EvalConfiguration) throws -> SearchMode? {
        switch c.retrieval {
        case "none": return nil
        case "auto": return index.hasEmbeddings && index.embedder != nil ? .hybrid : .bm25
        default:
            guard let m = SearchMode(rawValue: c.retrieval) else { throw EvalError.badConfiguration("\(c.name): retrieval \(c.retrieval)") }
            return m
        }
    }

    func score(_ a: AssistantAnswer, item: EvalItemAlias, config: EvalConfiguration, assistantConfig cfg: AssistantConfig,
               seconds: Double) throws -> EvalRow {
        let q = item.question
        let golds = item.kind == .answerable ? q.answers : []
        let s = AnswerMetrics.score(a.answer, golds: golds)
        let best = golds.max { AnswerMetrics.f1(a.answer, $0) < AnswerMetrics.f1(a.answer, $1) } ?? ""
        var row = EvalRow(
            config: config.name, id: q.id, kind: item.kind, question: q.question, gold: golds, documentID: q.documentID,
            answer: a.answer, refused: a.refused, refusalReason: a.refusalReason, cited: a.citations.map(\.documentID),
            sources: a.citations.map(\.text),
            goldInPrompt: item.kind == .answerable && a.citations.contains { $0.documentID == q.documentID }, goldRank: nil,
            exactMatch: s.em, f1: s.f1 * 100, chrF: golds.isEmpty ? 0 : TextOverlap.chrF(a.answer, best),
            rougeL: golds.isEmpty ? 0 : TextOverlap.rougeL(a.answer, best).f1 * 100,
            bleu: golds.isEmpty ? 0 : TextOverlap.sentenceBLEU(a.answer, best), similarity: nil,
            goldInAnswer: !a.refused && AnswerMetrics.containsAnswer(a.answer, golds: golds),
            grounding: nil, citationPrecision: nil, unsupported: a.unsupported,
            promptTokens: a.usage.promptTokens, answerTokens: a.usage.completionTokens,
            generationSeconds: a.timings.generationMs / 1000, seconds: seconds, tags: [])
        row.refusalProbability = a.refusalProbability.map { (Double($0) * 10000).rounded() / 10000 }
        if item.kind == .answerable, let mode = cfg.mode, let doc = q.documentID {
            var filter = cfg.filter
            filter.excludedDocuments = item.hidden
            let hits = try index.search(q.question, k: 10, mode: mode, filter: filter, perDocument: 1)
            row.goldRank = hits.firstIndex { $0.chunk.documentID == doc }.map { $0 + 1 }
        }
        if item.kind == .answerable, !a.answer.isEmpty, let e = index.embedder, index.hasEmbeddings {
            let v = index.withLock { e.embed(passages: [a.answer, best]) }
            row.similarity = Double(zip(v[0], v[1]).reduce(0) { $0 + $1.0 * $1.1 }) * 100
        }
        if !a.refused, !a.citations.isEmpty {
            row.grounding = Grounding.support(of: a.answer, in: a.citations.map(\.text)) * 100
        }
        if item.kind == .answerable, config.usesRetrieval {
            let holding = a.citations.filter { c in golds.contains { AnswerMetrics.containsAnswer(c.text, golds: [$0]) } }.count
            row.goldPhraseInPrompt = holding > 0
            if !a.citations.isEmpty { row.citationPrecision = Double(holding) / Double(a.citations.count) * 100 }
        }
        var tags: [String] = []
        if item.kind == .answerable {
            if config.usesRetrieval && !row.goldInPrompt { tags.append("retrieval_miss") }
            // The right document reached the prompt, but not the passage that answers.
            if row.goldInPrompt && row.goldPhraseInPrompt == false { tags.append("passage_miss") }
            if a.refused { tags.append("wrong_refusal") }
            if !a.refused && s.f1 < 0.5 && (row.goldInPrompt || !config.usesRetrieval) { tags.append("wrong_span") }
        } else if !a.refused {
            tags.append("missed_refusal")
        }
        if a.unsupported { tags.append("unsupported") }
        row.tags = tags
        return row
    }

    typealias EvalItemAlias = Item
}

/// The rows file of `damda eval` and `damda tune`: rows are appended as they are made; resuming
/// keeps the whole rows of an earlier run and rewrites the file without a torn last line.
public enum EvalRowLog {
    /// The rows kept (by key) and the count of unreadable lines dropped; nil when there is no file.
    public static func resume(_ path: String) throws -> (rows: [String: EvalRow], unreadable: Int)? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var rows: [String: EvalRow] = [:], bad = 0
        let decoder = JSONDecoder()
        for line in text.split(separator: "\n") {
            if let r = try? decoder.decode(EvalRow.self, from: Data(line.utf8)) { rows[r.key] = r } else { bad += 1 }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try rows.values.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined()
            .write(toFile: path, atomically: true, encoding: .utf8)
        return (rows, bad)
    }

    /// The file opened for appending (created empty unless `keep`).
    public static func open(_ path: String, keep: Bool) -> FileHandle? {
        if !keep { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else { return nil }
        handle.seekToEndOfFile()
        return handle
    }
}
