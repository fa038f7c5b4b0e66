import DamdaAssistant
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
            RelevanceProbe(question: q.question, goldDocument: q.goldDocument, hits: try index.search(q.question, k: k, mode: mode).hits)
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
        /// No similarity gate is written as 0, as the `--min-similarity` option spells it.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(minRelevance, forKey: .minRelevance); try c.encode(minSimilarity ?? 0, forKey: .minSimilarity)
            try c.encode(goldKept, forKey: .goldKept); try c.encode(answered, forKey: .answered)
            try c.encode(refusedUnanswerable, forKey: .refusedUnanswerable)
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

/// `damda bench relevance`: gold-document recall per fusion weight and single mode, and the
/// relevance gate's trade-off per threshold pair, on answerable and off-domain questions.
public struct RelevanceEvaluation {
    public var k = 10
    /// Relevant hits the prompt usually holds (for gold_kept).
    public var within = 3
    public var bm25Weights: [Float] = [0.6, 0.5, 0.4, 0.3]
    public var minRelevance: [Float] = [0.2, 0.3, 0.4, 0.5]
    /// nil: lexical relevance alone.
    public var minSimilarity: [Float?] = [nil, 0.86, 0.87, 0.88, 0.89, 0.90]
    public init() {}

    public func run(index: SearchIndex, questions: [EvalQuestion]) throws -> RelevanceReport {
        let pairs = questions.map { (question: $0.question, goldDocument: $0.documentID) }
        let saved = index.fusion
        defer { index.fusion = saved }
        var fusion: [RelevanceReport.Recall] = []
        for w in bm25Weights {
            index.fusion = .weighted(bm25: w, vector: 1 - w)
            fusion.append(.init(bm25Weight: w, RelevanceSweep.recall(try RelevanceSweep.probe(index: index, questions: pairs, k: k, mode: .hybrid), ks: [1, 3, 5, 10])))
        }
        index.fusion = saved
        var single: [RelevanceReport.Recall] = []
        for mode in [SearchMode.bm25, .vector] {
            single.append(.init(mode: mode.rawValue, RelevanceSweep.recall(try RelevanceSweep.probe(index: index, questions: pairs, k: k, mode: mode), ks: [1, 3, 5, 10])))
        }
        index.fusion = .default
        let probes = try RelevanceSweep.probe(index: index, questions: pairs, k: k, mode: .hybrid)
        let gates = RelevanceSweep.sweep(probes, minRelevance: minRelevance, minSimilarity: minSimilarity, within: within)
        let perQuestion = probes.map { p in
            RelevanceReport.Question(question: p.question, gold: p.goldDocument, goldRank: p.goldRank,
                                     top: p.hits.prefix(3).map { .init(documentID: $0.chunk.documentID, relevance: Double($0.relevance),
                                                                       similarity: $0.similarity.map(Double.init) ?? 0) })
        }
        return RelevanceReport(answerable: pairs.filter { $0.goldDocument != nil }.count, unanswerable: pairs.filter { $0.goldDocument == nil }.count,
                               k: k, within: within, fusion: fusion, singleModes: single, gates: gates, questions: perQuestion)
    }
}

public struct RelevanceReport: Codable, Sendable {
    public var answerable: Int
    public var unanswerable: Int
    public var k: Int
    public var within: Int
    /// Hybrid recall per BM25 weight.
    public var fusion: [Recall]
    /// BM25 and vector alone.
    public var singleModes: [Recall]
    public var gates: [RelevanceSweep.GateResult]
    public var questions: [Question]

    enum CodingKeys: String, CodingKey { case answerable, unanswerable, k, within, fusion, gates, questions, singleModes = "single_modes" }

    public struct Recall: Codable, Sendable {
        /// Hybrid rows: the BM25 weight; single-mode rows: the mode.
        public var bm25Weight: Float?
        public var mode: String?
        public var recallAt1: Double, recallAt3: Double, recallAt5: Double, recallAt10: Double
        init(bm25Weight: Float? = nil, mode: String? = nil, _ r: [Int: Double]) {
            self.bm25Weight = bm25Weight; self.mode = mode
            recallAt1 = r[1] ?? 0; recallAt3 = r[3] ?? 0; recallAt5 = r[5] ?? 0; recallAt10 = r[10] ?? 0
        }
        enum CodingKeys: String, CodingKey {
            case mode, bm25Weight = "bm25_weight", recallAt1 = "recall_at_1", recallAt3 = "recall_at_3", recallAt5 = "recall_at_5", recallAt10 = "recall_at_10"
        }
    }

    public struct Question: Codable, Sendable {
        public var question: String
        public var gold: String?
        public var goldRank: Int?
        public var top: [Top]
        enum CodingKeys: String, CodingKey { case question, gold, top, goldRank = "gold_rank" }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(question, forKey: .question); try c.encode(gold, forKey: .gold)   // null, not absent
            try c.encode(goldRank, forKey: .goldRank); try c.encode(top, forKey: .top)
        }
    }

    public struct Top: Codable, Sendable {
        public var documentID: String, relevance: Double, similarity: Double
        enum CodingKeys: String, CodingKey { case relevance, similarity, documentID = "document_id" }
    }
}
