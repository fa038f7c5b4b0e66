/// The ggml tensor types Damda reads, with their block geometry. Numbers follow ggml's `ggml_type`.
/// Kernels (dequantize, dot) live with the engine, one file per quant family.
public enum TensorType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q5_0 = 6
    case q8_0 = 8
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case bf16 = 30

    /// Values per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q4_0, .q5_0, .q8_0: 32
        case .q4_K, .q5_K, .q6_K: 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q4_0: 18
        case .q5_0: 22
        case .q8_0: 34
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }

    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q4_0: "Q4_0"
        case .q5_0: "Q5_0"
        case .q8_0: "Q8_0"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        }
    }

    public var description: String { name }

    /// Bytes for a row of `n` values, or nil when `n` is not a whole number of blocks.
    public func rowBytes(_ n: Int) -> Int? {
        guard n % blockSize == 0 else { return nil }
        return n / blockSize * blockBytes
    }

    public init?(name: String) {
        guard let t = Self.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }
}
