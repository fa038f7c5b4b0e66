import Foundation

/// Character-level overlap metrics that work for Korean. The usual ROUGE and BLEU tokenizers keep
/// only [a-z0-9] and score Hangul 0; these count characters (Hangul syllables), whitespace
/// removed, and are checked against sacreBLEU 2.x (`CHRF()`, `BLEU(tokenize="char")`) and
/// rouge-score (`rougeL` with a character tokenizer) in the tests.
public enum TextOverlap {
    /// The characters compared: Unicode scalars with all whitespace removed (Python's
    /// `''.join(s.split())` and sacreBLEU's `char` tokenizer). Korean syllables are single scalars in NFC.
    public static func characters(_ s: String) -> [Unicode.Scalar] {
        s.precomposedStringWithCanonicalMapping.unicodeScalars.filter { !$0.properties.isWhitespace }
    }

    static func ngrams(_ c: [Unicode.Scalar], _ n: Int) -> [String: Int] {
        var out: [String: Int] = [:]
        guard c.count >= n else { return out }
        for i in 0...(c.count - n) {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: c[i..<(i + n)])
            out[String(s), default: 0] += 1
        }
        return out
    }

    // MARK: chrF

    /// chrF's sufficient statistics: per order 1...6, [hypothesis n-grams, reference n-grams, matches].
    public static func chrFStatistics(_ hypothesis: String, _ reference: String, order: Int = 6) -> [Int] {
        let h = characters(hypothesis), r = characters(reference)
        var stats: [Int] = []
        for n in 1...order {
            let hn = ngrams(h, n), rn = ngrams(r, n)
            let match = hn.reduce(0) { $0 + min($1.value, rn[$1.key] ?? 0) }
            // As sacreBLEU: hypothesis n-grams of an order the reference lacks count for nothing.
            stats += [rn.isEmpty ? 0 : hn.values.reduce(0, +), rn.values.reduce(0, +), match]
        }
        return stats
    }

    /// chrF (β = 2) from summed statistics, as sacreBLEU 2's default (effective-order averaging of
    /// precision and recall), 0–100.
    public static func chrF(statistics: [Int], beta: Double = 2) -> Double {
        let factor = beta * beta
        var avgPrecision = 0.0, avgRecall = 0.0, effectiveOrder = 0
        for i in 0..<(statistics.count / 3) {
            let hyp = statistics[3 * i], ref = statistics[3 * i + 1], match = statistics[3 * i + 2]
            guard hyp > 0 && ref > 0 else { continue }
            avgPrecision += Double(match) / Double(hyp)
            avgRecall += Double(match) / Double(ref)
            effectiveOrder += 1
        }
        guard effectiveOrder > 0 else { return 0 }
        avgPrecision /= Double(effectiveOrder)
        avgRecall /= Double(effectiveOrder)
        guard avgPrecision + avgRecall > 0 else { return 0 }
        return 100 * (1 + factor) * avgPrecision * avgRecall / (factor * avgPrecision + avgRecall)
    }

    public static func chrF(_ hypothesis: String, _ reference: String) -> Double {
        chrF(statistics: chrFStatistics(hypothesis, reference))
    }

    /// Corpus chrF: statistics summed over the pairs, then one score.
    public static func corpusChrF(_ pairs: [(hypothesis: String, reference: String)]) -> Double {
        var total = [Int](repeating: 0, count: 18)
        for p in pairs { for (i, v) in chrFStatistics(p.hypothesis, p.reference).enumerated() { total[i] += v } }
        return chrF(statistics: total)
    }

    // MARK: BLEU over characters

    /// BLEU's statistics over characters: matched and total n-grams per order 1...4, lengths.
    public struct BLEUStatistics: Sendable {
        public var correct = [Int](repeating: 0, count: 4)
        public var total = [Int](repeating: 0, count: 4)
        public var hypothesisLength = 0
        public var referenceLength = 0
        public init() {}

        public static func + (a: Self, b: Self) -> Self {
            var s = a
            for i in 0..<4 { s.correct[i] += b.correct[i]; s.total[i] += b.total[i] }
            s.hypothesisLength += b.hypothesisLength; s.referenceLength += b.referenceLength
            return s
        }
    }

    public static func bleuStatistics(_ hypothesis: String, _ reference: String) -> BLEUStatistics {
        let h = characters(hypothesis), r = characters(reference)
        var s = BLEUStatistics()
        s.hypothesisLength = h.count
        s.referenceLength = r.count
        for n in 1...4 {
            let hn = ngrams(h, n), rn = ngrams(r, n)
            s.total[n - 1] = hn.values.reduce(0, +)
            s.correct[n - 1] = hn.reduce(0) { $0 + min($1.value, rn[$1.key] ?? 0) }
        }
        return s
    }

    /// BLEU with sacreBLEU's "exp" smoothing (NIST: each order with no match gets 1/2^k of a
    /// match), 0–100. `effectiveOrder` (sentence BLEU) stops at the longest order the hypothesis has.
    public static func bleu(_ s: BLEUStatistics, effectiveOrder: Bool) -> Double {
        guard s.correct.contains(where: { $0 > 0 }) else { return 0 }
        let bp = s.hypothesisLength < s.referenceLength
            ? (s.hypothesisLength > 0 ? exp(1 - Double(s.referenceLength) / Double(s.hypothesisLength)) : 0) : 1
        var precisions = [Double](repeating: 0, count: 4)
        var smooth = 1.0, order = 4
        for n in 1...4 {
            if s.total[n - 1] == 0 { break }
            if effectiveOrder { order = n }
            if s.correct[n - 1] == 0 {
                smooth *= 2
                precisions[n - 1] = 100 / (smooth * Double(s.total[n - 1]))
            } else {
                precisions[n - 1] = 100 * Double(s.correct[n - 1]) / Double(s.total[n - 1])
            }
        }
        let logs = precisions.prefix(order).map { $0 > 0 ? log($0) : -9_999_999_999 }
        return bp * exp(logs.reduce(0, +) / Double(order))
    }

    /// Sentence BLEU (effective order), as `sacrebleu.sentence_bleu(h, [r], tokenize="char")`.
    public static func sentenceBLEU(_ hypothesis: String, _ reference: String) -> Double {
        bleu(bleuStatistics(hypothesis, reference), effectiveOrder: true)
    }

    /// Corpus BLEU, as `BLEU(tokenize="char").corpus_score`.
    public static func corpusBLEU(_ pairs: [(hypothesis: String, reference: String)]) -> Double {
        bleu(pairs.reduce(BLEUStatistics()) { $0 + bleuStatistics($1.hypothesis, $1.reference) }, effectiveOrder: false)
    }

    // MARK: ROUGE-L over characters

    /// ROUGE-L F1 over characters: longest common subsequence, P = LCS/|hypothesis|,
    /// R = LCS/|reference| (rouge-score's `rougeL` with a character tokenizer), 0–1.
    public static func rougeL(_ hypothesis: String, _ reference: String) -> (precision: Double, recall: Double, f1: Double) {
        let h = characters(hypothesis), r = characters(reference)
        guard !h.isEmpty, !r.isEmpty else { return (0, 0, 0) }
        var previous = [Int](repeating: 0, count: r.count + 1), current = previous
        for i in 1...h.count {
            for j in 1...r.count {
                current[j] = h[i - 1] == r[j - 1] ? previous[j - 1] + 1 : max(previous[j], current[j - 1])
            }
            swap(&previous, &current)
        }
        let lcs = Double(previous[r.count])
        let p = lcs / Double(h.count), rec = lcs / Double(r.count)
        return (p, rec, p + rec > 0 ? 2 * p * rec / (p + rec) : 0)
    }
}
