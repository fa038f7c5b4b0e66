import DamdaCore
import Foundation

/// Okapi BM25 over an in-memory inverted index built from the store's term frequencies.
/// idf = ln(1 + (N − df + 0.5)/(df + 0.5)) (Lucene's non-negative form).
public struct BM25Index: Sendable {
    /// Okapi's term-frequency saturation `k1` and length normalization `b`.
    /// k1 0.6 rather than the usual 1.2: with Hangul bigrams a repeated bigram says little more than
    /// one occurrence (KorQuAD: R@1 .922 → .931, MRR@10 .952 → .957; flat from 0.5 to 0.8).
    /// Document weight 0.4: a chunk also counts its whole document's match, so a question whose
    /// words are spread over a paragraph's chunks still finds it (KorQuAD, documents ranked by
    /// their best chunk: BM25 R@5 .989 → .991, hybrid .992 → .993, R@1 and MRR unchanged).
    public struct Parameters: Sendable, Equatable {
        public var k1: Float
        public var b: Float
        /// Weight of the chunk's whole document's BM25 score added to the chunk's own (0: off).
        public var documentWeight: Float
        public init(k1: Float = 0.6, b: Float = 0.75, documentWeight: Float = 0.4) {
            self.k1 = k1; self.b = b; self.documentWeight = documentWeight
        }
    }
    public let k1: Float
    public let b: Float
    /// Document-level BM25 over the chunks' documents and each document's chunks, when
    /// `documentWeight` > 0.
    let documentLevel: DocumentLevel?

    /// Document d's chunks are `chunks[start[d]..<start[d + 1]]` (flat arrays: at 100k documents an
    /// array per document cost more than the scoring).
    final class DocumentLevel: Sendable {
        let index: BM25Index, start: [Int32], chunks: [Int32], weight: Float
        init(index: BM25Index, start: [Int32], chunks: [Int32], weight: Float) {
            self.index = index; self.start = start; self.chunks = chunks; self.weight = weight
        }
    }
    let postings: [String: [(doc: Int32, tf: Float)]]
    let lengths: [Float]
    let averageLength: Float
    /// k1 · (1 − b + b · length / average length) per chunk, the length part of each term's score.
    let lengthNorms: [Float]

    /// `documentIDs[i]` is chunk i's document (needed for `documentWeight`).
    public init(termFrequencies: [[String: Int]], documentIDs: [String]? = nil, parameters: Parameters = Parameters()) {
        if let documentIDs, parameters.documentWeight > 0, documentIDs.count == termFrequencies.count {
            var numbers: [String: Int] = [:]
            let documents = documentIDs.map { id in
                if let n = numbers[id] { return n }
                numbers[id] = numbers.count
                return numbers.count - 1
            }
            let n = numbers.count
            var start = [Int32](repeating: 0, count: n + 1)
            for d in documents { start[d + 1] += 1 }
            for d in 0..<n { start[d + 1] += start[d] }
            var fill = start
            var chunks = [Int32](repeating: 0, count: documents.count)
            for (i, d) in documents.enumerated() { chunks[Int(fill[d])] = Int32(i); fill[d] += 1 }
            // A one-chunk document shares its chunk's counts (no copy); others sum theirs.
            var tfs = [[String: Int]](repeating: [:], count: n)
            for d in 0..<n {
                let members = chunks[Int(start[d])..<Int(start[d + 1])]
                if members.count == 1 { tfs[d] = termFrequencies[Int(members.first!)]; continue }
                for c in members { tfs[d].merge(termFrequencies[Int(c)], uniquingKeysWith: +) }
            }
            documentLevel = DocumentLevel(index: BM25Index(termFrequencies: tfs, parameters: Parameters(k1: parameters.k1, b: parameters.b)),
                                          start: start, chunks: chunks, weight: parameters.documentWeight)
        } else {
            documentLevel = nil
        }
        let k1 = parameters.k1, b = parameters.b
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
        let average = lens.isEmpty ? 1 : max(lens.reduce(0, +) / Float(lens.count), 1)
        averageLength = average
        lengthNorms = lens.map { k1 * (1 - b + b * $0 / average) }
    }

    public var count: Int { lengths.count }

    /// Inverse document frequency; a term no chunk holds gets the rarest-term weight.
    public func idf(_ term: String) -> Float {
        let n = Float(lengths.count), df = Float(postings[term]?.count ?? 0)
        return log(1 + (n - df + 0.5) / (df + 0.5))
    }

    /// Every chunk's score (0 where no query term occurs) and the chunks with a term, in first-seen
    /// order. Scores accumulate in a dense array, terms in sorted order so sums are reproducible.
    public func scores(_ queryTerms: [String]) -> (scores: [Float], touched: [Int]) {
        let n = Float(lengths.count)
        var scores = [Float](repeating: 0, count: lengths.count)
        let lists = Set(queryTerms).sorted().compactMap { postings[$0] }
        var touched: [Int] = []
        touched.reserveCapacity(min(lengths.count, lists.reduce(0) { $0 + $1.count }))
        scores.withUnsafeMutableBufferPointer { s in
            lengthNorms.withUnsafeBufferPointer { norms in
                for list in lists {
                    let df = Float(list.count)
                    let weight = log(1 + (n - df + 0.5) / (df + 0.5)) * (k1 + 1)
                    list.withUnsafeBufferPointer { postings in
                        for posting in postings {
                            let d = Int(posting.doc), tf = posting.tf
                            // Every term adds a positive amount, so 0 means "not yet seen".
                            if s[d] == 0 { touched.append(d) }
                            s[d] += weight * tf / (tf + norms[d])
                        }
                    }
                }
            }
        }
        if let level = documentLevel {
            let (documentScores, touchedDocuments) = level.index.scores(queryTerms)
            let weight = level.weight
            scores.withUnsafeMutableBufferPointer { s in
                documentScores.withUnsafeBufferPointer { ds in
                    level.start.withUnsafeBufferPointer { start in
                        level.chunks.withUnsafeBufferPointer { chunks in
                            for d in touchedDocuments {
                                for j in Int(start[d])..<Int(start[d + 1]) {
                                    let c = Int(chunks[j])
                                    if s[c] == 0 { touched.append(c) }
                                    s[c] += weight * ds[d]
                                }
                            }
                        }
                    }
                }
            }
        }
        return (scores, touched)
    }

    /// The `k` best-scoring chunks, highest first. Only the top k are ordered: at 100k chunks a
    /// hash map of scores and a full sort cost ~15 ms a query.
    public func search(_ queryTerms: [String], k: Int, allowed: ((Int) -> Bool)? = nil) -> [(index: Int, score: Float)] {
        var (scores, touched) = scores(queryTerms)
        return Self.top(k, of: &touched, scores: scores, allowed: allowed)
    }

    public static func top(_ k: Int, of touched: inout [Int], scores: [Float], allowed: ((Int) -> Bool)?) -> [(index: Int, score: Float)] {
        if let allowed { touched.removeAll { !allowed($0) } }
        let best = touched.partialTop(k) { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return best.map { (index: $0, score: scores[$0]) }
    }
}
