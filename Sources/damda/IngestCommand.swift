import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaGuardrails
import DamdaModelIO
import DamdaPostgres
import DamdaRetrieval
import Foundation

struct IndexOptions: ParsableArguments {
    @Option(help: "Index directory (created if missing).") var index: String
    @Option(help: "Embedding model file (default: the fetched multilingual-e5-small, if present).") var embeddingModel: String?
    @Flag(help: "Do not embed chunks (BM25 only).") var noEmbeddings = false
    @Option(help: "Keep documents and chunks in PostgreSQL + pgvector instead of the index's SQLite file (postgres://USER@HOST:PORT/DB, or postgres://USER@/DB?host=/socket/dir).")
    var store: String?
    @Option(help: "With --store: where vector search runs: database (pgvector's HNSW index; no embedding is loaded into this process) or memory (loaded and searched here).")
    var vectorSearch: PostgresVectorSearch = .database

    /// The index at --index, over SQLite or the --store PostgreSQL database.
    func open(analyzer: String? = nil, chunker: Chunker = Chunker(), embedder: (any Embedder)?) throws -> SearchIndex {
        guard let url = store else { return try SearchIndex(directory: index, analyzer: analyzer, chunker: chunker, embedder: embedder) }
        return try SearchIndex(directory: index, store: try PostgresStore(url: url, vectorSearch: vectorSearch), analyzer: analyzer,
                               chunker: chunker, embedder: embedder)
    }

    /// The e5 embedder when its model is available and not disabled. Threads come from the command:
    /// its own `--threads`, or the model's where a command loads both (one flag, not two).
    func embedder(threads: Int) throws -> (any Embedder)? {
        if noEmbeddings { return nil }
        let path = embeddingModel ?? ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
        guard FileManager.default.fileExists(atPath: path) else {
            if embeddingModel != nil { throw ValidationError("no embedding model at \(path)") }
            FileHandle.standardError.write("note: no embedding model (run `damda model fetch --embedding`): BM25 only\n".data(using: .utf8)!)
            return nil
        }
        return try E5Embedder(path: path, threads: threads)
    }
}

extension PostgresVectorSearch: ExpressibleByArgument {}

/// The e5 embedder when the index at `dir` holds embeddings and the model is cached, so queries
/// are searched the way the index was built (hybrid); nil otherwise.
func embedderIfIndexed(_ dir: String, threads: Int) throws -> (any Embedder)? {
    let path = ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    return try SearchIndex(directory: dir, embedder: nil).hasEmbeddings ? try E5Embedder(path: path, threads: threads) : nil
}

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest", abstract: "Add files and folders (txt, md, html, pdf, jsonl, csv) to an index.")
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "Worker threads (default: all cores).") var threads: Int = Threads.available
    @Argument(help: "Files or folders (searched recursively).") var paths: [String]
    @Flag(help: "Remove indexed documents that are no longer among PATHS.") var prune = false
    @Option(help: "Analyzer for a new index: bigram (default), particle, whitespace.") var analyzer: String?
    @Option(help: "JSONL/CSV field holding the text.") var textField = "text"
    @Option(help: "JSONL/CSV field holding the title.") var titleField = "title"
    @Option(help: "JSONL/CSV field holding the document id.") var idField = "id"
    @Option(help: "Chunk budget in (approximate) model tokens.") var chunkTokens = 256
    @Flag(help: "Print the summary as JSON.") var json = false
    @Flag(help: "Mask personal data (주민등록번호, phone, card and account numbers, e-mail …) in titles and text before indexing: the index never holds it.")
    var redactPii = false

    func run() async throws {
        try await failing {
            let idx = try indexOptions.open(analyzer: analyzer, chunker: Chunker(maxTokens: chunkTokens, overlapTokens: chunkTokens / 5),
                                            embedder: try indexOptions.embedder(threads: threads))
            var loaded = DocumentLoader(fields: RecordFields(text: textField, title: titleField, id: idField)).load(paths)
            for p in loaded.problems { FileHandle.standardError.write("warning: \(p)\n".data(using: .utf8)!) }
            if redactPii {
                let byType = DocumentRedactor().redact(&loaded)
                let counts = byType.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                FileHandle.standardError.write("redact-pii: masked \(counts.isEmpty ? "nothing" : counts)\n".data(using: .utf8)!)
            }
            let s = try idx.ingest(loaded, prune: prune)
            if json {
                printJSON(["added": s.added, "updated": s.updated, "skipped": s.skipped, "removed": s.removed,
                           "chunks": s.chunks, "problems": s.problems, "seconds": s.seconds, "index_chunks": idx.chunkCount])
            } else {
                print(String(format: "documents: %d added, %d updated, %d skipped, %d removed; %d chunks written (%d in index); %d problems; %.2f s",
                             s.added, s.updated, s.skipped, s.removed, s.chunks, idx.chunkCount, s.problems, s.seconds))
            }
        }
    }
}

