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

    public init(prompt: [Int32], maxTokens: Int = 256, sampling: SamplingParameters = .greedy, stop: [String] = []) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling; self.stop = stop
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
    public var promptTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(tokens.count - 1, 0)) / decodeSeconds : 0 }
}

/// Runs prefill then token-by-token decode, streaming text pieces. One generator drives one
/// sequence at a time over its own KV cache.
public final class Generator: @unchecked Sendable {
    public let model: any LanguageModel

    public init(model: any LanguageModel) { self.model = model }

    /// Synchronous core: calls `onText` for each complete piece; returning false cancels.
    public func generate(_ req: GenerationRequest, onText: (String) -> Bool = { _ in true }) throws -> GenerationSummary {
        let tok = model.tokenizer
        guard !req.prompt.isEmpty else { throw EngineError.emptyPrompt }
        let needed = req.prompt.count + max(req.maxTokens, 0)
        guard req.prompt.count < model.contextLength else {
            throw EngineError.contextOverflow(needed: req.prompt.count + 1, capacity: model.contextLength)
        }
        let cache = model.makeCache(capacity: min(needed, model.contextLength))
        var sampler = Sampler(req.sampling)
        let clock = ContinuousClock()
        let t0 = clock.now
        var logits = try model.forward(req.prompt, cache: cache, logits: .last)
        let prefill = clock.now - t0
        var history = req.prompt
        var out: [Int32] = []
        var decoder = StreamingDecoder()
        var text = ""        // everything generated so far
        var emitted = 0      // characters of `text` already handed to onText
        var reason = FinishReason.length
        let holdBack = req.stop.map(\.count).max().map { max($0 - 1, 0) } ?? 0
        let t1 = clock.now
        loop: while out.count < req.maxTokens {
            let next = sampler.sample(logits, history: history)
            if req.stopAtEndOfGeneration && tok.endOfGeneration.contains(next) { reason = .stop; break }
            out.append(next)
            history.append(next)
            text += decoder.push(next, tokenizer: tok)
            if let cut = Self.firstStop(in: text, stops: req.stop) {
                text = String(text[..<cut])
                reason = .stop
                break loop
            }
            // Hold back a tail that might still become a stop string.
            let safe = max(emitted, text.count - holdBack)
            if safe > emitted {
                let piece = String(text.dropFirst(emitted).prefix(safe - emitted))
                emitted = safe
                if !onText(piece) { reason = .cancelled; break }
            }
            if out.count >= req.maxTokens { break }
            if cache.count >= cache.capacity { reason = .length; break }
            logits = try model.forward([next], cache: cache, logits: .last)
        }
        if reason != .stop || Self.firstStop(in: text, stops: req.stop) == nil {
            text += decoder.flush()
            if let cut = Self.firstStop(in: text, stops: req.stop) { text = String(text[..<cut]); reason = .stop }
        }
        if reason != .cancelled && text.count > emitted { _ = onText(String(text.dropFirst(emitted))) }
        let decode = clock.now - t1
        return GenerationSummary(text: text, tokens: out, promptTokens: req.prompt.count, finishReason: reason,
                                 prefillSeconds: prefill.seconds, decodeSeconds: decode.seconds)
    }

    static func firstStop(in text: String, stops: [String]) -> String.Index? {
        stops.filter { !$0.isEmpty }.compactMap { text.range(of: $0)?.lowerBound }.min()
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

final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
