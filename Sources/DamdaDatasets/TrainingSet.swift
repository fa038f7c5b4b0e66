/// Token sequences ready for training, with what was left out and why.
public struct TrainingSet: Sendable {
    public var sequences: [TrainingSequence] = []
    /// Records without a usable context (no "context" field, or no gold chunk that fits the budget).
    public var withoutContext = 0
    /// Sequences longer than the limit that the truncation policy dropped.
    public var tooLong = 0
    /// Examples made unanswerable (refusal answers).
    public var unanswerable = 0
    public init() {}

    /// Records rendered with the contexts the data gives.
    public static func rendered(_ records: [TrainingRecord], renderer: ExampleRenderer) -> TrainingSet {
        var set = TrainingSet()
        for r in records {
            guard let s = renderer.render(r) else { set.withoutContext += 1; continue }
            set.sequences.append(s)
        }
        return set
    }

    /// Fits every sequence in `maxLength` tokens, or drops it, as `policy` says.
    public mutating func truncate(to maxLength: Int, policy: TruncationPolicy) {
        sequences = sequences.compactMap { s in
            guard let t = s.truncated(to: maxLength, policy: policy) else { tooLong += 1; return nil }
            return t
        }
    }

    public var skipped: Int { withoutContext + tooLong }
}
