import DamdaCore

public enum AssistantError: DamdaError {
    case emptyQuestion

    public var message: String {
        switch self {
        case .emptyQuestion: "the question is empty"
        }
    }
}
