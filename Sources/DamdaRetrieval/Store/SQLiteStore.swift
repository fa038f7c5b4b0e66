import Foundation
import GRDB

/// The embedded store: one SQLite file in WAL mode. Each ingest batch is one transaction, so a
/// process killed mid-ingest leaves every document either fully old or fully new.
public final class SQLiteStore: ChunkStore, @unchecked Sendable {
    let db: DatabasePool
    public let path: String
    /// The database, for stores of other data kept in the same file (answers and feedback).
    public var database: DatabasePool { db }

    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.foreignKeysEnabled = true
        db = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(db)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE documents (
                    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL,
                    hash TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '', ingested_at REAL NOT NULL);
                CREATE TABLE chunks (
                    id INTEGER PRIMARY KEY,
                    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL, text TEXT NOT NULL, title TEXT NOT NULL, source TEXT NOT NULL,
                    heading TEXT NOT NULL, page INTEGER, terms TEXT NOT NULL);
                CREATE INDEX chunks_document ON chunks(document_id);
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
        }
        m.registerMigration("v2-embeddings") { db in
            try db.execute(sql: "ALTER TABLE chunks ADD COLUMN embedding BLOB")
        }
        return m
    }

    public func documentHashes() throws -> [String: String] {
        try db.read { db in
            var out: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, hash FROM documents") { out[row["id"]] = row["hash"] }
            return out
        }
    }

    /// Term frequencies serialized as "term\tcount\n" lines (terms never hold tabs or newlines).
    public static func encode(_ terms: [String: Int]) -> String {
        terms.sorted { $0.key < $1.key }.map { "\($0.key)\t\($0.value)" }.joined(separator: "\n")
    }

    public static func decode(_ s: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in s.split(separator: "\n") {
            let parts = line.split(separator: "\t")
            if parts.count == 2, let n = Int(parts[1]) { out[String(parts[0])] = n }
        }
        return out
    }

    public func replace(_ batch: [IngestBatchItem]) throws {
        let now = Date().timeIntervalSince1970
        try db.write { db in
            for item in batch {
                let d = item.document
                try db.execute(sql: "DELETE FROM documents WHERE id = ?", arguments: [d.id])
                try db.execute(sql: "INSERT INTO documents (id, title, source, hash, tags, ingested_at) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [d.id, d.title, d.source, item.hash, d.tags.joined(separator: ","), now])
                for (i, (c, t)) in zip(item.chunks, item.terms).enumerated() {
                    let vector: Data? = i < item.embeddings.count ? item.embeddings[i].withUnsafeBytes { Data($0) } : nil
                    try db.execute(sql: """
                        INSERT INTO chunks (document_id, ordinal, text, title, source, heading, page, terms, embedding)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [d.id, c.ordinal, c.text, c.title, c.source, c.headingPath.joined(separator: "\u{1F}"), c.page, Self.encode(t), vector])
                }
            }
        }
    }

    public func remove(documentIDs: [String]) throws {
        try db.write { db in
            for id in documentIDs { try db.execute(sql: "DELETE FROM documents WHERE id = ?", arguments: [id]) }
        }
    }

    public func documents() throws -> [StoredDocument] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.id, d.title, d.source, d.hash, COUNT(c.id) AS n FROM documents d
                LEFT JOIN chunks c ON c.document_id = d.id GROUP BY d.id ORDER BY d.id
                """).map { StoredDocument(id: $0["id"], title: $0["title"], source: $0["source"], hash: $0["hash"], chunks: $0["n"]) }
        }
    }

    public func allChunks() throws -> [StoredChunk] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT c.id, c.document_id, c.ordinal, c.text, c.title, c.source, c.heading, c.page, c.terms, c.embedding, d.tags
                FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id
                """).map { row in
                let heading: String = row["heading"]
                let tags: String = row["tags"]
                let blob: Data? = row["embedding"]
                let embedding: [Float] = blob.map { b in b.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } } ?? []
                return StoredChunk(
                    rowID: row["id"],
                    chunk: Chunk(documentID: row["document_id"], ordinal: row["ordinal"], text: row["text"], title: row["title"],
                                 source: row["source"], headingPath: heading.isEmpty ? [] : heading.components(separatedBy: "\u{1F}"),
                                 page: row["page"]),
                    tags: tags.isEmpty ? [] : tags.components(separatedBy: ","),
                    termFrequencies: Self.decode(row["terms"]), embedding: embedding)
            }
        }
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try db.write { try $0.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: [key, value]) }
    }

    public func meta(_ key: String) throws -> String? {
        try db.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }
}
