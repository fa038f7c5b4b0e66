import ArgumentParser
import DamdaAssistant
import DamdaEval
import DamdaCore
import DamdaRetrieval
import Foundation

struct RelevanceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relevance",
        abstract: "Relevance gate and fusion on natural questions: gold-document recall by fusion weight, and per gate threshold the gold documents kept and off-domain questions refused (JSON).")
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "Worker threads (default: all cores).") var threads: Int = Threads.available
    @Option(help: "Answerable questions: JSONL {question, doc_id}.") var qa: String
    @Option(help: "Questions the documents do not answer: JSONL {question}.") var offDomain: String?
    @Option(help: "Hits retrieved per question.") var k = 10
    @Option(help: "Relevant hits the prompt usually holds (for gold_kept).") var within = 3
    @Option(help: "BM25 weights to try in weighted fusion (the vector gets 1 − w).") var bm25Weights = "0.6,0.5,0.4,0.3"
    @Option(help: "minRelevance values to try.") var minRelevance = "0.2,0.3,0.4,0.5"
    @Option(help: "minSimilarity values to try (0: off).") var minSimilarity = "0,0.86,0.87,0.88,0.89,0.90"
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: threads))
            guard idx.hasEmbeddings, idx.embedder != nil else { throw ValidationError("the index has no embeddings: ingest without --no-embeddings") }
            var questions = try EvalQuestion.read(qa, require: .document)
            if let off = offDomain { questions += try EvalQuestion.read(off).map { EvalQuestion(id: $0.id, question: $0.question) } }
            func floats(_ s: String) -> [Float] { s.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) } }
            var evaluation = RelevanceEvaluation()
            evaluation.k = k
            evaluation.within = within
            evaluation.bm25Weights = floats(bm25Weights)
            evaluation.minRelevance = floats(minRelevance)
            evaluation.minSimilarity = floats(minSimilarity).map { $0 > 0 ? $0 : nil }
            print(jsonString(try evaluation.run(index: idx, questions: questions)))
        }
    }
}