/// BM25's parameters as flags (`damda search`, `damda bench retrieval`).
struct BM25Options: ParsableArguments {
    @Option(name: .customLong("bm25-k1"), help: "BM25 k1.") var bm25K1: Float = BM25Index.Parameters().k1
    @Option(name: .customLong("bm25-b"), help: "BM25 b.") var bm25B: Float = BM25Index.Parameters().b
    @Option(name: .customLong("bm25-document-weight"), help: "Weight of a chunk's whole-document BM25 score in its own.")
    var bm25DocumentWeight: Float = BM25Index.Parameters().documentWeight

    var parameters: BM25Index.Parameters { BM25Index.Parameters(k1: bm25K1, b: bm25B, documentWeight: bm25DocumentWeight) }
}

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search", abstract: "Rank an index's chunks for a question.")
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "Worker threads (default: all cores).") var threads: Int = Threads.available
    @Argument(help: "The question.") var query: String
    @Option(help: "How many chunks.") var k = 5
    @Option(help: "Retrieval mode: bm25, vector or hybrid (default: hybrid when the index has embeddings).") var mode: String?
    @Option(help: "Hybrid fusion: weighted:BM25,VECTOR (min-max normalized, default weighted:0.6,0.4) or rrf:K.") var fusion = "weighted:0.6,0.4"
    @Option(help: "Only chunks whose source starts with this (repeatable).") var source: [String] = []
    @Option(help: "Only chunks of documents with this tag (repeatable).") var tag: [String] = []
    @Option(help: "At most N chunks of one document among the k (0: no limit).") var perDocument = 0
    @OptionGroup var bm25: BM25Options
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await failing {
            let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: threads))
            idx.fusion = try parseFusion(fusion)
            idx.bm25Parameters = bm25.parameters
            let chosen = try mode.map { m -> SearchMode in
                guard let v = SearchMode(rawValue: m) else { throw ValidationError("mode must be bm25, vector or hybrid") }
                return v
            } ?? (idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25)
            let hits = try idx.search(query, k: k, mode: chosen, filter: SearchFilter(sources: source, tags: tag), perDocument: perDocument)
            if json {
                print(jsonString(SearchOutput(query: query, mode: chosen.rawValue, hits: hits.hits)))
            } else {
                for h in hits {
                    var loc = h.chunk.source
                    if let p = h.chunk.page { loc += " p.\(p)" }
                    if !h.chunk.headingPath.isEmpty { loc += " › " + h.chunk.headingPath.joined(separator: " › ") }
                    print(String(format: "%d. [%.3f] %@ — %@", h.rank, h.score, h.chunk.title, loc))
                    print("   " + h.chunk.text.prefix(200).replacingOccurrences(of: "\n", with: " "))
                }
                if hits.isEmpty { print("no matching chunks") }
            }
        }
    }
}

struct SearchOutput: Encodable { var query: String, mode: String, hits: [SearchHit] }

func parseFusion(_ s: String) throws -> Fusion {
    let parts = s.split(separator: ":")
    if parts.first == "rrf", let k = parts.count > 1 ? Float(parts[1]) : 60 { return .reciprocalRank(k: k) }
    if parts.first == "weighted" {
        let w = (parts.count > 1 ? parts[1] : "0.5,0.5").split(separator: ",").compactMap { Float($0) }
        if w.count == 2 { return .weighted(bm25: w[0], vector: w[1]) }
    }
    throw ValidationError("fusion must be weighted:A,B or rrf:K")
}
