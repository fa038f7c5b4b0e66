import DamdaAssistant
import DamdaEngine
import DamdaRetrieval
import Foundation

/// What every route shares: the model behind its scheduler, the index and its lock, the assistant.
public final class ServerState: @unchecked Sendable {
    public let model: any LanguageModel
    public let modelName: String
    public let scheduler: DecodeScheduler
    public let assistant: Assistant
    public let index: SearchIndex
    public let chatTemplate: ChatTemplate
    public let metrics = ServerMetrics()
    public let maxBodyBytes: Int
    /// Answers served and their ratings: in the index's own store when it keeps feedback (SQLite),
    /// else in `feedback.sqlite` beside the index (a PostgreSQL-backed index).
    public let feedback: any FeedbackStore
    /// Surveys the server answers itself from configurations (nil: only uploaded answer files).
    public var panelJobs: PanelJobs?
    /// Blind A/B surveys, in the same database as the feedback (PostgreSQL for a PostgreSQL-backed index).
    public let panel: PanelStore
    /// Answers served before, in the index's store, PostgreSQL included (nil when the cache is off).
    public let cache: AnswerCache?
    /// Mask personal data in uploaded documents before they are indexed (`--redact-pii`).
    public var redactDocuments = false
    let started = Int(Date().timeIntervalSince1970)
    var embedder: (any Embedder)? { index.embedder }

    public init(model: any LanguageModel, modelName: String, adapterName: String? = nil, index: SearchIndex, config: AssistantConfig, chatTemplate: ChatTemplate,
                maxBodyBytes: Int, maxActive: Int, maxQueue: Int, prefixCacheBytes: Int = 128 << 20,
                feedback: (any FeedbackStore)? = nil, panel: PanelStore? = nil,
                makeCache: (SearchIndex) throws -> AnswerCache = { try AnswerCache(beside: $0) }) throws {
        self.feedback = try feedback ?? SQLiteFeedbackStore(beside: index)
        self.panel = try panel ?? PanelStore(beside: index)
        let cache = config.cache.exact || config.cache.semantic ? try makeCache(index) : nil
        self.cache = cache
        self.model = model
        self.modelName = modelName
        self.index = index
        self.chatTemplate = chatTemplate
        self.maxBodyBytes = maxBodyBytes
        scheduler = DecodeScheduler(model: model, maxActive: maxActive, maxQueue: maxQueue,
                                    prefixCache: prefixCacheBytes > 0 ? PrefixCache(maxBytes: prefixCacheBytes) : nil)
        assistant = Assistant(index: index, generator: scheduler, config: config, modelName: modelName, adapterName: adapterName, cache: cache)
        let metrics = self.metrics
        cache?.onEvent = { metrics.record($0) }
        scheduler.onFinish = { summary, cancelled in
            metrics.promptTokens.increment(by: Int64(summary.promptTokens))
            metrics.generatedTokens.increment(by: Int64(summary.tokens.count))
            metrics.generations.increment()
            if summary.cachedPromptTokens > 0 {
                metrics.prefixCacheHits.increment()
                metrics.prefixCachedTokens.increment(by: Int64(summary.cachedPromptTokens))
            }
            if cancelled { metrics.cancelledGenerations.increment() }
        }
    }

    /// Enqueues a generation, turning engine and queue errors into API errors before the response starts.
    func startGeneration(_ req: GenerationRequest) async throws -> AsyncThrowingStream<GenerationEvent, Error> {
        do { return try scheduler.submit(req) } catch { throw APIError.from(error) }
    }

    /// Embeds off the event loop; the index lock keeps e5 runs and ingests from overlapping.
    func embed(_ texts: [String], with e: E5Embedder) async throws -> [[Float]] {
        try await withCheckedThrowingContinuation { cont in
            Thread.detachNewThread { [self] in
                let v = index.withLock { e.encoder.embed(texts) }
                cont.resume(returning: v)
            }
        }
    }

    /// Runs index work (ingest, delete, search) on a thread of its own under the index lock.
    func withIndex<T: Sendable>(_ body: @escaping @Sendable (SearchIndex) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            Thread.detachNewThread { [self] in
                cont.resume(with: Result { try index.withLock { try body(index) } })
            }
        }
    }
}
