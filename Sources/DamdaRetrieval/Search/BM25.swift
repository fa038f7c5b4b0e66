import Foundation

/// Okapi BM25 over an in-memory inverted index built from the store's term frequencies.
/// idf = ln(1 + (N − df + 0.5)/(df + 0.5)) (Lucene's non-negative form).
public struct BM25Index: Sendable {
    public var k1: Float
    public var b: Float
    let postings: [String: [(doc: Int32, tf: Float)]]
    let lengths: [Float]
    let averageLength: Float

    public init(termFrequencies: [[String: Int]], k1: Float = 1.2, b: Float = 0.75) {
        self.k1 = k1
        self.b = b
        var p: [String: [(doc: Int32, tf: Float)]] = [:]
        var lens: [Float] = []
        lens.reserveCapacity(termFrequencies.count)
        for (i, tfs) in termFrequencies.enumerated() {
            var n = 0
            for (t, c) in tfs { p[t, default: []].append((Int32(i), Float(c))); n += c }
            lens.append(Float(n))
        }
        postings = p
        lengths = lens
        averageLength = lens.isEmpty ? 1 : max(lens.reduce(0, +) / Float(lens.count), 1)
    }

    public var count: Int { lengths.count }

    /// Inverse document frequency; a term no chunk holds gets the rarest-term weight.
    public func idf(_ term: String) -> Float {
        let n = Float(lengths.count), df = Float(postings[term]?.count ?? 0)
        return log(1 + (n - df + 0.5) / (df + 0.5))
    }

    /// Scores of every document with at least one query term, highest first, at most `k`.
    public func search(_ queryTerms: [String], k: Int, allowed: ((Int) -> Bool)? = nil) -> [(index: Int, score: Float)] {
        let n = Float(lengths.count)
        var scores: [Int32: Float] = [:]
        for term in Set(queryTerms) {
            guard let list = postings[term] else { continue }
            let df = Float(list.count)
            let idf = log(1 + (n - df + 0.5) / (df + 0.5))
            for (doc, tf) in list {
                let norm = k1 * (1 - b + b * lengths[Int(doc)] / averageLength)
                scores[doc, default: 0] += idf * tf * (k1 + 1) / (tf + norm)
            }
        }
        var hits = scores.map { (index: Int($0.key), score: $0.value) }
        if let allowed { hits.removeAll { !allowed($0.index) } }
        hits.sort { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
        return Array(hits.prefix(k))
    }
}
