import DamdaCore

public enum AssistantError: DamdaError {
    case emptyQuestion
    case unreadable(String)
    case malformedLine(String, Int)
    case classifierModelMismatch(String)

    public var message: String {
        switch self {
        case .emptyQuestion: "the question is empty"
        case let .unreadable(path): "cannot read \(path)"
        case let .malformedLine(path, line): "\(path):\(line) is not a JSON object with \"a\" and \"b\" strings"
        case let .classifierModelMismatch(why): "the injection classifier cannot read this model: \(why)"
        }
    }
}
