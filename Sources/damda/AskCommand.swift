import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaGuardrails
import DamdaModelIO
import DamdaPostgres
import DamdaRetrieval
import Foundation

/// Flags shared by ask, chat, serve and bench answers.
struct AssistantOptions: ParsableArguments {
    @Option(help: "Chunks to retrieve.") var k = AssistantConfig().k
    @Option(help: "Retrieval mode: bm25, vector or hybrid (default: hybrid when the index has embeddings).") var mode: String?
    @Option(help: "Token budget for the whole prompt (Gemma 3 attends within 512 tokens on most layers).") var budgetTokens = 512
    @Option(help: "How the budget is shared among the chunks: chunks (whole chunks in rank order) or sentences (each document's best sentence first, then more around them).")
    var context = AssistantConfig().contextPacking.rawValue
    @Option(help: "Maximum answer tokens.") var maxTokens = 128
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0
    @Option(help: "Nucleus sampling cutoff.") var topP: Float = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(help: "Refuse without calling the model when no chunk's relevance (IDF-weighted share of question terms, 0–1) reaches this.")
    var minRelevance: Float = 0.3
    @Option(help: "Also count a chunk as relevant when its embedding's cosine with the question reaches this (vector and hybrid search; 0: lexical relevance alone).")
    var minSimilarity: Float = 0.88
    @Option(help: "auto: the refusal probe's threshold when one is used, else the adapter's calibrated first-token threshold (its assistant.json), else argmax; off: argmax (no probe either); or a probability 0–1: the model refuses only when the probe's probability (or its refusal's first token's) is at least this.")
    var refusalThreshold = "auto"
    @Option(help: "auto: the adapter's refusal probe (refusal-probe.json in its folder, fitted by `damda adapter calibrate`) when it has one; off: decide by the refusal's first-token probability; or a probe file.")
    var refusalProbe = "auto"
    @Option(help: "Personal data in questions: mask (the model and logs see [주민등록번호]), block (refuse, saying why) or allow.")
    var pii = "mask"
    @Option(help: "Prompt injection in questions: flag (noted in the answer's guard metadata) or block (refuse, saying why).")
    var injection = "flag"
    @Option(help: "An answer that shares no content with its sources: flag (marked unsupported, the sources' sentences shown) or refuse (answer \"답변을 찾을 수 없습니다.\" with the reason).")
    var grounding = "flag"
    @Option(help: "A retrieved chunk that addresses the model (indirect prompt injection): flag (noted in the guard metadata) or drop (left out of the prompt).")
    var chunkInjection = "flag"
    @Option(help: "auto: the shipped prompt-injection classifier (models/guard/injection-classifier.json) when the model is the one it reads (the default model); off; or a classifier file from `damda guard train`.")
    var injectionClassifier = "auto"
    @Flag(help: "Turn the input and output guards off (personal data and injection are neither masked nor scored).")
    var noGuardrails = false
    @Flag(help: "No retrieval: the model answers from the question alone (an evaluation's no-context row).")
    var noContext = false
    @Flag(help: "Do not read or write the answer cache (on by default: the same question with the same settings is answered from the index's store).")
    var noCache = false
    @Flag(help: "Also answer reworded questions from the cache: e5 cosine at least --semantic-threshold and the same numbers, negations and key terms.")
    var semanticCache = false
    @Option(help: "Cosine a reworded question needs for a semantic cache hit.") var semanticThreshold: Float = AnswerCacheSettings().semanticThreshold
    @Option(help: "Days a cached answer is served.") var cacheTtlDays: Double = 7
    @Option(help: "Megabytes the answer cache may take before least recently used answers go.") var cacheMegabytes = 64
    @Option(help: "Prompt template file with {question} and {context} (default: the Korean RAG format).") var template: String?
    @Flag(help: "Wrap the prompt in the model's chat template (default: raw completion, the RAG training format).") var chat = false
    @Option(help: "Follow-up rewriting before retrieval: model, concatenate or off.") var rewrite = "model"
    @Option(help: "Only chunks whose source starts with this (repeatable).") var source: [String] = []
    @Option(help: "Only chunks of documents with this tag (repeatable).") var tag: [String] = []

