import DamdaCore
import DamdaEngine
import DamdaTokenizer
import Foundation

/// The RAG prompt: an instruction with `{question}` and `{context}` placeholders. The default is the
/// format Korean RAG training data uses, so serving prompts match training prompts.
public struct PromptTemplate: Sendable, Equatable {
    public static let refusal = "답변을 찾을 수 없습니다."

    public static let korean = try! PromptTemplate(text: """
        아래 [내용]을 참고해서 [질문]에 대해 답변해주세요. 만약 질문에 답변할 수 없으면 "답변을 찾을 수 없습니다."로 대답하세요.
        [질문]
        {question}
        [내용]
        {context}
        [답변]

        """)

    public let text: String

    public init(text: String) throws {
        guard text.contains("{question}") else { throw PromptError.badTemplate("it must contain {question}") }
        guard text.contains("{context}") else { throw PromptError.badTemplate("it must contain {context}") }
        self.text = text
    }

    public init(file: String) throws {
        guard let data = FileManager.default.contents(atPath: file), let s = String(data: data, encoding: .utf8) else {
            throw PromptError.unreadableTemplate(file)
        }
        try self.init(text: s)
    }

    public func render(question: String, context: String) -> String {
        // Context first so a question holding "{context}" is not expanded.
        text.replacingOccurrences(of: "{context}", with: "\u{0}CTX\u{0}")
            .replacingOccurrences(of: "{question}", with: question)
            .replacingOccurrences(of: "\u{0}CTX\u{0}", with: context)
    }

    /// Section markers of the template (`[질문]`, `[내용]`, `[답변]`): a base model that starts
    /// writing them is echoing the template, so generation stops there.
    public var markers: [String] {
        let pattern = try! NSRegularExpression(pattern: "\\[[^\\]\\n\\[]{1,12}\\]")
        let ns = text as NSString
        var seen: [String] = []
        for m in pattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let s = ns.substring(with: m.range)
            if !seen.contains(s) { seen.append(s) }
        }
        return seen
    }
}

/// The one RAG prompt encoder. The assistant (serving) and RAG training examples both turn
/// (question, context) into tokens here, so the model is trained on exactly the tokens it is
/// served, in raw-completion and in chat form.
public struct RAGPrompt: Sendable {
    public let tokenizer: any Tokenizer
    public var template: PromptTemplate
    /// Wrap the prompt in this chat template as a user turn; nil: raw completion.
    public var chat: ChatTemplate?

    public init(tokenizer: any Tokenizer, template: PromptTemplate = .korean, chat: ChatTemplate? = nil) {
        self.tokenizer = tokenizer; self.template = template; self.chat = chat
    }

    /// The prompt's text for a question and its numbered context.
    public func text(question: String, context: String) -> String { template.render(question: question, context: context) }

    /// Prompt text → ids. Document and user text never become control tokens; in chat mode their
    /// control-token spellings are removed before the template adds real ones.
    public func encode(_ prompt: String) -> [Int32] {
        guard let chat else { return tokenizer.encode(prompt, addSpecial: true, parseSpecial: false) }
        return tokenizer.encode(chat.render([ChatMessage(role: "user", content: ChatTemplate.removingControlTokens(prompt))]),
                                addSpecial: true, parseSpecial: true)
    }

    public func encode(question: String, context: String) -> [Int32] { encode(text(question: question, context: context)) }

    /// An answer's tokens as training targets: the answer and what ends it (EOS for a raw
    /// completion, the turn's end in chat form), the point where generation stops.
    public func encodeAnswer(_ answer: String) -> [Int32] {
        if let chat {
            return tokenizer.encode(ChatTemplate.removingControlTokens(answer), addSpecial: false, parseSpecial: false)
                + tokenizer.encode(chat.endOfTurn, addSpecial: false, parseSpecial: true)
        }
        var ids = tokenizer.encode(answer, addSpecial: false, parseSpecial: false)
        if let eos = tokenizer.eosID { ids.append(eos) }
        return ids
    }

    /// The tokens a refusal can start with as the model writes it after the prompt (the training
    /// target's first token, with and without a leading space): what the first-token gate weighs.
    public var refusalFirstTokens: Set<Int32> {
        var tokens: Set<Int32> = []
        for text in [PromptTemplate.refusal, " " + PromptTemplate.refusal] {
            if let first = tokenizer.encode(text, addSpecial: false, parseSpecial: false).first { tokens.insert(first) }
        }
        return tokens
    }

    /// Where the answer's generation stops: the template's section markers (a model that starts
    /// writing `[질문]` is echoing the template) and, in chat form, the end of the turn.
    public var stops: [String] { template.markers + (chat?.stopStrings ?? []) }
}
