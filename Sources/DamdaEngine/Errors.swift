import DamdaCore

public enum EngineError: DamdaError {
    case unsupportedArchitecture(String)
    case contextOverflow(needed: Int, capacity: Int)
    case badToken(Int32, vocabulary: Int)
    case emptyPrompt
    case sharedCacheInBatch
    case badStateLayer(Int, layers: Int)

    public var message: String {
        switch self {
        case let .unsupportedArchitecture(a): "model architecture '\(a)' is not supported (gemma3, llama, qwen2 are)"
        case let .contextOverflow(needed, capacity):
            "the prompt and generation need \(needed) tokens but the context holds \(capacity): shorten the prompt, lower --max-tokens, or raise --context"
        case let .badToken(id, n): "token id \(id) is outside the vocabulary (0..<\(n))"
        case .emptyPrompt: "the prompt is empty: give at least one token"
        case .sharedCacheInBatch: "a decode batch holds the same KV cache twice: each sequence needs its own"
        case let .badStateLayer(l, n): "layer \(l) is outside the model's layers 0..<\(n)"
        }
    }
}

public enum LoRAError: DamdaError {
    case unknownTarget(String)
    case badAdapter(String)
    case mismatch(String)

    public var message: String {
        switch self {
        case let .unknownTarget(t): "unknown LoRA target '\(t)' (use q, k, v, o, gate, up, down or their PEFT names q_proj …)"
        case let .badAdapter(why): "adapter: \(why)"
        case let .mismatch(why): "the adapter does not fit this model: \(why)"
        }
    }
}

/// The decode scheduler's queue is full (the server answers 429).
public enum SchedulerError: Error, Sendable { case queueFull(capacity: Int) }