    func config(model: any LanguageModel, adapterDirectory: String?) throws -> AssistantConfig {
        var c = AssistantConfig()
        try RefusalSettings.apply(probe: refusalProbe, threshold: refusalThreshold, adapterDirectory: adapterDirectory, model: model, to: &c)
        c.k = k
        if let m = mode {
            guard let v = SearchMode(rawValue: m) else { throw ValidationError("mode must be bm25, vector or hybrid") }
            c.mode = v
        }
        c.budgetTokens = budgetTokens
        c.contextPacking = try contextPacking(context)
        c.maxAnswerTokens = maxTokens
        c.sampling = SamplingParameters(temperature: temperature, topP: topP, seed: seed)
        c.minRelevance = minRelevance
        c.minSimilarity = minSimilarity > 0 ? minSimilarity : nil
        c.useRetrieval = !noContext
        if let t = template { c.template = try PromptTemplate(file: t) }
        if chat { c.chatTemplate = model.chatTemplate }
        guard let r = RewriteMode(rawValue: rewrite) else { throw ValidationError("rewrite must be model, concatenate or off") }
        c.rewrite = r
        c.filter = SearchFilter(sources: source, tags: tag)
        guard let p = GuardPolicy.PIIAction(rawValue: pii) else { throw ValidationError("--pii must be mask, block or allow") }
        guard let i = GuardPolicy.InjectionAction(rawValue: injection) else { throw ValidationError("--injection must be flag or block") }
        guard let g = GuardPolicy.GroundingAction(rawValue: grounding) else { throw ValidationError("--grounding must be flag or refuse") }
        guard let ci = GuardPolicy.ChunkInjectionAction(rawValue: chunkInjection) else { throw ValidationError("--chunk-injection must be flag or drop") }
        c.guardrails.questionPII = p
        c.guardrails.injection = i
        c.guardrails.grounding = g
        c.guardrails.chunkInjection = ci
        c.guardrails.injectionClassifier = try resolveInjectionClassifier(injectionClassifier, model: model)
        c.guardrails.enabled = !noGuardrails
        guard (0...1).contains(semanticThreshold) else { throw ValidationError("--semantic-threshold must be in 0…1") }
        guard cacheTtlDays > 0, cacheMegabytes > 0 else { throw ValidationError("--cache-ttl-days and --cache-megabytes must be positive") }
        c.cache.exact = !noCache
        c.cache.semantic = semanticCache && !noCache
        c.cache.semanticThreshold = semanticThreshold
        c.cache.ttl = cacheTtlDays * 86_400
        c.cache.maxBytes = cacheMegabytes << 20
        return c
    }
}

/// The injection classifier an `--injection-classifier` option names for `model`: nil for `off`;
/// for `auto` the shipped one when it reads this model (another model runs the patterns alone);
/// otherwise the file, which must read this model.
func resolveInjectionClassifier(_ option: String, model: any LanguageModel) throws -> InjectionClassifier? {
    switch option {
    case "off": return nil
    case "auto":
        let shipped = try ShippedFiles.locate(InjectionClassifier.shippedPath).map { try InjectionClassifier.read($0) }
        return shipped.flatMap { InjectionProbe(features: $0.features).mismatch(with: model) == nil ? $0 : nil }
    default:
        let chosen = try InjectionClassifier.read(option)
        if let why = InjectionProbe(features: chosen.features).mismatch(with: model) {
            throw ValidationError("--injection-classifier \(option) cannot read this model: \(why)")
        }
        return chosen
    }
}

/// `--context` as ask and `adapter calibrate` take it.
func contextPacking(_ option: String) throws -> ContextPacking {
    guard let packing = ContextPacking(rawValue: option) else { throw ValidationError("--context must be sentences or chunks") }
    return packing
}

/// Loads the index, the model and the assistant the way every assistant command does.
/// `generator` turns the model into what the assistant calls (default: one sequence at a time).
func makeAssistant(indexOptions: IndexOptions, modelOptions: ModelOptions, options: AssistantOptions,
                   generator: (any LanguageModel) -> any TextGenerating = { Generator(model: $0, prefixCache: PrefixCache()) }) throws -> Assistant {
    let (model, _, name, adapterName) = try modelOptions.load(useDefaultAdapter: true)
    let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: modelOptions.threads))
    if idx.chunkCount == 0 {
        FileHandle.standardError.write("note: the index at \(indexOptions.index) is empty: ingest documents first (`damda ingest PATH --index \(indexOptions.index)`)\n".data(using: .utf8)!)
    }
    return Assistant(index: idx, generator: generator(model),
                     config: try options.config(model: model, adapterDirectory: try modelOptions.assistantAdapterDirectory()), modelName: name,
                     adapterName: adapterName, cache: options.noCache ? nil : try answerCache(beside: idx))
}

