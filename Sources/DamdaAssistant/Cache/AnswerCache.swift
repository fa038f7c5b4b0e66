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

/// Answers served before, kept in the index's own store so a restart keeps them (or in PostgreSQL,
/// shared by every server on the database). Each entry records the documents (and their content
/// hashes) of every chunk its prompt held: it is served only while those documents are unchanged,
/// and evicted as soon as an ingest changes or removes one. A refusal depends on the whole index (a
/// new document may hold the answer), so any change evicts it.
public final class AnswerCache: @unchecked Sendable {
    /// One cached answer with what it depends on.
    public struct Entry: Sendable {
        public internal(set) var key: String
        public internal(set) var settings: String
        public internal(set) var question: String
        public internal(set) var signature: QuestionSignature
        public internal(set) var embedding: [Float]
        /// The answer's JSON.
        public internal(set) var answer: Data
        /// Document id → content hash of every chunk the prompt held.
        public internal(set) var sources: [String: String]
        /// The index's content version when stored (a refusal is valid only while it holds).
        public internal(set) var contentVersion: String
        public internal(set) var refused: Bool
        public internal(set) var createdAt: Date
        public internal(set) var usedAt: Date
        /// What the entry takes, for the LRU bound.
        public var bytes: Int { answer.count + embedding.count * 4 + question.utf8.count + 256 }
        public init(key: String, settings: String, question: String, signature: QuestionSignature, embedding: [Float], answer: Data,
                    sources: [String: String], contentVersion: String, refused: Bool, createdAt: Date, usedAt: Date) {
            self.key = key; self.settings = settings; self.question = question; self.signature = signature; self.embedding = embedding
            self.answer = answer; self.sources = sources; self.contentVersion = contentVersion; self.refused = refused
            self.createdAt = createdAt; self.usedAt = usedAt
        }
    }

    public let storage: any AnswerCacheStorage
    public var onEvent: @Sendable (AnswerCacheEvent) -> Void = { _ in }

    public init(storage: any AnswerCacheStorage) { self.storage = storage }

    public convenience init(database: any DatabaseWriter) throws {
        self.init(storage: try SQLiteAnswerCacheStorage(database: database))
    }

    public convenience init(path: String) throws {
        try self.init(database: try DatabasePool(path: path))
    }

    /// The cache of a SQLite index: in its database, or `cache.sqlite` in its directory, evicting
    /// entries whenever the index's documents change.
    public convenience init(beside index: SearchIndex) throws {
        try self.init(database: try index.sqliteDatabase(orFile: "cache.sqlite"))
        observe(index)
    }

    /// Evicts entries whenever `index`'s documents change.
    public func observe(_ index: SearchIndex) {
        index.observeChanges { [weak self] change in _ = try? self?.invalidate(change) }
    }

    public var count: Int { (try? storage.count()) ?? 0 }
    public var bytes: Int { (try? storage.bytes()) ?? 0 }

    /// The cached answer for `key` (exact) or, with `semantic`, for the closest question under the
    /// same settings whose signature matches; nil on a miss. `isCurrent` says whether an entry's
    /// sources are still what the index holds; stale and expired entries met here are deleted.
    /// A storage that cannot be read is a miss: the question is answered as if nothing were cached.
    public func lookup(key: CacheKey, question: String, embedding: [Float]?, settings: AnswerCacheSettings,
                isCurrent: (Entry) -> Bool, now: Date = Date()) -> (answer: AssistantAnswer, hit: CacheHit)? {
        var stale: [(String, String)] = []
        defer { if !stale.isEmpty { remove(stale) } }
        func usable(_ e: Entry) -> Bool {
            if now.timeIntervalSince(e.createdAt) > settings.ttl { stale.append((e.key, "ttl")); return false }
            if !isCurrent(e) { stale.append((e.key, "document")); return false }
            return true
        }
        func find() throws -> (Entry, CacheHit)? {
            if settings.exact, let e = try storage.entry(key: key.value), usable(e) { return (e, .exact) }
            guard settings.semantic, let q = embedding, !q.isEmpty else { return nil }
            let signature = QuestionSignature(question)
            var candidates: [(Float, Entry)] = []
            for e in try storage.entries(settings: key.settings) where e.embedding.count == q.count {
                var dot: Float = 0
                for i in q.indices { dot += q[i] * e.embedding[i] }
                if dot >= settings.semanticThreshold { candidates.append((dot, e)) }
            }
            for (_, e) in candidates.sorted(by: { $0.0 > $1.0 }) where e.signature.matches(signature) && usable(e) { return (e, .semantic) }
            return nil
        }
        guard let (entry, hit) = (try? find()) ?? nil, var answer = try? JSONDecoder().decode(AssistantAnswer.self, from: entry.answer) else {
            onEvent(.miss)
            return nil
        }
        try? storage.touch(key: entry.key, at: now)
        answer.cache = hit
        onEvent(.hit(hit))
        return (answer, hit)
    }

    /// Keeps `answer` under `key`, then trims the cache to `maxBytes` by least recent use.
    public func store(key: CacheKey, question: String, embedding: [Float]?, answer: AssistantAnswer, sources: [String: String],
               contentVersion: String, settings: AnswerCacheSettings, now: Date = Date()) throws {
        var stored = answer
        stored.cache = nil
        let e = Entry(key: key.value, settings: key.settings, question: CacheKey.normalize(question), signature: QuestionSignature(question),
                      embedding: embedding ?? [], answer: try JSONEncoder().encode(stored), sources: sources, contentVersion: contentVersion,
                      refused: answer.refused, createdAt: now, usedAt: now)
        let evicted = try storage.put(e, maxBytes: settings.maxBytes)
        onEvent(.stored)
        if !evicted.isEmpty { onEvent(.evicted(reason: "lru", count: evicted.count)) }
    }

    /// Evicts what a change to the index makes stale: every entry whose prompt held a changed or
    /// removed document, and every refusal (an added document may answer it). Returns how many.
    @discardableResult
    public func invalidate(_ change: IndexChange) throws -> Int {
        let keys = try storage.keys(refusedOrCiting: change.changed.union(change.removed)).map { ($0, "document") }
        remove(keys)
        return keys.count
    }

    /// Deletes every entry.
    public func clear() throws {
        let n = try storage.removeAll()
        if n > 0 { onEvent(.evicted(reason: "clear", count: n)) }
    }

    /// Removes entries by key, counting them by reason.
    func remove(_ keys: [(key: String, reason: String)]) {
        guard !keys.isEmpty else { return }
        _ = try? storage.remove(keys.map(\.key))
        for reason in Set(keys.map(\.reason)) { onEvent(.evicted(reason: reason, count: keys.filter { $0.reason == reason }.count)) }
    }
}
