import DamdaRetrieval
import Foundation
import PostgresNIO

/// Where an index over PostgreSQL searches the chunks' vectors.
public enum PostgresVectorSearch: String, Sendable, CaseIterable {
    /// In the database: pgvector's HNSW index over the `embedding` column; no process holds the vectors.
    case database
    /// In each Damda process: the vectors are loaded on open and searched exactly (or by Damda's HNSW).
    case memory
}

/// Nearest neighbours by inner product, computed by PostgreSQL: pgvector's HNSW index over the
/// chunks' embeddings (`embedding::vector(D)`, `vector_ip_ops`). Results are positions in the rows
/// the search index loaded; rows another process added since are skipped until the next reload.
final class PgvectorIndex: VectorIndex, @unchecked Sendable {
    var kind: String { "pgvector-hnsw" }
    let store: PostgresStore
    let dimension: Int
    /// Rows of the loaded chunks that have an embedding.
    let count: Int
    /// Chunk row ids by position, and back.
    let rows: [Int64]
    let position: [Int64: Int]
    /// HNSW's candidate list: the most rows one index scan returns. Deeper requests (a filter that
    /// keeps few rows, a search collapsed to one chunk per document) scan exactly.
    let efSearch: Int

    init(store: PostgresStore, rows: [Int64], dimension: Int, count: Int, efSearch: Int) {
        self.store = store
        self.dimension = dimension
        self.count = count
        self.efSearch = efSearch
        self.rows = rows
        position = Dictionary(rows.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    func search(_ q: [Float], k: Int, allowed: ((Int) -> Bool)?) throws -> [(index: Int, score: Float)] {
        guard q.count == dimension, count > 0, k > 0 else { return [] }
        // A filter is applied to what the database returns: ask for more rows until k pass it.
        let vector = PostgresStore.vectorLiteral(q)
        var limit = k
        while true {
            let nearest = try store.nearestRows(vector, dimension: dimension, limit: limit, efSearch: efSearch)
            var out: [(index: Int, score: Float)] = []
            for (id, negativeProduct) in nearest {
                guard let i = position[id], allowed?(i) ?? true else { continue }
                out.append((index: i, score: Float(-negativeProduct)))
                if out.count == k { return out }
            }
            if nearest.count < limit || limit >= count { return out }
            limit = min(limit * 4, count)
        }
    }

    func scores(_ q: [Float], of indices: [Int]) throws -> [Float] {
        guard q.count == dimension, !indices.isEmpty else { return [Float](repeating: 0, count: indices.count) }
        let ids = indices.map { rows[$0] }
        let products = try store.innerProducts(PostgresStore.vectorLiteral(q), dimension: dimension, rows: ids)
        return ids.map { products[$0].map(Float.init) ?? 0 }
    }
}

extension PostgresStore: VectorSearchingStore {
    public var searchesVectorsInPlace: Bool { vectorSearch == .database }

    public func allChunksWithoutEmbeddings() throws -> [StoredChunk] { try allChunks(embeddings: false) }

    /// The HNSW index is created (once, by whichever process gets there first) when embeddings of
    /// one dimension exist; pgvector keeps it up to date on every later insert.
    public func vectorIndex(rows: [Int64]) throws -> any VectorIndex {
        // The dimension of the most recent embeddings (the model the index is searched with now).
        let dimension = try integer("SELECT vector_dims(embedding)::BIGINT FROM chunks WHERE embedding IS NOT NULL ORDER BY id DESC LIMIT 1")
        guard dimension > 0 else { return ExactVectorIndex(dimension: 0, rows: []) }
        try execute(inOneTransaction: [
            // Partial: a row of another dimension (another embedding model) is neither cast nor indexed.
            "CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_\(dimension) ON chunks USING hnsw ((\(Self.indexedVector(dimension).column)) vector_ip_ops) WHERE \(Self.ofDimension(dimension))",
        ])
        let embedded = try integer("SELECT COUNT(*)::BIGINT FROM chunks WHERE \(unescaped: Self.ofDimension(dimension)) AND id = ANY(\(rows))")
        return PgvectorIndex(store: self, rows: rows, dimension: dimension, count: embedded, efSearch: hnswEfSearch)
    }

    /// The indexed expression and the cast a bound vector needs to be compared with it (`<#>`), as the
    /// HNSW index `chunks_embedding_hnsw_<dimension>` is built over it.
    static func indexedVector(_ dimension: Int) -> (column: String, cast: String) {
        ("embedding::vector(\(dimension))", "::vector(\(dimension))")
    }

    /// Only rows the partial index holds.
    static func ofDimension(_ dimension: Int) -> String { "vector_dims(embedding) = \(dimension)" }

    /// The `limit` rows nearest to `vector` with their negative inner product (pgvector's `<#>`).
    /// Within HNSW's candidate list the index answers; deeper, the database scans every row.
    func nearestRows(_ vector: String, dimension: Int, limit: Int, efSearch: Int) throws -> [(Int64, Double)] {
        try blocking { [client, logger] in
            try await client.withTransaction(logger: logger) { c in
                if limit <= efSearch {
                    try await c.query("SELECT set_config('hnsw.ef_search', \(String(efSearch)), true)", logger: logger)
                } else {
                    try await c.query("SELECT set_config('enable_indexscan', 'off', true)", logger: logger)
                }
                let (column, cast) = Self.indexedVector(dimension)
                let rows = try await c.query("""
                    SELECT id, \(unescaped: column) <#> \(vector)\(unescaped: cast)
                    FROM chunks WHERE \(unescaped: Self.ofDimension(dimension))
                    ORDER BY \(unescaped: column) <#> \(vector)\(unescaped: cast) LIMIT \(Int64(limit))
                    """, logger: logger)
                var out: [(Int64, Double)] = []
                for try await (id, d) in rows.decode((Int64, Double).self) { out.append((id, d)) }
                return out
            }
        }
    }

    /// Inner products of `vector` with the given rows' embeddings.
    func innerProducts(_ vector: String, dimension: Int, rows: [Int64]) throws -> [Int64: Double] {
        try blocking { [client, logger] in
            var out: [Int64: Double] = [:]
            let (column, cast) = Self.indexedVector(dimension)
            let result = try await client.query("""
                SELECT id, (\(unescaped: column) <#> \(vector)\(unescaped: cast)) * -1
                FROM chunks WHERE \(unescaped: Self.ofDimension(dimension)) AND id = ANY(\(rows))
                """, logger: logger)
            for try await (id, p) in result.decode((Int64, Double).self) { out[id] = p }
            return out
        }
    }

    /// How the planner answers a nearest-neighbour query (`EXPLAIN`), to show that the HNSW index serves it.
    public func vectorSearchPlan(dimension: Int) throws -> String {
        let zero = PostgresStore.vectorLiteral([Float](repeating: 0, count: dimension))
        let (column, cast) = Self.indexedVector(dimension)
        return try blocking { [client, logger] in
            try await client.withTransaction(logger: logger) { c in
                try await c.query("SELECT set_config('enable_seqscan', 'off', true)", logger: logger)
                let rows = try await c.query("""
                    EXPLAIN SELECT id FROM chunks WHERE \(unescaped: Self.ofDimension(dimension))
                    ORDER BY \(unescaped: column) <#> \(zero)\(unescaped: cast) LIMIT 5
                    """, logger: logger)
                var lines: [String] = []
                for try await line in rows.decode(String.self) { lines.append(line) }
                return lines.joined(separator: "\n")
            }
        }
    }
}
