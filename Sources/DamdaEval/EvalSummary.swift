import DamdaAssistant
import Foundation

/// What a metric keeps of one row: a value (or two), flags, or n-gram counts. Bootstrap resamples
/// these rather than rows, so a thousand resamples stay cheap.
public struct MetricSample: Sendable {
    public var x = 0.0
    public var y = 0.0
    public var refused = false
    public var shouldRefuse = false
    public var counts: [Int] = []
}

/// A metric of a configuration: a statistic of its rows' samples, with the rows it applies to.
public struct EvalMetric: Sendable {
    public var name: String
    public var label: String
    public var higherIsBetter: Bool
    /// Compared against the baseline by `--gate` (costs depend on the machine and are not).
    public var gated: Bool
    /// Which rows the statistic sees (nil: all of them).
    public var rows: (@Sendable (EvalRow) -> Bool)?
    public var sample: @Sendable (EvalRow) -> MetricSample
    public var statistic: @Sendable ([MetricSample]) -> Double

    init(name: String, label: String, higherIsBetter: Bool, gated: Bool, rows: (@Sendable (EvalRow) -> Bool)?,
         mean f: @escaping @Sendable (EvalRow) -> Double) {
        self.name = name; self.label = label; self.higherIsBetter = higherIsBetter; self.gated = gated; self.rows = rows
        sample = { MetricSample(x: f($0)) }
        statistic = { s in s.isEmpty ? 0 : s.reduce(0) { $0 + $1.x } / Double(s.count) }
    }

    init(name: String, label: String, higherIsBetter: Bool, gated: Bool, rows: (@Sendable (EvalRow) -> Bool)?,
         sample: @escaping @Sendable (EvalRow) -> MetricSample, statistic: @escaping @Sendable ([MetricSample]) -> Double) {
        self.name = name; self.label = label; self.higherIsBetter = higherIsBetter; self.gated = gated; self.rows = rows
        self.sample = sample; self.statistic = statistic
    }

    /// The statistic on rows (for tests and one-off use).
    public func value(_ rows: [EvalRow]) -> Double { statistic(rows.filter { self.rows?($0) ?? true }.map(sample)) }

    static let refusal: @Sendable (EvalRow) -> MetricSample = { MetricSample(refused: $0.refused, shouldRefuse: $0.kind != .answerable) }
    static func refusalCounts(_ s: [MetricSample]) -> RefusalMetrics.Counts { RefusalMetrics.counts(s.map { ($0.refused, $0.shouldRefuse) }) }

