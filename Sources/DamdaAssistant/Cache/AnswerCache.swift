import DamdaRetrieval
import Foundation
import GRDB

/// How the answer cache behaves: which lookups run, how long entries live, how much they may take.
public struct AnswerCacheSettings: Sendable, Equatable {
    /// Same normalized question and settings: on by default.
    public var exact = true
    /// A different wording of a cached question (e5 cosine at least `semanticThreshold` and the same
    /// `QuestionSignature`): opt-in.
    public var semantic = false
    /// Chosen with `damda bench cache` on `evals/cache-paraphrases.jsonl` and `evals/cache-near-misses.jsonl`.
    public var semanticThreshold: Float = 0.95
    /// Entries older than this are not served (and are deleted when met).
    public var ttl: TimeInterval = 7 * 24 * 3600
    /// Least recently used entries go once the cache's answers and vectors take more than this.
    public var maxBytes = 64 << 20
    /// Sampled answers (temperature > 0) are meant to vary: they are neither served from nor
    /// stored in the cache unless this is set.
    public var cacheSampled = false
    public init() {}
}

/// Where an answer came from, as `"cache"` in the answer JSON and the `X-Damda-Cache` header.
public enum CacheHit: String, Sendable, Codable { case exact, semantic }

/// What the cache did, for counters (`/metrics`).
public enum AnswerCacheEvent: Sendable, Equatable {
    case hit(CacheHit)
    case miss
    /// The request was not eligible (history, sampling, personal data, flagged injection).
    case bypass
    case stored
    /// Entries removed: "document" (a source changed or went), "ttl", "lru", "clear".
    case evicted(reason: String, count: Int)
}

/// Answers served before, kept in the index's own store so a restart keeps them. Each entry records
/// the documents (and their content hashes) of every chunk its prompt held: it is served only while
/// those documents are unchanged, and evicted as soon as an ingest changes or removes one. A refusal
/// depends on the whole index (a new document may hold the answer), so any change evicts it.
public final class AnswerCache: @unchecked Sendable {
    /// One cached answer with what it depends on.
    public struct Entry: Sendable {
        public internal(set) var key: String
        public internal(set) var settings: String
        public internal(set) var question: String
        public internal(set) var signature: QuestionSignature
        public internal(set) var embedding: [Float]
        var answer: Data
        /// Document id → content hash of every chunk the prompt held.
        public internal(set) var sources: [String: String]
        /// The index's content version when stored (a refusal is valid only while it holds).
        public internal(set) var contentVersion: String
        public internal(set) var refused: Bool
        public internal(set) var createdAt: Date
        public internal(set) var usedAt: Date
        var bytes: Int { answer.count + embedding.count * 4 + question.utf8.count + 256 }
    }

    let db: any DatabaseWriter
    let lock = NSLock()
    var entries: [String: Entry] = [:]
    var totalBytes = 0
    /// Hits whose last-used time is not written yet: written with the next store, so a hit costs no write.
    var touched: Set<String> = []
    public var onEvent: @Sendable (AnswerCacheEvent) -> Void = { _ in }

    public init(database: any DatabaseWriter) throws {
        db = database
        try Self.migrator.migrate(db)
        try load()
    }

    public convenience init(path: String) throws {
        try self.init(database: try DatabasePool(path: path))
    }

