/// How BM25 and vector rankings are combined.
public enum Fusion: Sendable, Equatable {
    /// Min-max normalize each list's scores to [0, 1], then weight (the measured best on KorQuAD).
    /// `SearchIndex` first gives every candidate both its BM25 score and its cosine.
    case weighted(bm25: Float, vector: Float)
    /// Reciprocal-rank fusion: Σ 1/(k + rank).
    case reciprocalRank(k: Float)

    /// Chosen on questions about even-numbered KorQuAD paragraphs, checked on the odd ones (README).
    public static let `default` = Fusion.weighted(bm25: 0.6, vector: 0.4)

    /// Both lists extended to the union of their candidates, each scored by both retrievers, so a
    /// chunk one list missed is weighed by its real score instead of that list's minimum
    /// (KorQuAD, weighted 0.6/0.4: R@1 .933 → .936).
    public static func scoredByBoth(_ lexical: [(index: Int, score: Float)], _ dense: [(index: Int, score: Float)],
                                    lexicalScore: (Int) -> Float, cosine: (Int) -> Float)
        -> (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)]) {
        var union = lexical.map(\.index)
        let seen = Set(union)
        union += dense.map(\.index).filter { !seen.contains($0) }
        return (union.map { (index: $0, score: lexicalScore($0)) }, union.map { (index: $0, score: cosine($0)) })
    }

    public func fuse(_ a: [(index: Int, score: Float)], _ b: [(index: Int, score: Float)], k: Int) -> [(index: Int, score: Float)] {
        var total: [Int: Float] = [:]
        switch self {
        case let .weighted(wa, wb):
            for (list, w) in [(a, wa), (b, wb)] {
                guard let hi = list.map(\.score).max(), let lo = list.map(\.score).min() else { continue }
                let span = hi - lo
                for h in list { total[h.index, default: 0] += w * (span > 0 ? (h.score - lo) / span : 1) }
            }
        case let .reciprocalRank(kk):
            for list in [a, b] { for (r, h) in list.enumerated() { total[h.index, default: 0] += 1 / (kk + Float(r + 1)) } }
        }
        return total.map { (index: $0.key, score: $0.value) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }.prefix(k).map { $0 }
    }
}