    /// Metrics of the answer's text on answerable questions, refusal over all questions,
    /// retrieval and grounding where there is retrieval, then costs.
    public static func all(retrieval: Bool) -> [EvalMetric] {
        let answerable: @Sendable (EvalRow) -> Bool = { $0.kind == .answerable }
        var m: [EvalMetric] = [
            .init(name: "exact_match", label: "EM", higherIsBetter: true, gated: true, rows: answerable, mean: { $0.exactMatch ? 100 : 0 }),
            .init(name: "f1", label: "F1 (char)", higherIsBetter: true, gated: true, rows: answerable, mean: \.f1),
            .init(name: "chrf", label: "chrF", higherIsBetter: true, gated: true, rows: answerable, mean: \.chrF),
            .init(name: "rouge_l", label: "ROUGE-L (syllables)", higherIsBetter: true, gated: true, rows: answerable, mean: \.rougeL),
            .init(name: "bleu", label: "BLEU (syllables)", higherIsBetter: true, gated: true, rows: answerable, mean: \.bleu),
            .init(name: "corpus_chrf", label: "corpus chrF", higherIsBetter: true, gated: false, rows: answerable,
                  sample: { MetricSample(counts: TextOverlap.chrFStatistics($0.answer, $0.gold.first ?? "")) },
                  statistic: { s in
                      var total = [Int](repeating: 0, count: 18)
                      for x in s { for (i, v) in x.counts.enumerated() { total[i] += v } }
                      return TextOverlap.chrF(statistics: total)
                  }),
            .init(name: "gold_in_answer", label: "gold phrase in answer %", higherIsBetter: true, gated: true, rows: answerable,
                  mean: { $0.goldInAnswer ? 100 : 0 }),
            .init(name: "similarity", label: "e5 similarity", higherIsBetter: true, gated: false, rows: { $0.kind == .answerable && $0.similarity != nil },
                  mean: { $0.similarity ?? 0 }),
            .init(name: "refused_answerable", label: "refused answerable %", higherIsBetter: false, gated: false, rows: answerable,
                  mean: { $0.refused ? 100 : 0 }),
            .init(name: "refused_unanswerable", label: "refused unanswerable %", higherIsBetter: true, gated: false, rows: { $0.kind != .answerable },
                  mean: { $0.refused ? 100 : 0 }),
            .init(name: "refusal_precision", label: "refusal precision", higherIsBetter: true, gated: false, rows: nil,
                  sample: refusal, statistic: { refusalCounts($0).precision * 100 }),
            .init(name: "refusal_recall", label: "refusal recall", higherIsBetter: true, gated: false, rows: nil,
                  sample: refusal, statistic: { refusalCounts($0).recall * 100 }),
            .init(name: "refusal_f1", label: "refusal F1", higherIsBetter: true, gated: true, rows: nil,
                  sample: refusal, statistic: { refusalCounts($0).f1 * 100 }),
        ]
        if retrieval {
            m += [
                .init(name: "gold_in_prompt", label: "gold in prompt %", higherIsBetter: true, gated: true, rows: answerable,
                      mean: { $0.goldInPrompt ? 100 : 0 }),
                .init(name: "gold_phrase_in_prompt", label: "gold phrase in prompt %", higherIsBetter: true, gated: false,
                      rows: { $0.kind == .answerable && $0.goldPhraseInPrompt != nil }, mean: { $0.goldPhraseInPrompt == true ? 100 : 0 }),
                .init(name: "recall_at_1", label: "R@1", higherIsBetter: true, gated: true, rows: answerable,
                      mean: { RetrievalMetrics.recall(rank: $0.goldRank, k: 1) * 100 }),
                .init(name: "recall_at_5", label: "R@5", higherIsBetter: true, gated: false, rows: answerable,
                      mean: { RetrievalMetrics.recall(rank: $0.goldRank, k: 5) * 100 }),
                .init(name: "mrr_at_10", label: "MRR@10", higherIsBetter: true, gated: false, rows: answerable,
                      mean: { RetrievalMetrics.reciprocalRank(rank: $0.goldRank) * 100 }),
                .init(name: "ndcg_at_10", label: "nDCG@10", higherIsBetter: true, gated: false, rows: answerable,
                      mean: { RetrievalMetrics.ndcg(rank: $0.goldRank) * 100 }),
                .init(name: "grounding", label: "grounding %", higherIsBetter: true, gated: false, rows: { $0.grounding != nil },
                      mean: { $0.grounding ?? 0 }),
                .init(name: "citation_precision", label: "citation precision %", higherIsBetter: true, gated: false,
                      rows: { $0.citationPrecision != nil }, mean: { $0.citationPrecision ?? 0 }),
            ]
        }
        m += [
            .init(name: "seconds_per_question", label: "s / question", higherIsBetter: false, gated: false, rows: nil, mean: \.seconds),
            .init(name: "prompt_tokens", label: "prompt tokens", higherIsBetter: false, gated: false, rows: nil, mean: { Double($0.promptTokens) }),
            .init(name: "answer_tokens", label: "answer tokens", higherIsBetter: false, gated: false, rows: nil, mean: { Double($0.answerTokens) }),
            .init(name: "tokens_per_s", label: "answer tokens / generation s", higherIsBetter: true, gated: false, rows: nil,
                  sample: { MetricSample(x: Double($0.answerTokens), y: $0.generationSeconds) },
                  statistic: { s in
                      let t = s.reduce(0) { $0 + $1.y }
                      return t > 0 ? s.reduce(0) { $0 + $1.x } / t : 0
                  }),
        ]
        return m
    }
}

/// `damda eval`'s JSON: per configuration and metric the value with its bootstrap interval, and
/// each configuration against the first with a paired interval and p-value.
public struct EvalReport: Codable, Sendable {
    public var model: String
    public var index: String
    public var created: String
    public var questions: Counts
    public var configurations: [EvalConfiguration]
    /// configuration → metric → interval.
    public var metrics: [String: [String: Bootstrap.Interval]]
    public var comparisons: [Comparison]
    /// Scoring and bookkeeping time beyond the assistant's own answers, as a share of it (nil: a
    /// resumed run answered nothing new).
    public var overheadPct: Double?
    public var resamples: Int
    /// The judge's scores and A/B results (`--judge-url`).
    public var judge: JudgeSummary?
    /// People's blind A/B surveys on the panel (`--panel`): win rates and mean ratings.
    public var panel: [PanelResults]?

