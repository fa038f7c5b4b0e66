import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaModelIO
import Foundation

/// Sequences laid end to end for one forward/backward pass; each attends only within itself
/// and its positions restart at 0 (packing with a block-diagonal causal mask).
public struct PackedBatch: Sendable {
    public var tokens: [Int32] = []
    /// The next token at each position, or -1 where no loss is taken (prompt, padding).
    public var targets: [Int32] = []
    public var segments: [Range<Int>] = []

    public init() {}

    /// Appends one sequence: position i predicts ids[i + 1], with a loss where that token is an answer token.
    public mutating func append(_ s: TrainingSequence) {
        guard s.ids.count >= 2 else { return }
        let start = tokens.count
        tokens += s.ids.dropLast()
        targets += (1..<s.ids.count).map { s.isAnswer[$0] ? s.ids[$0] : -1 }
        segments.append(start..<tokens.count)
    }

    public mutating func append(ids: [Int32], lossFrom: Int) {
        append(TrainingSequence(ids: ids, isAnswer: ids.indices.map { $0 >= lossFrom }))
    }

    public var lossTokens: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}
