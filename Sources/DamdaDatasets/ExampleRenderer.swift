import DamdaEngine
import DamdaTokenizer

/// Training-data rendering: records into token sequences exactly as the assistant and the chat
/// endpoint prompt the model, so training and serving see the same tokens.
public struct ExampleRenderer: Sendable {
    public var tokenizer: any Tokenizer { ragPrompt.tokenizer }
    /// RAG records are encoded by the assistant's own prompt encoder.
    public var ragPrompt: RAGPrompt
    /// The model's conversation template for alpaca and chat records.
    public var conversation: ChatTemplate

    public init(ragPrompt: RAGPrompt, conversation: ChatTemplate) {
        self.ragPrompt = ragPrompt; self.conversation = conversation
    }

    /// RAG records in the default Korean prompt, as raw completions.
    public init(tokenizer: any Tokenizer, conversation: ChatTemplate) {
        self.init(ragPrompt: RAGPrompt(tokenizer: tokenizer), conversation: conversation)
    }

    /// The assistant's prompt for (question, context) followed by the answer and what ends it.
    public func rag(question: String, context: String, answer: String) -> TrainingSequence {
        let p = ragPrompt.encode(question: question, context: context)
        let a = ragPrompt.encodeAnswer(answer)
        return TrainingSequence(ids: p + a, isAnswer: Array(repeating: false, count: p.count) + Array(repeating: true, count: a.count))
    }

    public func render(_ record: TrainingRecord) -> TrainingSequence? {
        switch record {
        case let .instruction(instruction, input, output):
            let user = input.isEmpty ? instruction : instruction + "\n\n" + input
            return conversationSequence([ChatMessage(role: "user", content: user), ChatMessage(role: "assistant", content: output)], template: conversation)
        case let .conversation(messages):
            return conversationSequence(messages, template: conversation)
        case let .rag(question, context, answer, _):
            guard let context else { return nil }
            return rag(question: question, context: context, answer: answer)
        }
    }

    /// Template text is tokenized with control tokens; message text never becomes one.
    func conversationSequence(_ messages: [ChatMessage], template: ChatTemplate) -> TrainingSequence {
        let clean = messages.map { ChatMessage(role: $0.role, content: ChatTemplate.removingControlTokens($0.content)) }
        var ids: [Int32] = [], isAnswer: [Bool] = []
        var rendered = ""
        var first = true
        for (i, m) in clean.enumerated() where m.role == "assistant" || m.role == "model" {
            // The template renders a prefix of the conversation as a prefix of the whole: add what is new.
            let before = template.render(Array(clean[..<i]))
            let context = String(before.dropFirst(rendered.count))
            let c = tokenizer.encode(context, addSpecial: first, parseSpecial: true)
            first = false
            let reply = tokenizer.encode(m.content, addSpecial: false, parseSpecial: false)
                + tokenizer.encode(template.endOfTurn, addSpecial: false, parseSpecial: true)
            ids += c + reply
            isAnswer += Array(repeating: false, count: c.count) + Array(repeating: true, count: reply.count)
            rendered = before + m.content + template.endOfTurn
        }
        return TrainingSequence(ids: ids, isAnswer: isAnswer)
    }
}
