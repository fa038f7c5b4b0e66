import DamdaCore

public enum PromptError: DamdaError {
    case badTemplate(String)
    case unreadableTemplate(String)

    public var message: String {
        switch self {
        case let .badTemplate(why): "prompt template: \(why)"
        case let .unreadableTemplate(path): "cannot read the prompt template at \(path)"
        }
    }
}

public enum DatasetError: DamdaError {
    case badData(String)

    public var message: String {
        switch self {
        case let .badData(why): why
        }
    }
}
