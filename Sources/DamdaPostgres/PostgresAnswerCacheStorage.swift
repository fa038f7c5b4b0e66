import DamdaAssistant
import DamdaRetrieval
import Foundation
import PostgresNIO

/// The answer cache in PostgreSQL, beside a `--store postgres://…` index: every lookup reads the
/// database, so an answer one server stored is a hit on every server, and an eviction (a changed
/// document, TTL, LRU, clear) is gone for all of them at once. Vectors are compared in Damda, not
/// in the database, so the server needs no extension.
public final class PostgresAnswerCacheStorage: AnswerCacheStorage, @unchecked Sendable {
    let store: PostgresStore
    typealias Row = (String, String, String, String, ByteBuffer?, ByteBuffer, String, String, Bool, Double, Double)

    public init(store: PostgresStore) throws {
        self.store = store
        try store.execute(inOneTransaction: [
            """
            CREATE TABLE IF NOT EXISTS damda_answer_cache (
                key TEXT PRIMARY KEY, settings TEXT NOT NULL, question TEXT NOT NULL, signature TEXT NOT NULL,
                embedding BYTEA, answer BYTEA NOT NULL, sources TEXT NOT NULL, content_version TEXT NOT NULL,
                refused BOOLEAN NOT NULL, bytes BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL, used_at DOUBLE PRECISION NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS damda_answer_cache_settings ON damda_answer_cache(settings)",
        ])
    }

    static func entry(_ r: Row) -> AnswerCache.Entry? {
        let (key, settings, question, signature, embedding, answer, sources, version, refused, created, used) = r
        return AnswerCacheColumns.entry(key: key, settings: settings, question: question, signature: signature,
                                        embedding: embedding.map { Data($0.readableBytesView) }, answer: Data(answer.readableBytesView),
                                        sources: sources, contentVersion: version, refused: refused, createdAt: created, usedAt: used)
    }

    func fetch(_ query: PostgresQuery) throws -> [AnswerCache.Entry] {
        try store.blocking { [client = store.client, logger = store.logger] in
            var out: [AnswerCache.Entry] = []
            let rows = try await client.query(query, logger: logger)
            for try await r in rows.decode(Row.self) { if let e = Self.entry(r) { out.append(e) } }
            return out
        }
    }

    public func entry(key: String) throws -> AnswerCache.Entry? {
        try fetch("SELECT key, settings, question, signature, embedding, answer, sources, content_version, refused, created_at, used_at FROM damda_answer_cache WHERE key = \(key)").first
    }

    public func entries(settings: String) throws -> [AnswerCache.Entry] {
        try fetch("SELECT key, settings, question, signature, embedding, answer, sources, content_version, refused, created_at, used_at FROM damda_answer_cache WHERE settings = \(settings)")
    }

    public func put(_ e: AnswerCache.Entry, maxBytes: Int) throws -> [String] {
        let signature = try AnswerCacheColumns.text(e.signature), sources = try AnswerCacheColumns.text(e.sources)
        let vector = AnswerCacheColumns.vector(e.embedding).map { ByteBuffer(bytes: $0) }
        let answer = ByteBuffer(bytes: e.answer)
        let (created, used, size) = (e.createdAt.timeIntervalSince1970, e.usedAt.timeIntervalSince1970, Int64(e.bytes))
        return try store.blocking { [client = store.client, logger = store.logger] in
            try await client.withTransaction(logger: logger) { c in
                try await c.query("""
                    INSERT INTO damda_answer_cache (key, settings, question, signature, embedding, answer, sources, content_version, refused, bytes, created_at, used_at)
                    VALUES (\(e.key), \(e.settings), \(e.question), \(signature), \(vector), \(answer), \(sources), \(e.contentVersion), \(e.refused), \(size), \(created), \(used))
                    ON CONFLICT (key) DO UPDATE SET settings = EXCLUDED.settings, question = EXCLUDED.question, signature = EXCLUDED.signature,
                        embedding = EXCLUDED.embedding, answer = EXCLUDED.answer, sources = EXCLUDED.sources, content_version = EXCLUDED.content_version,
                        refused = EXCLUDED.refused, bytes = EXCLUDED.bytes, created_at = EXCLUDED.created_at, used_at = EXCLUDED.used_at
                    """, logger: logger)
                // Least recently used first, until everything left fits (the entry just stored stays).
                let rows = try await c.query("""
                    SELECT key FROM (
                        SELECT key, SUM(bytes) OVER (ORDER BY used_at DESC, key) AS kept FROM damda_answer_cache WHERE key <> \(e.key)
                    ) r WHERE kept + \(size) > \(Int64(maxBytes))
                    """, logger: logger)
                var evict: [String] = []
                for try await k in rows.decode(String.self) { evict.append(k) }
                if !evict.isEmpty { try await c.query("DELETE FROM damda_answer_cache WHERE key = ANY(\(evict))", logger: logger) }
                return evict
            }
        }
    }

    public func touch(key: String, at: Date) throws {
        let t = at.timeIntervalSince1970
        try store.blocking { [client = store.client, logger = store.logger] in
            try await client.query("UPDATE damda_answer_cache SET used_at = GREATEST(used_at, \(t)) WHERE key = \(key)", logger: logger)
        }
    }

    public func keys(refusedOrCiting documents: Set<String>) throws -> [String] {
        let rows = try store.blocking { [client = store.client, logger = store.logger] in
            var out: [(String, Bool, String)] = []
            let rows = try await client.query("SELECT key, refused, sources FROM damda_answer_cache", logger: logger)
            for try await r in rows.decode((String, Bool, String).self) { out.append(r) }
            return out
        }
        let decoder = JSONDecoder()
        return rows.compactMap { key, refused, sources in
            if refused { return key }
            guard let src = try? decoder.decode([String: String].self, from: Data(sources.utf8)) else { return key }   // unreadable: evict
            return src.keys.contains { documents.contains($0) } ? key : nil
        }
    }

    public func remove(_ keys: [String]) throws -> Int {
        keys.isEmpty ? 0 : try store.rowCount("DELETE FROM damda_answer_cache WHERE key = ANY(\(keys)) RETURNING key")
    }

    public func removeAll() throws -> Int { try store.rowCount("DELETE FROM damda_answer_cache RETURNING key") }
    public func count() throws -> Int { try store.integer("SELECT COUNT(*) FROM damda_answer_cache") }
    public func bytes() throws -> Int { try store.integer("SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM damda_answer_cache") }
}

/// The answer cache of `index`: in its PostgreSQL database when its chunks live there (shared by
/// every server on that database), else in its SQLite file; either way evicted when its documents change.
public func answerCache(beside index: SearchIndex) throws -> AnswerCache {
    guard let pg = index.store as? PostgresStore else { return try AnswerCache(beside: index) }
    let cache = AnswerCache(storage: try PostgresAnswerCacheStorage(store: pg))
    cache.observe(index)
    return cache
}