    /// The cache of `index`: in its SQLite database, or `cache.sqlite` in its directory (PostgreSQL),
    /// evicting entries whenever the index's documents change.
    public convenience init(beside index: SearchIndex) throws {
        try self.init(database: try index.sqliteDatabase(orFile: "cache.sqlite"))
        index.observeChanges { [weak self] change in _ = try? self?.invalidate(change) }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v4-answer-cache") { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS answer_cache (
                    key TEXT PRIMARY KEY, settings TEXT NOT NULL, question TEXT NOT NULL, signature TEXT NOT NULL,
                    embedding BLOB, answer BLOB NOT NULL, sources TEXT NOT NULL, content_version TEXT NOT NULL,
                    refused INTEGER NOT NULL, created_at REAL NOT NULL, used_at REAL NOT NULL);
                """)
        }
        return m
    }

    func load() throws {
        let decoder = JSONDecoder()
        let rows = try db.read { try Row.fetchAll($0, sql: "SELECT * FROM answer_cache") }
        for r in rows {
            // A row that no longer decodes (written by an older build, or by hand) is skipped, not fatal.
            guard let signature = try? decoder.decode(QuestionSignature.self, from: Data((r["signature"] as String).utf8)),
                  let sources = try? decoder.decode([String: String].self, from: Data((r["sources"] as String).utf8)) else { continue }
            let blob: Data? = r["embedding"]
            let e = Entry(key: r["key"], settings: r["settings"], question: r["question"], signature: signature,
                          embedding: blob.map { b in b.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } } ?? [],
                          answer: r["answer"], sources: sources, contentVersion: r["content_version"], refused: (r["refused"] as Int) != 0,
                          createdAt: Date(timeIntervalSince1970: r["created_at"]), usedAt: Date(timeIntervalSince1970: r["used_at"]))
            entries[e.key] = e
            totalBytes += e.bytes
        }
    }

    public var count: Int { lock.withLock { entries.count } }
    public var bytes: Int { lock.withLock { totalBytes } }

    /// The cached answer for `key` (exact) or, with `semantic`, for the closest question under the
    /// same settings whose signature matches; nil on a miss. `isCurrent` says whether an entry's
    /// sources are still what the index holds; stale and expired entries met here are deleted.
    public func lookup(key: CacheKey, question: String, embedding: [Float]?, settings: AnswerCacheSettings,
                isCurrent: (Entry) -> Bool, now: Date = Date()) -> (answer: AssistantAnswer, hit: CacheHit)? {
        var stale: [(String, String)] = []
        defer { if !stale.isEmpty { remove(stale) } }
        let found: (Entry, CacheHit)? = lock.withLock {
            func usable(_ e: Entry) -> Bool {
                if now.timeIntervalSince(e.createdAt) > settings.ttl { stale.append((e.key, "ttl")); return false }
                if !isCurrent(e) { stale.append((e.key, "document")); return false }
                return true
            }
            if settings.exact, let e = entries[key.value], usable(e) { return (e, .exact) }
            guard settings.semantic, let q = embedding, !q.isEmpty else { return nil }
            let signature = QuestionSignature(question)
            var candidates: [(Float, Entry)] = []
            for e in entries.values where e.settings == key.settings && e.embedding.count == q.count {
                var dot: Float = 0
                for i in q.indices { dot += q[i] * e.embedding[i] }
                if dot >= settings.semanticThreshold { candidates.append((dot, e)) }
            }
            for (_, e) in candidates.sorted(by: { $0.0 > $1.0 }) where e.signature.matches(signature) && usable(e) { return (e, .semantic) }
            return nil
        }
        guard let (entry, hit) = found, var answer = try? JSONDecoder().decode(AssistantAnswer.self, from: entry.answer) else {
            onEvent(.miss)
            return nil
        }
        lock.withLock {
            entries[entry.key]?.usedAt = now
            touched.insert(entry.key)
        }
        answer.cache = hit
        onEvent(.hit(hit))
        return (answer, hit)
    }

    /// Keeps `answer` under `key`, then trims the cache to `maxBytes` by least recent use.
    public func store(key: CacheKey, question: String, embedding: [Float]?, answer: AssistantAnswer, sources: [String: String],
               contentVersion: String, settings: AnswerCacheSettings, now: Date = Date()) throws {
        let encoder = JSONEncoder()
        var stored = answer
        stored.cache = nil
        let e = Entry(key: key.value, settings: key.settings, question: CacheKey.normalize(question), signature: QuestionSignature(question),
                      embedding: embedding ?? [], answer: try encoder.encode(stored), sources: sources, contentVersion: contentVersion,
                      refused: answer.refused, createdAt: now, usedAt: now)
        let (evict, used): ([String], [(String, Date)]) = lock.withLock {
            if let old = entries[e.key] { totalBytes -= old.bytes }
            entries[e.key] = e
            totalBytes += e.bytes
            var evict: [String] = []
            if totalBytes > settings.maxBytes {
                for old in entries.values.sorted(by: { $0.usedAt < $1.usedAt }) where old.key != e.key {
                    evict.append(old.key)
                    totalBytes -= old.bytes
                    if totalBytes <= settings.maxBytes { break }
                }
                for k in evict { entries[k] = nil }
            }
            let used = touched.compactMap { k in entries[k].map { (k, $0.usedAt) } }
            touched = []
            return (evict, used)
        }
        let signature = String(decoding: try encoder.encode(e.signature), as: UTF8.self)
        let sourcesJSON = String(decoding: try encoder.encode(e.sources), as: UTF8.self)
        let vector: Data? = e.embedding.isEmpty ? nil : e.embedding.withUnsafeBytes { Data($0) }
        try db.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO answer_cache (key, settings, question, signature, embedding, answer, sources, content_version, refused, created_at, used_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [e.key, e.settings, e.question, signature, vector, e.answer, sourcesJSON, e.contentVersion, e.refused ? 1 : 0,
                                 now.timeIntervalSince1970, now.timeIntervalSince1970])
            for k in evict { try db.execute(sql: "DELETE FROM answer_cache WHERE key = ?", arguments: [k]) }
            for (k, t) in used { try db.execute(sql: "UPDATE answer_cache SET used_at = ? WHERE key = ?", arguments: [t.timeIntervalSince1970, k]) }
        }
        onEvent(.stored)
        if !evict.isEmpty { onEvent(.evicted(reason: "lru", count: evict.count)) }
    }

    /// Evicts what a change to the index makes stale: every entry whose prompt held a changed or
    /// removed document, and every refusal (an added document may answer it). Returns how many.
    @discardableResult
    public func invalidate(_ change: IndexChange) throws -> Int {
        let gone = change.changed.union(change.removed)
        let keys: [(String, String)] = lock.withLock {
            entries.values.filter { e in e.refused || e.sources.keys.contains { gone.contains($0) } }.map { ($0.key, "document") }
        }
        remove(keys)
        return keys.count
    }

    /// Deletes every entry.
    public func clear() throws {
        let n = lock.withLock { () -> Int in
            let n = entries.count
            entries = [:]; totalBytes = 0; touched = []
            return n
        }
        try db.write { try $0.execute(sql: "DELETE FROM answer_cache") }
        if n > 0 { onEvent(.evicted(reason: "clear", count: n)) }
    }

    /// Removes entries by key, counting them by reason.
    func remove(_ keys: [(key: String, reason: String)]) {
        guard !keys.isEmpty else { return }
        lock.withLock {
            for (k, _) in keys { if let e = entries.removeValue(forKey: k) { totalBytes -= e.bytes } }
        }
        try? db.write { db in for (k, _) in keys { try db.execute(sql: "DELETE FROM answer_cache WHERE key = ?", arguments: [k]) } }
        for reason in Set(keys.map(\.reason)) { onEvent(.evicted(reason: reason, count: keys.filter { $0.reason == reason }.count)) }
    }
}
