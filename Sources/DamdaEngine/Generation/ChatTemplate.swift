/// A conversation turn.
public struct ChatMessage: Sendable, Codable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// Renders conversations the way each model family was trained to read them.
public enum ChatTemplate: Sendable, Equatable {
    /// `<start_of_turn>user … <end_of_turn>\n<start_of_turn>model\n`; Gemma has no system role, so a
    /// system message is prepended to the first user turn (as Gemma's own template does).
    case gemma
    /// ChatML (`<|im_start|>role\n…<|im_end|>\n`), used by Qwen 2.
    case chatML
    /// Llama 3 header tokens.
    case llama3

    public static func forArchitecture(_ arch: String) -> ChatTemplate {
        switch arch {
        case "qwen2": .chatML
        case "llama": .llama3
        default: .gemma
        }
    }

    /// Every control spelling of every template (and BOS/EOS): user and document text must never
    /// hold them, or it could open and close turns.
    public static let controlSpellings = ["<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>", "<|eot_id|>",
                                          "<|start_header_id|>", "<|end_header_id|>", "<bos>", "<eos>"]

    /// `text` with every control spelling removed.
    public static func removingControlTokens(_ text: String) -> String {
        var out = text
        for t in controlSpellings { out = out.replacingOccurrences(of: t, with: "") }
        return out
    }

    /// Where a reply ends: generation stops at these strings.
    public var stopStrings: [String] { [endOfTurn] }

    /// The text that closes a turn (what a fine-tuned reply ends with).
    public var endOfTurn: String {
        switch self {
        case .gemma: "<end_of_turn>"
        case .chatML: "<|im_end|>"
        case .llama3: "<|eot_id|>"
        }
    }

    /// The prompt text, ending where the model's reply begins. BOS is added by the tokenizer.
    public func render(_ messages: [ChatMessage]) -> String {
        switch self {
        case .gemma:
            var out = ""
            var pendingSystem: String?
            for m in messages {
                switch m.role {
                case "system": pendingSystem = (pendingSystem.map { $0 + "\n\n" } ?? "") + m.content
                case "assistant", "model":
                    out += "<start_of_turn>model\n\(m.content)<end_of_turn>\n"
                default:
                    let text = pendingSystem.map { $0 + "\n\n" + m.content } ?? m.content
                    pendingSystem = nil
                    out += "<start_of_turn>user\n\(text)<end_of_turn>\n"
                }
            }
            return out + "<start_of_turn>model\n"
        case .chatML:
            return messages.map { "<|im_start|>\($0.role)\n\($0.content)<|im_end|>\n" }.joined() + "<|im_start|>assistant\n"
        case .llama3:
            return messages.map { "<|start_header_id|>\($0.role)<|end_header_id|>\n\n\($0.content)<|eot_id|>" }.joined()
                + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        }
    }
}
