import DamdaCore

public enum GGUFError: DamdaError {
    case cannotOpen(path: String, reason: String)
    case badMagic(path: String, found: UInt32)
    case unsupportedVersion(UInt32)
    case truncated(at: Int, need: Int, fileSize: Int)
    case absurdCount(what: String, value: UInt64)
    case badString(at: Int)
    case unknownValueType(UInt32, key: String)
    case unknownTensorType(UInt32, tensor: String)
    case badTensorShape(tensor: String, reason: String)
    case tensorOutOfBounds(tensor: String, end: Int, fileSize: Int)
    case duplicate(String)
    case missingKey(String)
    case wrongKeyType(key: String, expected: String)
    case missingTensor(String)
    case writeFailed(path: String, reason: String)

    public var message: String {
        switch self {
        case let .cannotOpen(path, reason): "cannot open model file \(path): \(reason)"
        case let .badMagic(path, found):
            "\(path) is not a GGUF file (magic 0x\(String(found, radix: 16)), expected 'GGUF'): pass a .gguf model with --model"
        case let .unsupportedVersion(v): "GGUF version \(v) is not supported (2 and 3 are): convert the model with a current llama.cpp"
        case let .truncated(at, need, size):
            "model file ends at byte \(size) but \(need) more bytes are needed at offset \(at): the file is incomplete, run `damda model fetch` again or re-download it"
        case let .absurdCount(what, value): "GGUF header claims \(value) \(what), more than the file can hold: the file is corrupt"
        case let .badString(at): "invalid UTF-8 string at byte \(at) of the GGUF header: the file is corrupt"
        case let .unknownValueType(t, key): "metadata key '\(key)' has unknown value type \(t): the file is corrupt or from a newer GGUF version"
        case let .unknownTensorType(t, tensor): "tensor '\(tensor)' has tensor type \(t), which Damda does not support (F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K)"
        case let .badTensorShape(tensor, reason): "tensor '\(tensor)' has a bad shape: \(reason)"
        case let .tensorOutOfBounds(tensor, end, size): "tensor '\(tensor)' ends at byte \(end), past the end of the file (\(size) bytes): the file is truncated"
        case let .duplicate(name): "GGUF file lists '\(name)' twice: the file is corrupt"
        case let .missingKey(key): "model metadata lacks '\(key)': this GGUF was not made for this architecture or is incomplete"
        case let .wrongKeyType(key, expected): "model metadata '\(key)' should be \(expected)"
        case let .missingTensor(name): "model has no tensor '\(name)': the GGUF does not match its declared architecture"
        case let .writeFailed(path, reason): "cannot write GGUF \(path): \(reason)"
        }
    }
}
