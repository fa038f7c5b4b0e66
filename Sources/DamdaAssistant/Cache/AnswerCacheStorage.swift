import Foundation
import GRDB

/// Where cached answers live. `AnswerCache` holds the rules (keys, TTL, sources still current,
/// signatures, LRU bound); a storage keeps entries. SQLite keeps a copy of every entry in memory
/// (a hit costs no query); PostgreSQL answers every lookup from the database, so servers sharing it
/// see each other's answers and evictions at once.
public protocol AnswerCacheStorage: Sendable {
    func entry(key: String) throws -> AnswerCache.Entry?
    /// Entries stored under `settings` (the semantic lookup's candidates).
    func entries(settings: String) throws -> [AnswerCache.Entry]
    /// Stores `entry` (replacing one with its key), then removes least recently used entries while
    /// all of them take more than `maxBytes`; returns the keys removed.
    func put(_ entry: AnswerCache.Entry, maxBytes: Int) throws -> [String]
    /// Records a hit's time of use.
    func touch(key: String, at: Date) throws
    /// Keys of refused entries and of entries whose prompt held one of `documents`.
    func keys(refusedOrCiting documents: Set<String>) throws -> [String]
    /// Removes entries; returns how many existed.
    @discardableResult func remove(_ keys: [String]) throws -> Int
    /// Removes every entry; returns how many there were.
    @discardableResult func removeAll() throws -> Int
    func count() throws -> Int
    func bytes() throws -> Int
}

/// Column codecs both storages use (SQLite here, PostgreSQL in DamdaPostgres).
public enum AnswerCacheColumns {
    static let encoder: JSONEncoder = { let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]; return e }()
    public static func vector(_ v: [Float]) -> Data? { v.isEmpty ? nil : v.withUnsafeBytes { Data($0) } }
    public static func floats(_ d: Data?) -> [Float] { d.map { b in b.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } } ?? [] }
    public static func text<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
    /// A row that no longer decodes (written by an older build, or by hand) is skipped, not fatal.
    public static func entry(key: String, settings: String, question: String, signature: String, embedding: Data?, answer: Data, sources: String,
                      contentVersion: String, refused: Bool, createdAt: Double, usedAt: Double) -> AnswerCache.Entry? {
        let decoder = JSONDecoder()
        guard let sig = try? decoder.decode(QuestionSignature.self, from: Data(signature.utf8)),
              let src = try? decoder.decode([String: String].self, from: Data(sources.utf8)) else { return nil }
        return AnswerCache.Entry(key: key, settings: settings, question: question, signature: sig, embedding: floats(embedding), answer: answer,
                                 sources: src, contentVersion: contentVersion, refused: refused,
                                 createdAt: Date(timeIntervalSince1970: createdAt), usedAt: Date(timeIntervalSince1970: usedAt))
    }
}

/// The cache in SQLite (the index's own database, or `cache.sqlite` beside it), with every entry
/// also in memory: lookups read memory, writes go to both. A hit's time of use is written with the
/// next store, so a hit costs no write.
public final class SQLiteAnswerCacheStorage: AnswerCacheStorage, @unchecked Sendable {
    let db: any DatabaseWriter
    let lock = NSLock()
    var memory: [String: AnswerCache.Entry] = [:]
    var totalBytes = 0
    var touched: Set<String> = []

    public init(database: any DatabaseWriter) throws {
        db = database
        try Self.migrator.migrate(db)
        let rows = try db.read { try Row.fetchAll($0, sql: "SELECT * FROM answer_cache") }
        for r in rows {
            guard let e = AnswerCacheColumns.entry(key: r["key"], settings: r["settings"], question: r["question"], signature: r["signature"],
                                                  embedding: r["embedding"], answer: r["answer"], sources: r["sources"],
                                                  contentVersion: r["content_version"], refused: (r["refused"] as Int) != 0,
                                                  createdAt: r["created_at"], usedAt: r["used_at"]) else { continue }
            memory[e.key] = e
            totalBytes += e.bytes
        }
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

    public func entry(key: String) throws -> AnswerCache.Entry? { lock.withLock { memory[key] } }

    public func entries(settings: String) throws -> [AnswerCache.Entry] {
        lock.withLock { memory.values.filter { $0.settings == settings } }
    }

    public func put(_ e: AnswerCache.Entry, maxBytes: Int) throws -> [String] {
        let (evict, used): ([String], [(String, Date)]) = lock.withLock {
            if let old = memory[e.key] { totalBytes -= old.bytes }
            memory[e.key] = e
            totalBytes += e.bytes
            var evict: [String] = []
            if totalBytes > maxBytes {
                for old in memory.values.sorted(by: { $0.usedAt < $1.usedAt }) where old.key != e.key {
                    evict.append(old.key)
                    totalBytes -= old.bytes
                    if totalBytes <= maxBytes { break }
                }
                for k in evict { memory[k] = nil }
            }
            let used = touched.compactMap { k in memory[k].map { (k, $0.usedAt) } }
            touched = []
            return (evict, used)
        }
        let signature = try AnswerCacheColumns.text(e.signature), sources = try AnswerCacheColumns.text(e.sources)
        try db.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO answer_cache (key, settings, question, signature, embedding, answer, sources, content_version, refused, created_at, used_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [e.key, e.settings, e.question, signature, AnswerCacheColumns.vector(e.embedding), e.answer, sources, e.contentVersion,
                                 e.refused ? 1 : 0, e.createdAt.timeIntervalSince1970, e.usedAt.timeIntervalSince1970])
            for k in evict { try db.execute(sql: "DELETE FROM answer_cache WHERE key = ?", arguments: [k]) }
            for (k, t) in used { try db.execute(sql: "UPDATE answer_cache SET used_at = ? WHERE key = ?", arguments: [t.timeIntervalSince1970, k]) }
        }
        return evict
    }

    public func touch(key: String, at: Date) throws {
        lock.withLock {
            memory[key]?.usedAt = at
            touched.insert(key)
        }
    }

    public func keys(refusedOrCiting documents: Set<String>) throws -> [String] {
        lock.withLock { memory.values.filter { e in e.refused || e.sources.keys.contains { documents.contains($0) } }.map(\.key) }
    }

    public func remove(_ keys: [String]) throws -> Int {
        guard !keys.isEmpty else { return 0 }
        let n = lock.withLock { () -> Int in
            var n = 0
            for k in keys { if let e = memory.removeValue(forKey: k) { totalBytes -= e.bytes; n += 1 } }
            return n
        }
        try db.write { db in for k in keys { try db.execute(sql: "DELETE FROM answer_cache WHERE key = ?", arguments: [k]) } }
        return n
    }

    public func removeAll() throws -> Int {
        let n = lock.withLock { () -> Int in
            let n = memory.count
            memory = [:]; totalBytes = 0; touched = []
            return n
        }
        try db.write { try $0.execute(sql: "DELETE FROM answer_cache") }
        return n
    }

    public func count() throws -> Int { lock.withLock { memory.count } }
    public func bytes() throws -> Int { lock.withLock { totalBytes } }
}