func jsonString<T: Encodable>(_ value: T) -> String {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try! enc.encode(value), as: UTF8.self)
}

/// Streams one answer to stdout, then its sources.
func printAnswer(_ stream: AsyncThrowingStream<AssistantEvent, Error>, json: Bool) async throws -> AssistantAnswer? {
    var streamed = ""
    for try await event in stream {
        switch event {
        case .sources: break
        case let .text(piece):
            streamed += piece
            if !json { print(piece, terminator: ""); fflush(nil) }
        case let .done(a):
            if json { print(jsonString(a)); return a }
            print()
            if a.refused, a.refusalReason == "no_documents" {
                print("(검색할 문서가 없습니다: 색인이 비어 있습니다. `damda ingest`로 문서를 먼저 넣으세요. 모델은 호출하지 않았습니다.)")
            } else if a.refused, a.refusalReason == "no_relevant_chunks" {
                print("(관련 문서를 찾지 못했습니다: 가장 관련 있는 조각도 최소 관련도 기준에 미치지 못했습니다. 모델은 호출하지 않았습니다.)")
            } else if a.echoOnly {
                print("(모델이 답변 대신 템플릿을 반복했습니다. 아래 출처의 문장이 답입니다.)")
            } else if a.refusalReason == "unsupported" {
                print("(모델의 답변이 출처에서 확인되지 않아 보여드리지 않습니다. 아래 출처의 문장을 확인하세요.)")
            } else if a.unsupported {
                print("(이 답변의 내용은 출처에서 확인되지 않습니다. 아래 출처의 문장을 확인하세요.)")
            } else if a.answer != streamed.trimmingCharacters(in: .whitespacesAndNewlines) {
                print("정리된 답변: \(a.answer)")
            }
            if !a.citations.isEmpty { print("\n출처:") }
            for c in a.citations {
                print(String(format: "[%d] %@  (점수 %.3f, 관련도 %.2f)%@", c.n, c.location, c.score, c.relevance, c.used ? "  ✓ 답변 근거" : ""))
                print("    » " + c.bestSentence)
            }
            let s = a.timings
            if let hit = a.cache { print("(캐시된 답변: \(hit == .exact ? "같은 질문" : "같은 뜻의 질문")에 대한 이전 답변이며, 출처 문서는 그 뒤 바뀌지 않았습니다.)") }
            fflush(nil)
            FileHandle.standardError.write(String(format: "[%d chunks, %d/%d prompt tokens, %d answer tokens; retrieval %.0f ms, generation %.0f ms]\n",
                                                  a.context.chunksUsed, a.context.promptTokens, a.context.budgetTokens,
                                                  a.usage.completionTokens, s.retrievalMs, s.generationMs).data(using: .utf8)!)
            return a
        }
    }
    return nil
}

struct AskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ask", abstract: "Answer a question from an index, with cited sources.")
    @OptionGroup var indexOptions: IndexOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var options: AssistantOptions
    @Argument(help: "The question.") var question: String
    @Flag(help: "Print the answer as one JSON object.") var json = false

    func run() async throws {
        try await failing {
            let assistant = try makeAssistant(indexOptions: indexOptions, modelOptions: modelOptions, options: options)
            _ = try await printAnswer(assistant.ask(question), json: json)
        }
    }
}

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Interactive questions over an index; follow-ups are rewritten to stand alone (/reset, /quit).")
    @OptionGroup var indexOptions: IndexOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var options: AssistantOptions
    @Flag(help: "Print each answer as one JSON object.") var json = false

    func run() async throws {
        try await failing {
            let assistant = try makeAssistant(indexOptions: indexOptions, modelOptions: modelOptions, options: options)
            var history: [ChatMessage] = []
            let interactive = isatty(STDIN_FILENO) != 0
            while true {
                if interactive { FileHandle.standardOutput.write("\n질문> ".data(using: .utf8)!) }
                guard let line = readLine() else { break }
                let q = line.trimmingCharacters(in: .whitespaces)
                if q.isEmpty { continue }
                if q == "/quit" || q == "/exit" { break }
                if q == "/reset" { history = []; print("(대화를 지웠습니다)"); continue }
                guard let a = try await printAnswer(assistant.ask(q, history: history), json: json) else { continue }
                if !json && a.rewrite != "none" { FileHandle.standardError.write("[검색 질문: \(a.standaloneQuestion) (\(a.rewrite))]\n".data(using: .utf8)!) }
                history += [ChatMessage(role: "user", content: q), ChatMessage(role: "assistant", content: a.answer)]
            }
        }
    }
}
