/// A query's topic terms weighted by IDF, and the relevance rules built on them: how much of the
/// query a chunk, a sentence or an answer covers. Made by the index (its analyzer, its BM25
/// statistics) and returned with every search, so callers never reach back into retrieval.
public struct QueryTerms: Sendable {
    public let query: String
    /// Each word's leading analyzed term (a Hangul word's stem bigram, not its particle) with its
    /// IDF. Ending bigrams such as 하면/나요 are rare in documents, so scoring every term would
    /// make even a good match look irrelevant.
    public let weights: [String: Float]
    let analyzer: any TextAnalyzer
    let statistics: BM25Index

    init(_ query: String, analyzer: any TextAnalyzer, statistics: BM25Index) {
        self.query = query; self.analyzer = analyzer; self.statistics = statistics
        var w: [String: Float] = [:]
        for word in query.split(whereSeparator: { $0.isWhitespace }) {
            guard let t = analyzer.terms(String(word)).first, !Self.questionWords.contains(where: { t.hasPrefix($0) }) else { continue }
            w[t] = statistics.idf(t)
        }
        weights = w
    }

    /// Question words and light verbs carry no topic ("얼마 받나요", "어떻게 되나요").
    static let questionWords = ["얼마", "어떻", "어떤", "어느", "무엇", "무슨", "뭐", "뭔", "언제", "어디", "누구", "누가", "왜", "몇",
                                "있나", "있는", "있을", "있습", "없나", "되나", "되는", "하나", "하는", "할까", "합니", "받나", "받을",
                                "인가", "입니", "알려", "해주", "주세", "나요", "가요", "그럼", "그러", "그리"]

    /// Another text's terms under the same analyzer and statistics (an answer, to see which
    /// chunk it draws on).
    public func terms(of text: String) -> QueryTerms { QueryTerms(text, analyzer: analyzer, statistics: statistics) }

    /// IDF-weighted share of the query's terms that occur in `termFrequencies` (a chunk's).
    public func coverage(of termFrequencies: [String: Int]) -> Float {
        let total = weights.values.reduce(0, +)
        guard total > 0 else { return 0 }
        return weights.reduce(0) { $0 + (termFrequencies[$1.key] != nil ? $1.value : 0) } / total
    }

    /// Coverage of the query's terms in an arbitrary text (a sentence, an answer).
    public func coverage(in text: String) -> Float { coverage(of: analyzer.termFrequencies(text)) }

    /// Index of the sentence with the highest coverage (the first on ties; 0 for none).
    public func bestSentence(_ sentences: [String]) -> Int {
        var best = 0
        var bestScore: Float = -1
        for (i, s) in sentences.enumerated() {
            let score = coverage(in: s)
            if score > bestScore { best = i; bestScore = score }
        }
        return best
    }
}

extension TextAnalyzer {
    /// Each analyzed term with its count.
    func termFrequencies(_ text: String) -> [String: Int] {
        var tf: [String: Int] = [:]
        for t in terms(text) { tf[t, default: 0] += 1 }
        return tf
    }
}
