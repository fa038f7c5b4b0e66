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
        var summary = JudgeSummary(model: client.endpoint.model, url: client.endpoint.url.absoluteString)
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
    /// The judge against people's ratings (`--feedback`).
    public var feedback: FeedbackAgreement?
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

    enum CodingKeys: String, CodingKey { case model, url, scores, pairwise, feedback, firstError = "first_error" }
}

/// An answer people rated (one line of `GET /v1/feedback/export`).
public struct RatedAnswer: Codable, Sendable {
    public struct Source: Codable, Sendable { public var text: String }
    public var question: String
    public var answer: String
    /// "up" or "down".
    public var rating: String
    public var citations: [Source]

    /// The export's lines; malformed ones are counted in `skipped`.
    public static func read(_ path: String) throws -> (answers: [RatedAnswer], skipped: Int) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw EvalError.unreadable(path) }
        var out: [RatedAnswer] = [], skipped = 0
        for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            if let r = try? JSONDecoder().decode(RatedAnswer.self, from: Data(line.utf8)), ["up", "down"].contains(r.rating) {
                out.append(r)
            } else {
                skipped += 1
            }
        }
        return (out, skipped)
    }
}

/// How often the judge agrees with people's thumbs: the judge says "up" when its three rubric
/// scores average at least 3.5 (no reference answer: correctness is judged from the sources).
public struct FeedbackAgreement: Codable, Sendable {
    public var rated = 0, judged = 0, invalid = 0, errors = 0
    /// Share of judged answers where the judge and the person agree.
    public var agreement = 0.0
    /// Cohen's kappa of the two (nil when either side gave only one kind of rating).
    public var kappa: Double?
}

extension JudgePass {
    public func agreement(with feedback: [RatedAnswer]) async -> FeedbackAgreement {
        var a = FeedbackAgreement()
        a.rated = feedback.count
        var pairs: [(person: Bool, judge: Bool)] = []
        for r in feedback {
            do {
                let (s, _) = try await client.score(question: r.question, reference: [], sources: r.citations.map(\.text), answer: r.answer)
                guard let s else { a.invalid += 1; continue }
                pairs.append((r.rating == "up", Double(s.correctness + s.groundedness + s.helpfulness) / 3 >= 3.5))
            } catch {
                a.errors += 1
            }
        }
        a.judged = pairs.count
        guard !pairs.isEmpty else { return a }
        let n = Double(pairs.count)
        let observed = Double(pairs.filter { $0.person == $0.judge }.count) / n
        a.agreement = observed * 100
        let personUp = Double(pairs.filter(\.person).count) / n, judgeUp = Double(pairs.filter(\.judge).count) / n
        let expected = personUp * judgeUp + (1 - personUp) * (1 - judgeUp)
        a.kappa = expected < 1 ? (observed - expected) / (1 - expected) : nil
        return a
    }
}
