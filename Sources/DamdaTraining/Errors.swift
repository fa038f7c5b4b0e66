import DamdaCore

public enum TrainingError: DamdaError {
    case unsupported(String)
    case badData(String)
    case badCheckpoint(String)

    public var message: String {
        switch self {
        case let .unsupported(why): "training: \(why)"
        case let .badData(why): why
        case let .badCheckpoint(why): "checkpoint: \(why)"
        }
    }
}
