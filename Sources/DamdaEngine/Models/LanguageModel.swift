import Foundation
import DamdaCore
import DamdaModelIO
import DamdaTokenizer

/// Which positions' logits a forward pass returns.
public enum LogitsWanted: Sendable { case last, all, none }

/// A decoder-only transformer that the generator can drive.
public protocol LanguageModel: AnyObject, Sendable {
    var vocabularySize: Int { get }
    var contextLength: Int { get }
    var tokenizer: any Tokenizer { get }
    var threads: Int { get set }
    /// How this model family reads conversations (from the file's `general.architecture`).
    var chatTemplate: ChatTemplate { get }
    func makeCache(capacity: Int) -> KVCache
    /// Runs `tokens` at the cache's next positions, appends their keys/values, and returns logits
    /// (`[vocabularySize]` for `.last`, `[tokens.count × vocabularySize]` for `.all`).
    func forward(_ tokens: [Int32], cache: KVCache, logits: LogitsWanted) throws -> [Float]
    /// Like `forward` for the last token, then greedy's pick: the lowest index of the largest logit.
    func forwardGreedy(_ tokens: [Int32], cache: KVCache) throws -> Int32
}

/// One sequence's part of a batched decode step: the token to run at the cache's next position.
public struct DecodeSlot {
    public var token: Int32
    public var cache: KVCache
    /// What the step hands back for this sequence.
    public var output: DecodeOutput
    public init(token: Int32, cache: KVCache, output: DecodeOutput) {
        self.token = token; self.cache = cache; self.output = output
    }
    public init(token: Int32, cache: KVCache, wantsLogits: Bool) {
        self.init(token: token, cache: cache, output: wantsLogits ? .logits : .greedy)
    }
}

/// What a decode step computes for one sequence.
public enum DecodeOutput: Equatable, Sendable {
    /// Greedy's pick alone.
    case greedy
    /// Every logit (a first-token gate, or anything that reads the whole distribution).
    case logits
    /// The exact logits of a set of tokens that holds the `count` largest, and of `including`
    /// (the tokens a repetition penalty will change): what sampling reads (`Sampler.output`).
    case top(count: Int, including: [Int32])
}

/// What a decode step gives one sequence: greedy's pick, every logit, or the top of them.
public enum DecodeResult: Equatable {
    case greedy(Int32)
    case logits([Float])
    case top(TopLogits)
}

/// Some of the next token's logits, each the value the full product computes: `tokens` (ascending)
/// hold at least the `count` largest logits of the whole vocabulary (ties included) and every
/// token asked for by name, and every token left out is smaller than each of the `count` largest.
public struct TopLogits: Equatable, Sendable {
    public var tokens: [Int32]
    public var values: [Float]
    /// The vocabulary's size, for the sampler's candidate count.
    public var vocabulary: Int

    public init(tokens: [Int32], values: [Float], vocabulary: Int) {
        self.tokens = tokens; self.values = values; self.vocabulary = vocabulary
    }

    /// The `count` largest of `logits` (ties to the lower index) and the tokens in `including`.
    public init(logits: [Float], count: Int, including: [Int32]) {
        var chosen = Set(logits.withUnsafeBufferPointer { Sampler.topIndices($0, count) })
        for t in including where t >= 0 && Int(t) < logits.count { chosen.insert(Int(t)) }
        let sorted = chosen.sorted()
        self.init(tokens: sorted.map { Int32($0) }, values: sorted.map { logits[$0] }, vocabulary: logits.count)
    }
}

/// Models that can run one decode step for several sequences at once.
public protocol BatchDecoding: LanguageModel {
    /// One token per slot, each at its own cache's next position; slot i's result is bit for bit
    /// what `forwardGreedy([token], cache:)` (or `forward(…, logits: .last)`) gives it alone. For
    /// `.top` the set may hold more tokens than the lone step's exact top, never fewer, each with
    /// the lone step's value, so sampling draws the same token.
    func decode(_ slots: [DecodeSlot]) throws -> [DecodeResult]
}