    public struct Counts: Codable, Sendable { public var answerable = 0, unanswerable = 0, offDomain = 0 }

    public struct Comparison: Codable, Sendable {
        public var baseline: String
        public var config: String
        public var metric: String
        public var difference: Bootstrap.Difference
    }

    enum CodingKeys: String, CodingKey {
        case model, index, created, questions, configurations, metrics, comparisons, resamples, judge, panel, overheadPct = "overhead_pct"
    }

    /// Summarizes `rows` (every configuration's answers to the same questions).
    public static func make(rows: [EvalRow], configs: [EvalConfiguration], model: String, index: String, overheadPct: Double?,
                            bootstrap: Bootstrap = Bootstrap()) -> EvalReport {
        let byConfig = Dictionary(grouping: rows, by: \.config)
        let first = configs.first.map { byConfig[$0.name] ?? [] } ?? []
        var counts = Counts()
        for r in first {
            switch r.kind {
            case .answerable: counts.answerable += 1
            case .unanswerable: counts.unanswerable += 1
            case .offDomain: counts.offDomain += 1
            }
        }
        var metrics: [String: [String: Bootstrap.Interval]] = [:]
        var comparisons: [Comparison] = []
        let order: (EvalRow) -> String = { $0.key.split(separator: "/", maxSplits: 1).last.map(String.init) ?? "" }
        for c in configs {
            let mine = (byConfig[c.name] ?? []).sorted { order($0) < order($1) }
            for m in EvalMetric.all(retrieval: c.usesRetrieval) {
                let subset = m.rows.map { f in mine.filter(f) } ?? mine
                metrics[c.name, default: [:]][m.name] = bootstrap.interval(subset.map(m.sample), m.statistic)
            }
            guard let base = configs.first, base.name != c.name else { continue }
            let theirs = (byConfig[base.name] ?? []).sorted { order($0) < order($1) }
            guard theirs.count == mine.count, zip(theirs, mine).allSatisfy({ order($0) == order($1) }) else { continue }
            for m in EvalMetric.all(retrieval: c.usesRetrieval && base.usesRetrieval) where m.gated || m.name == "seconds_per_question" {
                // Pair on the questions the metric applies to in both configurations.
                let pairs = zip(theirs, mine).filter { a, b in (m.rows?(a) ?? true) && (m.rows?(b) ?? true) }
                comparisons.append(Comparison(baseline: base.name, config: c.name, metric: m.name,
                                              difference: bootstrap.difference(pairs.map { m.sample($0.0) }, pairs.map { m.sample($0.1) }, m.statistic)))
            }
        }
        return EvalReport(model: model, index: index, created: ISO8601DateFormatter().string(from: Date()), questions: counts,
                          configurations: configs, metrics: metrics, comparisons: comparisons,
                          overheadPct: overheadPct.map { ($0 * 100).rounded() / 100 }, resamples: bootstrap.resamples)
    }

    /// What `--gate` reports: a gated metric whose whole interval lies below the baseline's value.
    public struct Regression: Codable, Sendable, CustomStringConvertible {
        public var config: String, metric: String, baseline: Double, current: Bootstrap.Interval
        public var description: String {
            String(format: "%@ %@: %.2f [%.2f, %.2f] is below the baseline's %.2f", config, metric, current.value, current.low, current.high, baseline)
        }
    }

    /// Regressions against `baseline` for the configurations both reports have.
    public func regressions(against baseline: EvalReport) -> [Regression] {
        var out: [Regression] = []
        for c in configurations {
            guard let old = baseline.metrics[c.name], let new = metrics[c.name] else { continue }
            for m in EvalMetric.all(retrieval: c.usesRetrieval) where m.gated {
                guard let b = old[m.name], let cur = new[m.name] else { continue }
                let worse = m.higherIsBetter ? cur.high < b.value - 1e-9 : cur.low > b.value + 1e-9
                if worse { out.append(Regression(config: c.name, metric: m.name, baseline: b.value, current: cur)) }
            }
        }
        return out
    }
}
