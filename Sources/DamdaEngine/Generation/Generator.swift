import DamdaCore
import DamdaTokenizer
import Foundation

public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    public var maxTokens: Int = 256
    public var sampling: SamplingParameters = .greedy
    /// Generation ends before any of these strings; they are not part of the text.
    public var stop: [String] = []
    /// Whether end-of-generation tokens (EOS, `<end_of_turn>`) end generation.
    public var stopAtEndOfGeneration = true
    /// A stop string at the very start (after whitespace) does not stop: a model
    /// that opens with a section marker (`[답변]`) and then answers keeps going until the next one.
    public var stopsSkipLeading = false
    /// An answer-or-refuse decision made once, by probability: see `FirstTokenGate`.
    public var firstTokenGate: FirstTokenGate?
    /// Read the residual stream after this layer at the prompt's last position
    /// (`GenerationSummary.promptState`), as a refusal probe does: to fit one on it.
    public var promptStateLayer: Int?

    public init(prompt: [Int32], maxTokens: Int = 256, sampling: SamplingParameters = .greedy, stop: [String] = []) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling; self.stop = stop
    }
}

/// The first generated token may be one of `tokens` (a refusal's first token) only when their
/// combined probability reaches `threshold`; then the likeliest of them is taken, otherwise they are
/// excluded and the model answers. Greedy argmax refuses whenever the refusal token merely tops the
/// list; a threshold set on held-out questions trades wrong refusals against answers to
/// unanswerable questions, like SQuAD 2.0's no-answer threshold. With a `RefusalProbe` the
/// probability is the probe's, read from the model's state at the prompt's last position, and
/// `threshold` applies to it.
public struct FirstTokenGate: Sendable, Equatable {
    public var tokens: Set<Int32>
    public var threshold: Float
    public var probe: RefusalProbe?
    public init(tokens: Set<Int32>, threshold: Float, probe: RefusalProbe? = nil) {
        self.tokens = tokens; self.threshold = threshold; self.probe = probe
    }

    /// The gated tokens' softmax probability under `logits` and the likeliest of them.
    public func probability(_ logits: [Float]) -> (probability: Float, likeliest: Int32?) {
        guard let peak = logits.max(), peak.isFinite else { return (0, nil) }
        var total: Double = 0, gated: Double = 0
        var best: Int32?
        for (i, l) in logits.enumerated() {
            let e = Double(Foundation.exp(l - peak))
            total += e
            if tokens.contains(Int32(i)) {
                gated += e
                if best.map({ logits[Int($0)] < l }) ?? true { best = Int32(i) }
            }
        }
        return (Float(gated / total), best)
    }
}

public enum FinishReason: String, Sendable, Codable { case stop, length, cancelled }

public enum GenerationEvent: Sendable {
    /// A piece of text, complete UTF-8.
    case text(String)
    case done(GenerationSummary)
}

public struct GenerationSummary: Sendable {
    public var text: String
    public var tokens: [Int32]
    public var promptTokens: Int
    public var finishReason: FinishReason
    public var prefillSeconds: Double
    public var decodeSeconds: Double
    /// With a `FirstTokenGate`: the gated tokens' probability at the first generated token.
    public var firstTokenGateProbability: Float?
    /// With `promptStateLayer` or a probe: the residual stream after that layer at the prompt's last position.
    public var promptState: [Float]?
    /// Prompt tokens whose keys and values came from the prefix cache (not run).
    public var cachedPromptTokens = 0
    public var promptTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(tokens.count - 1, 0)) / decodeSeconds : 0 }
}

