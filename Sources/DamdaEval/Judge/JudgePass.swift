import DamdaCore
import Foundation

/// The judge's pass over answered rows: rubric scores per configuration (with intervals) and
/// pairwise A/B of each configuration against the first, asked in both orders. Replies that never
/// validate and endpoint errors are counted, never fatal.
public struct JudgePass {
    public var client: JudgeClient
    /// Questions judged per configuration (answerable first, in row order; 0: all).
    public var limit = 0
    public var progress = true

    public init(client: JudgeClient) { self.client = client }

    public func run(_ rows: [EvalRow], configs: [EvalConfiguration], bootstrap: Bootstrap = Bootstrap()) async -> JudgeSummary {
        var summary = JudgeSummary(model: client.model, url: client.url.absoluteString)
        let byConfig = Dictionary(grouping: rows, by: \.config)
        func picked(_ name: String) -> [EvalRow] {
            let mine = byConfig[name] ?? []
            return limit > 0 ? Array(mine.prefix(limit)) : mine
        }
        let total = configs.reduce(0) { $0 + picked($1.name).count } * (configs.count > 1 ? 2 : 1)
        let bar = progress ? ProgressBar(total: Int64(total), label: "judge", unit: "q") : nil
        var done = 0
        for c in configs {
            var scored: [JudgeClient.Scores] = []
            var counts = JudgeSummary.Counts()
            for r in picked(c.name) {
                do {
                    let (s, attempts) = try await client.score(question: r.question, reference: r.gold, sources: r.sources ?? [], answer: r.answer)
                    counts.retries += attempts - 1
                    if let s { scored.append(s); counts.valid += 1 } else { counts.invalid += 1 }
                } catch {
                    counts.errors += 1
                    if summary.firstError == nil { summary.firstError = "\(error)" }
                }
                done += 1
                bar?.update(to: Int64(done))
            }
            let mean: (KeyPath<JudgeClient.Scores, Int>) -> ([JudgeClient.Scores]) -> Double = { k in
                { s in s.isEmpty ? 0 : Double(s.map { $0[keyPath: k] }.reduce(0, +)) / Double(s.count) }
            }
            summary.scores[c.name] = JudgeSummary.Rubric(
                correctness: bootstrap.interval(scored, mean(\.correctness)), groundedness: bootstrap.interval(scored, mean(\.groundedness)),
                helpfulness: bootstrap.interval(scored, mean(\.helpfulness)), counts: counts)
        }
        if let base = configs.first {
            let baseRows = Dictionary(picked(base.name).map { ("\($0.kind.rawValue)/\($0.id)", $0) }, uniquingKeysWith: { a, _ in a })
            for c in configs.dropFirst() {
                var p = JudgeSummary.Pairwise(baseline: base.name, config: c.name)
                for r in picked(c.name) {
                    defer { done += 1; bar?.update(to: Int64(done)) }
                    guard let b = baseRows["\(r.kind.rawValue)/\(r.id)"] else { continue }
                    do {
                        switch try await client.compare(question: r.question, reference: r.gold, a: b.answer, b: r.answer) {
                        case "A": p.baselineWins += 1
                        case "B": p.configWins += 1
                        case "tie": p.ties += 1
                        default: p.invalid += 1
                        }
                    } catch {
                        p.errors += 1
                        if summary.firstError == nil { summary.firstError = "\(error)" }
                    }
                }
                summary.pairwise.append(p)
            }
        }
        bar?.finish()
        return summary
    }
}

/// The judge's part of the eval report.
public struct JudgeSummary: Codable, Sendable {
    public var model: String
    public var url: String
    /// configuration → mean rubric scores (1–5) with intervals over the validly judged questions.
    public var scores: [String: Rubric] = [:]
    public var pairwise: [Pairwise] = []
    public var firstError: String?

    public struct Counts: Codable, Sendable {
        /// Judged with a valid reply; replies that never validated; endpoint errors; extra attempts.
        public var valid = 0, invalid = 0, errors = 0, retries = 0
    }

    public struct Rubric: Codable, Sendable {
        public var correctness: Bootstrap.Interval
        public var groundedness: Bootstrap.Interval
        public var helpfulness: Bootstrap.Interval
        public var counts: Counts
    }

    /// A/B in both orders: a win only when both orders agree, a tie when they disagree.
    public struct Pairwise: Codable, Sendable {
        public var baseline: String
        public var config: String
        public var baselineWins = 0, configWins = 0, ties = 0, invalid = 0, errors = 0
        enum CodingKeys: String, CodingKey {
            case baseline, config, ties, invalid, errors, baselineWins = "baseline_wins", configWins = "config_wins"
        }
    }

    enum CodingKeys: String, CodingKey { case model, url, scores, pairwise, firstError = "first_error" }
}
