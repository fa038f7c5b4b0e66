import DamdaEngine
import DamdaServer
import DamdaTestSupport
import XCTest

/// The scheduler interleaves sessions on one model without changing what each one generates.
final class DecodeSchedulerTests: XCTestCase {
    func testInterleavedStreamsMatchSequentialGenerationAndAllProgress() async throws {
        let model = try loadModel(path: try defaultModelPath(), threads: 2)
        let prompts = ["대한민국의 수도는", "The capital of France is", "보험금 청구 서류는"]
        let requests = prompts.map { GenerationRequest(prompt: model.tokenizer.encode($0), maxTokens: 12) }
        let sequential = try requests.map { try Generator(model: model).generate($0).text }

        let scheduler = DecodeScheduler(model: model, maxActive: 4, maxQueue: 4)
        let log = EventLog()
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (i, r) in requests.enumerated() {
                let stream = try scheduler.submit(r)
                group.addTask {
                    var text = ""
                    for try await e in stream {
                        switch e {
                        case let .text(t): if text.isEmpty { log.add("first\(i)") }; text += t
                        case let .done(s): log.add("done\(i)"); XCTAssertEqual(s.text, text)
                        }
                    }
                    return (i, text)
                }
            }
            for try await (i, text) in group { XCTAssertEqual(text, sequential[i], "stream \(i)") }
        }
        let events = log.events
        let lastFirst = events.lastIndex { $0.hasPrefix("first") }!
        let firstDone = events.firstIndex { $0.hasPrefix("done") }!
        XCTAssertLessThan(lastFirst, firstDone, "every stream produced text before any finished: \(events)")
    }

    /// Eight clients at once, one of them sampling and one with a prompt of several prefill slices
    /// arriving while the others decode: the scheduler batches their decode steps, and each gets
    /// exactly the text its session gives running alone.
    func testBatchedStreamsMatchLoneSessions() async throws {
        let model = try loadModel(path: try defaultModelPath(), threads: 2)
        var requests = ["대한민국의 수도는", "The capital of France is", "보험금 청구 서류는", "1 + 1 =", "입원 1일당",
                        "Once upon a time", "def fib(n):"].map { GenerationRequest(prompt: model.tokenizer.encode($0), maxTokens: 16) }
        requests[1].sampling = SamplingParameters(temperature: 0.8, topK: 40, seed: 7)
        let long = String(repeating: "보험 약관은 피보험자의 권리와 의무를 정합니다. ", count: 30) + "요약하면"
        requests.append(GenerationRequest(prompt: model.tokenizer.encode(long), maxTokens: 16))
        XCTAssertGreaterThan(requests[7].prompt.count, 2 * PrefixCache.slice)
        let lone = try requests.map { r -> String in
            let session = try GenerationSession(model: model, request: r)
            var text = ""
            while !session.isFinished { text += try session.step() }
            return text
        }

        let scheduler = DecodeScheduler(model: model, maxActive: 8, maxQueue: 8)
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (i, r) in requests.enumerated() {
                if i == 7 { try await Task.sleep(for: .milliseconds(300)) }   // arrives while the others decode
                let stream = try scheduler.submit(r)
                group.addTask {
                    var text = ""
                    for try await e in stream { if case let .text(t) = e { text += t } }
                    return (i, text)
                }
            }
            for try await (i, text) in group { XCTAssertEqual(text, lone[i], "stream \(i)") }
        }
        let stats = scheduler.decodeStats
        XCTAssertGreaterThanOrEqual(stats.largestBatch, 7, "the streams decoded together")
        XCTAssertGreaterThan(Double(stats.tokens) / Double(stats.steps), 2)
    }

    /// Prompts the prefix cache holds whole join the running batch without a prefill step and
    /// generate what they generate alone: a sampled and a greedy one, each sent again while a long
    /// stream decodes, and two copies of a new prompt sent at once.
    func testWholeCachedPromptsMatchLoneSessions() async throws {
        let model = try loadModel(path: try defaultModelPath(), threads: 2)
        let text = String(repeating: "보험 약관은 피보험자의 권리와 의무를 정합니다. ", count: 3)
        var sampled = GenerationRequest(prompt: model.tokenizer.encode(text + "요약하면"), maxTokens: 10)
        sampled.sampling = SamplingParameters(temperature: 0.8, seed: 3)
        let greedy = GenerationRequest(prompt: model.tokenizer.encode(text + "다시 말해"), maxTokens: 10)
        let fresh = GenerationRequest(prompt: model.tokenizer.encode(text + "그러므로 보험금은"), maxTokens: 10)
        let running = GenerationRequest(prompt: model.tokenizer.encode("Once upon a time"), maxTokens: 60)
        for r in [sampled, greedy, fresh] { XCTAssertGreaterThanOrEqual(r.prompt.count, 16, "long enough to be cached") }
        func alone(_ r: GenerationRequest) throws -> String {
            let session = try GenerationSession(model: model, request: r)
            var out = ""
            while !session.isFinished { out += try session.step() }
            return out
        }
        let lone = try [sampled, greedy, fresh].map(alone)

        let cache = PrefixCache()
        let scheduler = DecodeScheduler(model: model, maxActive: 8, maxQueue: 8, prefixCache: cache)
        func collect(_ r: GenerationRequest) async throws -> String {
            var out = ""
            for try await e in try scheduler.submit(r) { if case let .text(t) = e { out += t } }
            return out
        }
        let first = [try await collect(sampled), try await collect(greedy)]
        XCTAssertEqual(first, Array(lone.prefix(2)))
        XCTAssertEqual(cache.wholeHits, 0)
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            let stream = try scheduler.submit(running)
            group.addTask { var out = ""; for try await e in stream { if case let .text(t) = e { out += t } }; return (-1, out) }
            try await Task.sleep(for: .milliseconds(100))   // the long stream is decoding
            for (i, r) in [sampled, greedy, fresh, fresh].enumerated() { group.addTask { (i, try await collect(r)) } }
            for try await (i, out) in group where i >= 0 { XCTAssertEqual(out, lone[min(i, 2)], "request \(i)") }
        }
        XCTAssertGreaterThanOrEqual(cache.wholeHits, 2, "the repeated prompts came whole from the cache")
    }

    func testQueueBoundAndValidation() throws {
        let model = try loadModel(path: try defaultModelPath(), threads: 2)
        let scheduler = DecodeScheduler(model: model, maxActive: 1, maxQueue: 1)
        let long = GenerationRequest(prompt: model.tokenizer.encode("안녕하세요"), maxTokens: 200)
        var streams = [try scheduler.submit(long)]
        // The worker takes the first into its active slot; one more may wait; the next is refused.
        let deadline = Date().addingTimeInterval(10)
        while scheduler.activeCount < 1 && Date() < deadline { usleep(1000) }
        streams.append(try scheduler.submit(long))
        XCTAssertThrowsError(try scheduler.submit(long)) { error in
            guard case SchedulerError.queueFull = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(prompt: [], maxTokens: 1)))
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(prompt: [Int32](repeating: 2, count: model.contextLength + 1), maxTokens: 1))) { error in
            guard case EngineError.contextOverflow = error else { return XCTFail("\(error)") }
        }
        streams.removeAll()   // dropping the streams cancels their generations
        let freed = Date().addingTimeInterval(30)
        while (scheduler.activeCount > 0 || scheduler.queueDepth > 0) && Date() < freed { usleep(10_000) }
        XCTAssertEqual(scheduler.activeCount + scheduler.queueDepth, 0, "cancelled sessions leave the scheduler")
    }
}

final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.withLock { list.append(s) } }
    var events: [String] { lock.withLock { list } }
}