/// Anything that turns a request into a stream of text pieces: the single-sequence `Generator`
/// (CLI) or the server's scheduler that interleaves many sequences on one model.
public protocol TextGenerating: Sendable {
    var model: any LanguageModel { get }
    func stream(_ req: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error>
    /// Runs `body` on the model where no generation is using it at the same time (the model's
    /// scratch buffers are shared): for other reads of the model, such as a guard's layer states.
    func withModel<T: Sendable>(_ body: @escaping @Sendable (any LanguageModel) throws -> T) async throws -> T
}

extension TextGenerating {
    /// Runs a request to completion and returns its summary.
    public func complete(_ req: GenerationRequest) async throws -> GenerationSummary {
        for try await event in stream(req) { if case let .done(s) = event { return s } }
        throw CancellationError()
    }
}

/// One sequence's generation as a state machine: each `step()` runs one prefill slice or one
/// decode token, so a scheduler can interleave many sessions on one model.
public final class GenerationSession: @unchecked Sendable {
    public let request: GenerationRequest
    let model: any LanguageModel
    let cache: KVCache
    var sampler: Sampler
    var history: [Int32]
    var prefilled = 0
    var logits: [Float] = []
    /// The last decode step's top logits, when sampling asked for those rather than every logit.
    var top: TopLogits?
    /// Plain greedy decoding (no repetition penalty) needs only the argmax: the model's
    /// `forwardGreedy` finds it without every fp32 logit, and the token lands here.
    let greedyOnly: Bool
    var greedyNext: Int32?
    var gateProbability: Float?
    /// The layer whose state at the prompt's end is read (a probe's or the request's), and that state.
    let stateLayer: Int?
    var promptState: [Float]?
    var out: [Int32] = []
    var decoder = StreamingDecoder()
    var text = ""          // everything generated so far
    var emitted = 0        // characters of `text` already handed out
    let holdBack: Int
    var prefillTime: Duration = .zero
    var decodeTime: Duration = .zero
    public private(set) var finishReason: FinishReason?
    /// Prompt tokens run per step; bounds how long one session holds the model.
    public var prefillSlice = 128
    /// Shared prompt prefixes: restored before the first prefill slice, the prompt stored after the last.
    let prefixCache: PrefixCache?
    var cachedPromptTokens = 0

    public init(model: any LanguageModel, request req: GenerationRequest, prefixCache: PrefixCache? = nil) throws {
        guard !req.prompt.isEmpty else { throw EngineError.emptyPrompt }
        guard req.prompt.count < model.contextLength else {
            throw EngineError.contextOverflow(needed: req.prompt.count + 1, capacity: model.contextLength)
        }
        for t in req.prompt where t < 0 || Int(t) >= model.vocabularySize {
            throw EngineError.badToken(t, vocabulary: model.vocabularySize)
        }
        self.model = model
        self.prefixCache = prefixCache
        request = req
        cache = model.makeCache(capacity: min(req.prompt.count + max(req.maxTokens, 0), model.contextLength))
        sampler = Sampler(req.sampling)
        greedyOnly = req.sampling.temperature <= 0 && req.sampling.repetitionPenalty == 1
        history = req.prompt
        holdBack = req.stop.map(\.count).max().map { max($0 - 1, 0) } ?? 0
        stateLayer = req.firstTokenGate?.probe?.layer ?? req.promptStateLayer
        if let layer = stateLayer {
            guard let reader = model as? any LayerStateReading else { throw RefusalProbeError.unsupportedModel }
            guard (0..<reader.layerCount).contains(layer) else { throw EngineError.badStateLayer(layer, layers: reader.layerCount) }
        }
    }

    public var isFinished: Bool { finishReason != nil }
    public var promptTokens: Int { request.prompt.count }
    public var generatedTokens: Int { out.count }

    /// Whether the prompt still has tokens to run (the next step is a prefill slice).
    public var isPrefilling: Bool { finishReason == nil && prefilled < request.prompt.count }

    /// Advances by one prefill slice or one token; returns newly safe text (possibly empty).
    public func step() throws -> String {
        guard finishReason == nil else { return "" }
        if isPrefilling { _ = try prefillStep(); return "" }
        let t0 = ContinuousClock.now
        defer { decodeTime += ContinuousClock.now - t0 }
        let (piece, slot) = takeNextToken()
        if let slot { receive(try model.decodeStep([slot])[0]) }
        return piece
    }

    /// Runs the next prefill slice (restoring a cached prefix first); returns the prompt tokens run.
    @discardableResult
    public func prefillStep() throws -> Int {
        guard isPrefilling else { return 0 }
        let t0 = ContinuousClock.now
        defer { prefillTime += ContinuousClock.now - t0 }
        if prefilled == 0, let prefixCache {
            if restoreWholePrompt() { return 0 }
            prefilled = prefixCache.restore(request.prompt, into: cache, slice: prefillSlice)
            cachedPromptTokens = prefilled
        }
        let start = prefilled
        let end = min(prefilled + prefillSlice, request.prompt.count)
        guard start < end else { return 0 }
        let slice = Array(request.prompt[start..<end])
        // The gate needs every logit of the first token; greedy decoding resumes after it.
        var output: PrefixCache.PromptOutput?
        if end == request.prompt.count, let layer = stateLayer, let reader = model as? any LayerStateReading {
            (logits, promptState) = try reader.forward(slice, cache: cache, logits: .last, stateAfterLayer: layer)
            output = .init(logits: logits, state: promptState, stateLayer: layer)
            // Greedy's pick from every logit is the one `forwardGreedy` certifies.
            if greedyOnly && request.firstTokenGate == nil { greedyNext = Int32(Ops.argmax(logits)) }
        } else if end == request.prompt.count && greedyOnly && request.firstTokenGate == nil {
            greedyNext = try model.forwardGreedy(slice, cache: cache)
            output = .init(greedy: greedyNext)
        } else {
            logits = try model.forward(slice, cache: cache, logits: end == request.prompt.count ? .last : .none)
            output = .init(logits: logits)
        }
        prefilled = end
        if end == request.prompt.count { prefixCache?.store(request.prompt, from: cache, output: output) }
        if request.maxTokens <= 0 && end == request.prompt.count { finishReason = .length }
        return end - start
    }

