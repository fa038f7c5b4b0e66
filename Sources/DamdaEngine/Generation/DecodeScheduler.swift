import Foundation


/// Interleaves many generations on one model: a worker thread round-robins one step (a prefill
/// slice or one decode token) of each active session, so every client makes progress. Requests
/// beyond `maxActive` wait in a bounded queue; beyond that, `submit` refuses (HTTP 429).
public final class DecodeScheduler: TextGenerating, @unchecked Sendable {
    public let model: any LanguageModel
    public let maxActive: Int
    public let maxQueue: Int
    /// Shared prompt prefixes across requests (nil: off).
    public let prefixCache: PrefixCache?
    /// Called on the worker thread when a session ends: (summary, cancelled by its client).
    public var onFinish: @Sendable (GenerationSummary, Bool) -> Void = { _, _ in }

    final class Job: @unchecked Sendable {
        let session: GenerationSession
        let continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation
        let cancelled = CancelFlag()
        init(session: GenerationSession, continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation) {
            self.session = session; self.continuation = continuation
        }
    }

    private let condition = NSCondition()
    private var waiting: [Job] = []
    private var active: [Job] = []

    public init(model: any LanguageModel, maxActive: Int = 4, maxQueue: Int = 16, prefixCache: PrefixCache? = nil) {
        self.model = model
        self.prefixCache = prefixCache
        self.maxActive = max(1, maxActive)
        self.maxQueue = max(0, maxQueue)
        let worker = Thread { [weak self] in self?.run() }
        worker.stackSize = 8 << 20
        worker.name = "damda-decode"
        worker.start()
    }

    public var queueDepth: Int { condition.withLock { waiting.count } }
    public var activeCount: Int { condition.withLock { active.count } }
    public var isFull: Bool { condition.withLock { active.count >= maxActive && waiting.count >= maxQueue } }

    /// Validates and enqueues; throws engine errors (context overflow, empty prompt) or `queueFull`.
    public func submit(_ req: GenerationRequest) throws -> AsyncThrowingStream<GenerationEvent, Error> {
        let session = try GenerationSession(model: model, request: req, prefixCache: prefixCache)
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
        let job = Job(session: session, continuation: continuation)
        continuation.onTermination = { [weak job] _ in job?.cancelled.set() }
        try condition.withLock {
            guard active.count < maxActive || waiting.count < maxQueue else { throw SchedulerError.queueFull(capacity: maxQueue) }
            waiting.append(job)
            condition.signal()
        }
        return stream
    }

    public func stream(_ req: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        do { return try submit(req) } catch { return AsyncThrowingStream { $0.finish(throwing: error) } }
    }

    private func run() {
        while true {
            condition.lock()
            while waiting.isEmpty && active.isEmpty { condition.wait() }
            while active.count < maxActive && !waiting.isEmpty { active.append(waiting.removeFirst()) }
            let round = active
            condition.unlock()
            var finished: [ObjectIdentifier] = []
            for job in round {
                if job.cancelled.isSet {
                    job.session.cancel()
                    onFinish(job.session.summary, true)
                    job.continuation.finish()
                    finished.append(ObjectIdentifier(job))
                    continue
                }
                do {
                    let piece = try job.session.step()
                    if !piece.isEmpty { job.continuation.yield(.text(piece)) }
                    if job.session.isFinished {
                        onFinish(job.session.summary, false)
                        job.continuation.yield(.done(job.session.summary))
                        job.continuation.finish()
                        finished.append(ObjectIdentifier(job))
                    }
                } catch {
                    job.continuation.finish(throwing: error)
                    finished.append(ObjectIdentifier(job))
                }
            }
            if !finished.isEmpty {
                condition.withLock { active.removeAll { finished.contains(ObjectIdentifier($0)) } }
            }
        }
    }
}
