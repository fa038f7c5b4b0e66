import Foundation

/// Ranking metrics for one relevant document per question (KorQuAD's gold paragraph).
public enum RetrievalMetrics {
    /// 1 when the gold document ranks within k (1-based rank; nil: not retrieved).
    public static func recall(rank: Int?, k: Int) -> Double { (rank ?? .max) <= k ? 1 : 0 }

    /// Reciprocal rank within the first k (0 beyond it).
    public static func reciprocalRank(rank: Int?, k: Int = 10) -> Double {
        guard let r = rank, r <= k else { return 0 }
        return 1 / Double(r)
    }

    /// nDCG@k with binary relevance and one relevant item: 1 / log2(rank + 1), the ideal DCG being 1.
    public static func ndcg(rank: Int?, k: Int = 10) -> Double {
        guard let r = rank, r <= k else { return 0 }
        return 1 / log2(Double(r) + 1)
    }
}

/// Refusal as a classifier: the positive class is "답변을 찾을 수 없습니다.", which is right for
/// questions the documents do not answer.
public enum RefusalMetrics {
    public struct Counts: Sendable, Equatable {
        public var truePositives = 0, falsePositives = 0, falseNegatives = 0
        public init() {}
        public var precision: Double { truePositives + falsePositives == 0 ? 0 : Double(truePositives) / Double(truePositives + falsePositives) }
        public var recall: Double { truePositives + falseNegatives == 0 ? 0 : Double(truePositives) / Double(truePositives + falseNegatives) }
        public var f1: Double { precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall) }
    }

    public static func counts(_ outcomes: [(refused: Bool, shouldRefuse: Bool)]) -> Counts {
        var c = Counts()
        for o in outcomes {
            if o.refused && o.shouldRefuse { c.truePositives += 1 }
            if o.refused && !o.shouldRefuse { c.falsePositives += 1 }
            if !o.refused && o.shouldRefuse { c.falseNegatives += 1 }
        }
        return c
    }
}