    /// The same prompt again, before any of it has run: its keys, values and last logits (or
    /// greedy's pick) as its earlier run left them, so the session decodes at once. Runs no model
    /// step, so a scheduler can do it before the step it would otherwise have waited for (and
    /// again on later steps: a session with the same prompt may store it meanwhile). Returns
    /// whether the prompt came whole from the prefix cache.
    @discardableResult
    public func restoreWholePrompt() -> Bool {
        guard prefilled == 0, isPrefilling, let prefixCache else { return false }
        let needsLogits = !greedyOnly || request.firstTokenGate != nil
        guard let whole = prefixCache.restoreWhole(request.prompt, into: cache, needsLogits: needsLogits, stateLayer: stateLayer) else { return false }
        prefilled = request.prompt.count
        cachedPromptTokens = prefilled
        promptState = stateLayer == nil ? nil : whole.state
        if needsLogits {
            logits = whole.logits!
        } else {
            greedyNext = whole.greedy ?? Int32(Ops.argmax(whole.logits!))
        }
        if request.maxTokens <= 0 { finishReason = .length }
        return true
    }

    /// The decode half of a step before the model runs: takes the next token (greedy's pick, the
    /// gate's decision or a sample), appends its text, and returns the text now safe to hand out
    /// with the slot the model must run next (nil when this token ended the session). A batching
    /// scheduler collects the slots of many sessions into one `decodeStep` and hands each result
    /// back through `receive`.
    func takeNextToken() -> (piece: String, slot: DecodeSlot?) {
        guard finishReason == nil, !isPrefilling else { return ("", nil) }
        let next: Int32
        if out.isEmpty, let gate = request.firstTokenGate, greedyNext == nil {
            var (p, likeliest) = gate.probability(logits)
            if let probe = gate.probe, let promptState { p = probe.probability(state: promptState) }
            gateProbability = p
            if p >= gate.threshold, let likeliest {
                next = likeliest
            } else {
                for t in gate.tokens where Int(t) < logits.count { logits[Int(t)] = -.infinity }
                next = sampler.sample(logits, history: history)
            }
        } else {
            next = greedyNext ?? (top.map { sampler.sample($0, history: history) } ?? sampler.sample(logits, history: history))
        }
        if request.stopAtEndOfGeneration && model.tokenizer.endOfGeneration.contains(next) { return (finish(.stop), nil) }
        out.append(next)
        history.append(next)
        text += decoder.push(next, tokenizer: model.tokenizer)
        if let cut = firstStop(in: text) {
            text = String(text[..<cut])
            finishReason = .stop
            return (drain(), nil)
        }
        if out.count >= request.maxTokens || cache.count >= cache.capacity { return (finish(.length), nil) }
        let slot = DecodeSlot(token: next, cache: cache,
                              output: greedyOnly ? .greedy : sampler.output(vocabulary: model.vocabularySize, history: history))
        // Hold back only a tail that might still become a stop string (the longest end of the
        // text that begins one): a fixed hold of the longest stop's length delayed every stream's
        // first text by several tokens.
        let safe = max(emitted, text.count - partialStopLength())
        guard safe > emitted else { return ("", slot) }
        let piece = String(text.dropFirst(emitted).prefix(safe - emitted))
        emitted = safe
        return (piece, slot)
    }

    /// The model's result for the slot `takeNextToken` returned.
    func receive(_ result: DecodeResult) {
        switch result {
        case let .greedy(token): greedyNext = token
        case let .logits(values): logits = values; top = nil; greedyNext = nil
        case let .top(values): top = values; greedyNext = nil
        }
    }