extension LanguageModel {
    /// A batched step where the model has one, otherwise the slots one after another: either way
    /// each slot's result is its lone step's.
    public func decodeStep(_ slots: [DecodeSlot]) throws -> [DecodeResult] {
        if slots.count > 1, let batched = self as? any BatchDecoding { return try batched.decode(slots) }
        return try slots.map { s in
            switch s.output {
            case .greedy: .greedy(try forwardGreedy([s.token], cache: s.cache))
            case .logits: .logits(try forward([s.token], cache: s.cache, logits: .last))
            case let .top(count, including):
                .top(TopLogits(logits: try forward([s.token], cache: s.cache, logits: .last), count: count, including: including))
            }
        }
    }

    public func forwardGreedy(_ tokens: [Int32], cache: KVCache) throws -> Int32 {
        let logits = try forward(tokens, cache: cache, logits: .last)
        return Int32(Ops.argmax(logits))
    }
}

/// Where a model's layer matrices live while it runs.
public enum WeightLayout: String, Sendable, CaseIterable {
    /// Copied once at load into huge pages, the types `DecodeRows.relays` names in decode's own
    /// layout (int8 or nibble blocks with fp32 scales): the fastest decode, for Gemma 3 270M about
    /// 11 MB more memory than `file` with AVX-512 (its Q5_0 stays as stored) and 38 MB without.
    case decode
    /// Read from the file's mapping as stored: the least memory (the pages are the page cache's,
    /// shared by every process that maps the same model), decode up to a fifth slower.
    case file

    /// `decode`, or `file` with `DAMDA_REPACK=0`.
    public static var standard: WeightLayout {
        ProcessInfo.processInfo.environment["DAMDA_REPACK"] == "0" ? .file : .decode
    }
}

/// Loads the architecture named in the GGUF's `general.architecture`.
public func loadModel(path: String, threads: Int = Threads.available, weights: WeightLayout = .standard) throws -> any LanguageModel {
    BLAS.prepare()
    let file = try GGUFFile(path: path)
    let arch = try file.string("general.architecture")
    switch arch {
    case "gemma3": return try Gemma3Model(file: file, threads: threads, weights: weights)
    case "llama", "qwen2": return try LlamaModel(file: file, threads: threads, weights: weights)
    default: throw EngineError.unsupportedArchitecture(arch)
    }
}

/// A norm or bias vector read as fp32 whatever its stored type.
func loadVector(_ file: GGUFFile, _ name: String, count: Int? = nil) throws -> [Float] {
    let info = try file.require(name)
    if let c = count, info.elementCount != c {
        throw GGUFError.badTensorShape(tensor: name, reason: "\(info.elementCount) values, expected \(c)")
    }
    var out = [Float](repeating: 0, count: info.elementCount)
    let k = QuantKernels.of(info.type)
    out.withUnsafeMutableBufferPointer { k.dequantize(file.data(of: info).baseAddress!, $0.baseAddress!, info.elementCount) }
    return out
}

func checkMatrix(_ w: WeightMatrix, rows: Int, columns: Int) throws {
    guard w.rows == rows, w.columns == columns else {
        throw GGUFError.badTensorShape(tensor: w.name, reason: "\(w.rows)×\(w.columns), expected \(rows)×\(columns)")
    }
}

/// An fp32 buffer with manual lifetime, for activations.
package final class Buffer {
    package let p: UnsafeMutablePointer<Float>
    package let count: Int
    package init(_ n: Int) { count = max(n, 1); p = .allocate(capacity: count); p.initialize(repeating: 0, count: count) }
    /// Uninitialized: for buffers the caller overwrites completely before reading.
    package init(uninitialized n: Int) { count = max(n, 1); p = .allocate(capacity: count) }
    deinit { p.deallocate() }
}
