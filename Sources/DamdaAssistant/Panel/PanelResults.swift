import Foundation

/// A survey's outcome: win rates per pair of configurations with 95% Wilson intervals, and each
/// configuration's mean rating per criterion with a 95% normal interval.
public struct PanelResults: Sendable, Codable {
    public struct Pair: Sendable, Codable, Equatable {
        public var a: String
        public var b: String
        public var votes: Int
        public var aWins: Int
        public var bWins: Int
        public var ties: Int
        /// a's share of the votes, a tie counting half.
        public var aWinRate: Double
        public var aWinRateLow: Double
        public var aWinRateHigh: Double
        enum CodingKeys: String, CodingKey {
            case a, b, votes, ties
            case aWins = "a_wins", bWins = "b_wins", aWinRate = "a_win_rate", aWinRateLow = "a_win_rate_low", aWinRateHigh = "a_win_rate_high"
        }
    }
    public struct Criterion: Sendable, Codable, Equatable {
        public var n: Int
        public var mean: Double
        public var low: Double
        public var high: Double
    }
    public var survey: PanelSurvey
    public var evaluators: Int
    public var votes: Int
    public var corrections: Int
    public var pairs: [Pair]
    /// Configuration → criterion (accuracy, grounding, usefulness) → mean rating.
    public var ratings: [String: [String: Criterion]]

    /// Wilson score interval for `wins` of `n` (95%).
    static func wilson(_ wins: Double, _ n: Int) -> (Double, Double) {
        guard n > 0 else { return (0, 1) }
        let z = 1.959964, nn = Double(n), p = wins / nn
        let centre = (p + z * z / (2 * nn)) / (1 + z * z / nn)
        let half = z * ((p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot()) / (1 + z * z / nn)
        return (max(0, centre - half), min(1, centre + half))
    }

    public init(survey: PanelSurvey, votes: [PanelVote]) {
        self.survey = survey
        evaluators = Set(votes.map(\.evaluator)).count
        self.votes = votes.count
        corrections = votes.filter { !$0.correction.isEmpty }.count
        var pairs: [Pair] = []
        let configs = survey.configs
        for i in configs.indices {
            for j in configs.indices where j > i {
                let (a, b) = (configs[i], configs[j])
                let these = votes.filter { Set([$0.first, $0.second]) == Set([a, b]) }
                let aWins = these.filter { $0.winner == a }.count, bWins = these.filter { $0.winner == b }.count
                let ties = these.count - aWins - bWins
                let share = Double(aWins) + Double(ties) / 2
                let (lo, hi) = Self.wilson(share, these.count)
                pairs.append(Pair(a: a, b: b, votes: these.count, aWins: aWins, bWins: bWins, ties: ties,
                                  aWinRate: these.isEmpty ? 0 : share / Double(these.count), aWinRateLow: lo, aWinRateHigh: hi))
            }
        }
        self.pairs = pairs
        var ratings: [String: [String: Criterion]] = [:]
        for c in configs {
            let given = votes.compactMap { $0.ratings[c] }
            var byCriterion: [String: Criterion] = [:]
            for criterion in PanelRatings.criteria {
                let xs = given.map { Double($0.value(criterion)) }
                guard !xs.isEmpty else { continue }
                let mean = xs.reduce(0, +) / Double(xs.count)
                let sd = xs.count > 1 ? (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count - 1)).squareRoot() : 0
                let half = 1.959964 * sd / Double(xs.count).squareRoot()
                byCriterion[criterion] = Criterion(n: xs.count, mean: mean, low: max(1, mean - half), high: min(5, mean + half))
            }
            ratings[c] = byCriterion
        }
        self.ratings = ratings
    }
}
