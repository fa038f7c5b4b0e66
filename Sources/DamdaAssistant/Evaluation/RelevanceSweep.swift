import DamdaRetrieval
import Foundation

/// What retrieval returns for questions with a known gold document and for questions the
/// documents do not answer: the data for choosing the assistant's relevance gate
/// (`minRelevance`, `minSimilarity`) and the fusion weights on natural, paraphrased questions.
public struct RelevanceProbe: Sendable {
    public var question: String
    /// nil: the documents do not answer it, so the assistant should refuse.
    public var goldDocument: String?
    public var hits: [SearchHit]

    /// 1-based rank of the gold document's best chunk among `hits` (nil: not retrieved).
    public var goldRank: Int? { goldDocument.flatMap { g in hits.firstIndex { $0.chunk.documentID == g }.map { $0 + 1 } } }
}

public enum RelevanceSweep {
    public static func probe(index: SearchIndex, questions: [(question: String, goldDocument: String?)], k: Int,
                             mode: SearchMode) throws -> [RelevanceProbe] {
        try questions.map { q in
            RelevanceProbe(question: q.question, goldDocument: q.goldDocument, hits: try index.search(q.question, k: k, mode: mode))
        }
    }

    public struct GateResult: Sendable, Codable {
        public var minRelevance: Float
        public var minSimilarity: Float?
        /// Answerable questions whose gold document is among the first `within` relevant hits.
        public var goldKept: Double
        /// Answerable questions with at least one relevant hit (the model is called).
        public var answered: Double
        /// Unanswerable questions left with no relevant hit (refused without the model).
        public var refusedUnanswerable: Double
        enum CodingKeys: String, CodingKey {
            case minRelevance = "min_relevance", minSimilarity = "min_similarity", goldKept = "gold_kept"
            case answered, refusedUnanswerable = "refused_unanswerable"
        }
    }

    /// Every pair of thresholds, scored on the probes; `within` is how many relevant hits the
    /// prompt usually holds.
    public static func sweep(_ probes: [RelevanceProbe], minRelevance: [Float], minSimilarity: [Float?], within: Int) -> [GateResult] {
        let answerable = probes.filter { $0.goldDocument != nil }, unanswerable = probes.filter { $0.goldDocument == nil }
        var out: [GateResult] = []
        for r in minRelevance {
            for s in minSimilarity {
                var config = AssistantConfig()
                config.minRelevance = r
                config.minSimilarity = s
                let kept = answerable.filter { p in
                    p.hits.filter { Assistant.isRelevant($0, config: config) }.prefix(within).contains { $0.chunk.documentID == p.goldDocument }
                }.count
                let answered = answerable.filter { p in p.hits.contains { Assistant.isRelevant($0, config: config) } }.count
                let refused = unanswerable.filter { p in !p.hits.contains { Assistant.isRelevant($0, config: config) } }.count
                out.append(GateResult(minRelevance: r, minSimilarity: s,
                                      goldKept: Double(kept) / Double(max(answerable.count, 1)),
                                      answered: Double(answered) / Double(max(answerable.count, 1)),
                                      refusedUnanswerable: Double(refused) / Double(max(unanswerable.count, 1))))
            }
        }
        return out
    }

    /// Share of answerable probes whose gold document ranks within each of `ks`.
    public static func recall(_ probes: [RelevanceProbe], ks: [Int]) -> [Int: Double] {
        let answerable = probes.filter { $0.goldDocument != nil }
        var out: [Int: Double] = [:]
        for k in ks { out[k] = Double(answerable.filter { ($0.goldRank ?? .max) <= k }.count) / Double(max(answerable.count, 1)) }
        return out
    }
}
