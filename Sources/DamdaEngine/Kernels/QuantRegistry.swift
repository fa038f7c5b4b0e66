import DamdaModelIO

/// The one table that maps a tensor type to its kernels (ggml's type-traits table).
public struct QuantKernels: Sendable {
    public typealias Dequantize = @Sendable (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void
    public typealias Dot = @Sendable (UnsafeRawPointer, UnsafePointer<Float>, Int) -> Float
    /// Writes `n` floats from a row of this type.
    public let dequantize: Dequantize
    /// Dot product of a row of `n` values of this type with fp32 `x`, accumulated in fp32.
    public let dot: Dot

    /// `fullWidth256` picks the 256-bit matrix-vector kernels where a type has both (Q8_0).
    public static func of(_ type: TensorType, fullWidth256: Bool = CPUFeatures.fullWidth256) -> QuantKernels {
        switch type {
        case .f32: QuantKernels(dequantize: FloatKernels.dequantizeF32, dot: FloatKernels.dotF32)
        case .f16: QuantKernels(dequantize: FloatKernels.dequantizeF16, dot: FloatKernels.dotF16)
        case .bf16: QuantKernels(dequantize: FloatKernels.dequantizeBF16, dot: FloatKernels.dotBF16)
        case .q8_0: QuantKernels(dequantize: LegacyQuants.dequantizeQ8_0,
                                 dot: fullWidth256 ? LegacyQuants.dotQ8_0Wide : LegacyQuants.dotQ8_0)
        case .q5_0: QuantKernels(dequantize: LegacyQuants.dequantizeQ5_0, dot: LegacyQuants.dotQ5_0)
        case .q4_0: QuantKernels(dequantize: LegacyQuants.dequantizeQ4_0, dot: LegacyQuants.dotQ4_0)
        case .q4_K: QuantKernels(dequantize: KQuants.dequantizeQ4_K, dot: KQuants.dotQ4_K)
        case .q5_K: QuantKernels(dequantize: KQuants.dequantizeQ5_K, dot: KQuants.dotQ5_K)
        case .q6_K: QuantKernels(dequantize: KQuants.dequantizeQ6_K, dot: KQuants.dotQ6_K)
        }
    }
}
