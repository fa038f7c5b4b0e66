import Foundation

/// SplitMix64: seeded, reproducible randomness (HNSW levels, synthetic data, LoRA init and dropout, tests).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    /// The generator seeded with `seed` after `skipping` draws (the state advances by a constant),
    /// so threads can each produce their own part of one stream.
    public init(seed: UInt64, skipping: UInt64) { state = seed &+ skipping &* 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    public mutating func gaussian() -> Float {
        Float((-2 * log(max(nextUnit(), 1e-12))).squareRoot() * cos(2 * .pi * nextUnit()))
    }
}
