import DamdaCore
import DamdaEngine

/// Nearest-neighbour search over unit vectors by inner product.
public protocol VectorIndex: Sendable {
    /// What searches ("exact", "hnsw", "pgvector-hnsw"), for reports and /health.
    var kind: String { get }
    var dimension: Int { get }
    var count: Int { get }
    /// Throws only where the vectors live elsewhere (a database that fails to answer).
    func search(_ q: [Float], k: Int, allowed: ((Int) -> Bool)?) throws -> [(index: Int, score: Float)]
    /// The inner product of `q` with each of the given rows (hybrid fusion scores BM25's candidates
    /// with the vector too; hits report their cosine with the question).
    func scores(_ q: [Float], of indices: [Int]) throws -> [Float]
}

/// Inner products of `q` with rows of a contiguous [count × dimension] matrix.
func rowScores(_ q: [Float], of indices: [Int], in vectors: [Float], dimension: Int) -> [Float] {
    guard q.count == dimension, dimension > 0 else { return [Float](repeating: 0, count: indices.count) }
    return vectors.withUnsafeBufferPointer { vp in
        q.withUnsafeBufferPointer { qp in indices.map { dotF32(vp.baseAddress! + $0 * dimension, qp.baseAddress!, dimension) } }
    }
}

extension HNSWIndex: VectorIndex {
    public var kind: String { "hnsw" }
    public func search(_ q: [Float], k: Int, allowed: ((Int) -> Bool)?) -> [(index: Int, score: Float)] {
        search(q, k: k, efSearch: nil, allowed: allowed)
    }

    public func scores(_ q: [Float], of indices: [Int]) -> [Float] { rowScores(q, of: indices, in: vectors, dimension: dimension) }
}

/// Exact inner-product search over a contiguous [count × dimension] matrix of unit vectors.
public struct ExactVectorIndex: VectorIndex {
    public var kind: String { "exact" }
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

    public func scores(_ q: [Float], of indices: [Int]) -> [Float] { rowScores(q, of: indices, in: vectors, dimension: dimension) }

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
