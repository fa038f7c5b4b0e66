import DamdaEngine

/// Turns queries and passages into L2-normalized vectors.
public protocol Embedder: Sendable {
    var name: String { get }
    var dimension: Int { get }
    func embed(passages: [String]) -> [[Float]]
    func embed(query: String) -> [Float]
}

/// multilingual-e5-small through the engine; e5 expects "query: " / "passage: " prefixes.
public struct E5Embedder: Embedder, @unchecked Sendable {
    public let encoder: E5Encoder
    public let name = "multilingual-e5-small"
    public var dimension: Int { encoder.dimension }
    public init(path: String, threads: Int, arithmetic: E5Arithmetic = .int8) throws {
        encoder = try E5Encoder(path: path, threads: threads, arithmetic: arithmetic)
    }
    public func embed(passages: [String]) -> [[Float]] { encoder.embed(passages.map { "passage: " + $0 }) }
    public func embed(query: String) -> [Float] { encoder.embed(["query: " + query])[0] }
}

/// Nearest-neighbour search over unit vectors by inner product.
public protocol VectorIndex: Sendable {
    var dimension: Int { get }
    var count: Int { get }
    func search(_ q: [Float], k: Int, allowed: ((Int) -> Bool)?) -> [(index: Int, score: Float)]
}

extension HNSWIndex: VectorIndex {
    public func search(_ q: [Float], k: Int, allowed: ((Int) -> Bool)?) -> [(index: Int, score: Float)] {
        search(q, k: k, efSearch: nil, allowed: allowed)
    }
}

/// Exact inner-product search over a contiguous [count × dimension] matrix of unit vectors.
public struct ExactVectorIndex: VectorIndex {
    public let dimension: Int
    var vectors: [Float] = []
    public var count: Int { dimension == 0 ? 0 : vectors.count / dimension }

    public init(dimension: Int, rows: [[Float]]) {
        self.dimension = dimension
        vectors.reserveCapacity(rows.count * dimension)
        for r in rows { vectors += r.count == dimension ? r : [Float](repeating: 0, count: dimension) }
    }

    public init(dimension: Int, flat: [Float]) { self.dimension = dimension; vectors = flat }

    /// The rows as one [count × dimension] array (what HNSW is built over).
    public var flat: [Float] { vectors }

    public func search(_ q: [Float], k: Int, allowed: ((Int) -> Bool)? = nil) -> [(index: Int, score: Float)] {
        guard q.count == dimension, count > 0 else { return [] }
        var scores = [Float](repeating: 0, count: count)
        vectors.withUnsafeBufferPointer { vp in
            q.withUnsafeBufferPointer { qp in
                for i in 0..<count { scores[i] = dotF32(vp.baseAddress! + i * dimension, qp.baseAddress!, dimension) }
            }
        }
        var idx = Array(0..<count)
        if let allowed { idx.removeAll { !allowed($0) } }
        let top = idx.partialTop(k) { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        return top.map { (index: $0, score: scores[$0]) }
    }
}

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
