import DamdaCore
import Foundation

public enum AssistantError: DamdaError {
    case badTemplate(String)
    case unreadableTemplate(String)
    case emptyQuestion

    public var message: String {
        switch self {
        case let .badTemplate(why): "prompt template: \(why)"
        case let .unreadableTemplate(path): "cannot read the prompt template at \(path)"
        case .emptyQuestion: "the question is empty"
        }
    }
}

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
        guard text.contains("{question}") else { throw AssistantError.badTemplate("it must contain {question}") }
        guard text.contains("{context}") else { throw AssistantError.badTemplate("it must contain {context}") }
        self.text = text
    }

    public init(file: String) throws {
        guard let data = FileManager.default.contents(atPath: file), let s = String(data: data, encoding: .utf8) else {
            throw AssistantError.unreadableTemplate(file)
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
