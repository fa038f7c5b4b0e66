import DamdaCore
import Foundation

/// Percentile bootstrap over questions: confidence intervals for a statistic of a configuration's
/// rows, and paired intervals for the difference between two configurations that answered the
/// same questions (the same resampled questions for both).
public struct Bootstrap: Sendable {
    public var resamples = 1000
    /// 0.95: the 2.5th and 97.5th percentiles.
    public var confidence = 0.95
    public var seed: UInt64 = 20_261_202

    public init(resamples: Int = 1000, confidence: Double = 0.95, seed: UInt64 = 20_261_202) {
        self.resamples = resamples; self.confidence = confidence; self.seed = seed
    }

    public struct Interval: Codable, Sendable, Equatable {
        public var value: Double
        public var low: Double
        public var high: Double
        /// Questions the statistic was computed on.
        public var n: Int
    }

    public struct Difference: Codable, Sendable, Equatable {
        public var value: Double
        public var low: Double
        public var high: Double
        /// Two-sided paired-bootstrap p-value of "no difference".
        public var p: Double
        public var n: Int
    }

    /// The same resamples (question index lists) for every statistic, so intervals of different
    /// metrics and configurations come from the same draws.
    func draws(_ n: Int) -> [[Int]] {
        var rng = SplitMix64(seed: seed ^ UInt64(n))
        return (0..<resamples).map { _ in (0..<n).map { _ in Int(rng.next() % UInt64(max(n, 1))) } }
    }

    func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = Int(pos.rounded(.up))
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }

    /// `statistic` on all items and its interval over resamples of them.
    public func interval<T>(_ items: [T], _ statistic: ([T]) -> Double) -> Interval {
        let value = statistic(items)
        guard items.count > 1 else { return Interval(value: value, low: value, high: value, n: items.count) }
        let stats = draws(items.count).map { d in statistic(d.map { items[$0] }) }.sorted()
        let tail = (1 - confidence) / 2
        return Interval(value: value, low: percentile(stats, tail), high: percentile(stats, 1 - tail), n: items.count)
    }

    /// statistic(b) − statistic(a) over paired items (a[i] and b[i] are the same question).
    public func difference<T>(_ a: [T], _ b: [T], _ statistic: ([T]) -> Double) -> Difference {
        precondition(a.count == b.count, "paired samples")
        let value = statistic(b) - statistic(a)
        guard a.count > 1 else { return Difference(value: value, low: value, high: value, p: 1, n: a.count) }
        let diffs = draws(a.count).map { d in statistic(d.map { b[$0] }) - statistic(d.map { a[$0] }) }.sorted()
        let tail = (1 - confidence) / 2
        let atOrBelow = Double(diffs.filter { $0 <= 0 }.count) / Double(diffs.count)
        let atOrAbove = Double(diffs.filter { $0 >= 0 }.count) / Double(diffs.count)
        return Difference(value: value, low: percentile(diffs, tail), high: percentile(diffs, 1 - tail),
                          p: min(1, 2 * min(atOrBelow, atOrAbove)), n: a.count)
    }
}
