import Foundation


/// Serves many generations on one model with continuous batching: each step of its worker thread
/// runs the next token of every session past its prompt in one batched decode step (the weights
/// are read once for all of them), then spends up to `prefillTokensPerStep` prompt tokens on the
/// sessions still prefilling, oldest first, in whole slices. Sessions join and leave the batch at
/// any step, and a long new prompt costs the running streams one slice per step, never the whole
/// prompt at once. Slices are cut by the prompt alone (`GenerationSession.prefillSlice`), not by
/// the load, and a batched step gives each sequence its lone step's result, so every session's
/// output is the one it gets running alone. Requests beyond `maxActive` wait in a bounded queue;
/// beyond that, `submit` refuses (HTTP 429).
public final class DecodeScheduler: TextGenerating, @unchecked Sendable {
    public let model: any LanguageModel
    public let maxActive: Int
    public let maxQueue: Int
    /// Shared prompt prefixes across requests (nil: off).
    public let prefixCache: PrefixCache?
    /// Called on the worker thread when a session ends: (summary, cancelled by its client).
    public var onFinish: @Sendable (GenerationSummary, Bool) -> Void = { _, _ in }
    /// Prompt tokens run per step beside the decode batch: one slice by default, so a running
    /// stream waits at most one slice's prefill between its tokens.
    public var prefillTokensPerStep = PrefixCache.slice
    /// Decode steps run and tokens they decoded (their ratio is the mean batch size), and the
    /// largest batch so far: for metrics.
    public var decodeStats: (steps: Int, tokens: Int, largestBatch: Int) { condition.withLock { (steps, decoded, largest) } }
    private var steps = 0, decoded = 0, largest = 0

    final class Job: @unchecked Sendable {
        let session: GenerationSession
        let continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation
        let cancelled = CancelFlag()
        init(session: GenerationSession, continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation) {
            self.session = session; self.continuation = continuation
        }
    }

    private let condition = NSCondition()
    /// Other reads of the model (`withModel`), run by the worker between steps.
    private var modelTasks: [@Sendable () -> Void] = []
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

    /// Runs `body` on the worker thread between two steps, so it never meets a batch on the model.
    public func withModel<T: Sendable>(_ body: @escaping @Sendable (any LanguageModel) throws -> T) async throws -> T {
        let model = self.model
        return try await withCheckedThrowingContinuation { continuation in
            condition.withLock {
                modelTasks.append { continuation.resume(with: Result { try body(model) }) }
                condition.signal()
            }
        }
    }

    private func run() {
        while true {
            condition.lock()
            while waiting.isEmpty && active.isEmpty && modelTasks.isEmpty { condition.wait() }
            while active.count < maxActive && !waiting.isEmpty { active.append(waiting.removeFirst()) }
            let round = active, tasks = modelTasks
            modelTasks.removeAll()
            condition.unlock()
            for task in tasks { task() }
            var finished: [ObjectIdentifier] = []
            func end(_ job: Job, cancelled: Bool) {
                onFinish(job.session.summary, cancelled)
                if !cancelled { job.continuation.yield(.done(job.session.summary)) }
                job.continuation.finish()
                finished.append(ObjectIdentifier(job))
            }
            func fail(_ job: Job, _ error: Error) {
                job.session.cancel()
                job.continuation.finish(throwing: error)
                finished.append(ObjectIdentifier(job))
            }
            var live: [Job] = []
            for job in round {
                if job.cancelled.isSet { job.session.cancel(); end(job, cancelled: true) } else { live.append(job) }
            }

            // A prompt the prefix cache holds whole needs no model step: its session joins this
            // step's batch instead of waiting for the next one.
            live = live.filter { job in
                guard job.session.restoreWholePrompt(), job.session.isFinished else { return true }
                end(job, cancelled: false)
                return false
            }

            // Decode: every session past its prompt takes its token, then one batched step runs them all.
            var slots: [DecodeSlot] = [], owners: [Job] = []
            for job in live where !job.session.isPrefilling {
                let (piece, slot) = job.session.takeNextToken()
                if !piece.isEmpty { job.continuation.yield(.text(piece)) }
                if let slot { slots.append(slot); owners.append(job) } else if job.session.isFinished { end(job, cancelled: false) }
            }
            if !slots.isEmpty {
                let t0 = ContinuousClock.now
                do {
                    let results = try model.decodeStep(slots)
                    for (job, result) in zip(owners, results) { job.session.receive(result) }
                } catch {
                    for job in owners { fail(job, error) }
                }
                let elapsed = ContinuousClock.now - t0
                for job in owners { job.session.addDecodeTime(elapsed) }
                condition.withLock { steps += 1; decoded += slots.count; largest = max(largest, slots.count) }
            }

            // Prefill: whole slices, oldest session first, within the step's token budget.
            var budget = prefillTokensPerStep
            for job in live where budget > 0 && job.session.isPrefilling {
                do {
                    budget -= max(try job.session.prefillStep(), 1)
                    if job.session.isFinished { end(job, cancelled: false) }
                } catch {
                    fail(job, error)
                }
            }
            if !finished.isEmpty {
                condition.withLock { active.removeAll { finished.contains(ObjectIdentifier($0)) } }
            }
        }
    }
}