    /// Time this session spent in a batched decode step (each member is charged the whole step:
    /// it is the time its token took).
    func addDecodeTime(_ d: Duration) { decodeTime += d }

    /// Stops the session early (client gone, server shutting down).
    public func cancel() { if finishReason == nil { finishReason = .cancelled } }

    func finish(_ reason: FinishReason) -> String {
        finishReason = reason
        text += decoder.flush()
        if let cut = firstStop(in: text) { text = String(text[..<cut]); finishReason = .stop }
        return drain()
    }

    func drain() -> String {
        guard text.count > emitted else { return "" }
        let piece = String(text.dropFirst(emitted))
        emitted = text.count
        return piece
    }

    public var summary: GenerationSummary {
        GenerationSummary(text: text, tokens: out, promptTokens: request.prompt.count, finishReason: finishReason ?? .length,
                          prefillSeconds: prefillTime.seconds, decodeSeconds: decodeTime.seconds, firstTokenGateProbability: gateProbability,
                          promptState: promptState, cachedPromptTokens: cachedPromptTokens)
    }

    /// Characters at the end of `text` that are the start of some stop string (0 when none).
    func partialStopLength() -> Int {
        guard holdBack > 0 else { return 0 }
        var longest = 0
        let tail = text.suffix(holdBack)
        for stop in request.stop where stop.count > 1 {
            var k = min(stop.count - 1, tail.count)
            while k > longest {
                if tail.hasSuffix(stop.prefix(k)) { longest = k; break }
                k -= 1
            }
        }
        return longest
    }

    func firstStop(in text: String) -> String.Index? {
        let stops = request.stop.filter { !$0.isEmpty }
        var from = text.startIndex
        if request.stopsSkipLeading {
            // Skip whitespace and one whole stop string at the start; a stop string that is still
            // being written at the start is not a stop yet either.
            func skipSpace() { while from < text.endIndex, text[from].isWhitespace { from = text.index(after: from) } }
            skipSpace()
            if stops.contains(where: { $0.hasPrefix(text[from...]) }) { return nil }
            if let s = stops.first(where: { text[from...].hasPrefix($0) }) { from = text.index(from, offsetBy: s.count); skipSpace() }
            if stops.contains(where: { $0.hasPrefix(text[from...]) }) { return nil }
        }
        return stops.compactMap { text.range(of: $0, range: from..<text.endIndex)?.lowerBound }.min()
    }
}

/// Runs one sequence at a time: prefill then token-by-token decode, streaming text pieces.
public final class Generator: TextGenerating, @unchecked Sendable {
    public let model: any LanguageModel
    /// Keys and values of earlier prompts (nil: every prompt is run whole).
    public let prefixCache: PrefixCache?

    public init(model: any LanguageModel, prefixCache: PrefixCache? = nil) { self.model = model; self.prefixCache = prefixCache }

    /// One sequence at a time is this generator's contract: its caller does not generate while
    /// `body` runs, so it runs here.
    public func withModel<T: Sendable>(_ body: @escaping @Sendable (any LanguageModel) throws -> T) async throws -> T {
        try body(model)
    }

    /// Synchronous core: calls `onText` for each complete piece; returning false cancels.
    public func generate(_ req: GenerationRequest, onText: (String) -> Bool = { _ in true }) throws -> GenerationSummary {
        let session = try GenerationSession(model: model, request: req, prefixCache: prefixCache)
        // One forward for the whole prompt is fastest; with a prefix cache, fixed slices make a
        // restored prefix compute exactly what an uncached run computes.
        session.prefillSlice = prefixCache == nil ? Int.max : PrefixCache.slice
        while !session.isFinished {
            let piece = try session.step()
            if !piece.isEmpty && !onText(piece) { session.cancel() }
        }
        return session.summary
    }

    /// Streaming: text pieces as they are decoded, then a summary. Cancelling the consuming task
    /// stops generation at the next token.
    public func stream(_ req: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { continuation in
            let cancelled = CancelFlag()
            continuation.onTermination = { _ in cancelled.set() }
            let thread = Thread { [self] in
                do {
                    let summary = try generate(req) { piece in
                        if cancelled.isSet { return false }
                        continuation.yield(.text(piece))
                        return true
                    }
                    continuation.yield(.done(summary))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }
}

public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func set() { lock.withLock { value = true } }
    public var isSet: Bool { lock.withLock { value } }
}
