import ArgumentParser
import DamdaAssistant
import DamdaEval
import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaRetrieval
import Foundation

struct AnswersBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "answers",
        abstract: "Answer quality with RAG on a QA set: exact match and character F1 (KorQuAD normalization), refusals, speed (JSON).")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var options: AssistantOptions
    @Option(help: "Documents JSONL: {id, title, text} per line.") var docs: String
    @Option(help: "Questions JSONL: {id, question, answers, doc_id} per line.") var qa: String
    @Option(help: "Evaluate N questions spread evenly over the file (0: all).") var limit = 100
    @Option(help: "Reuse this index (built from DOCS) instead of building a BM25 index in a temporary folder.") var index: String?
    @Option(help: "Also ask this many questions against other articles' paragraphs only, to measure refusals.") var unanswerable = 0
    @Option(help: "Questions the documents do not answer (JSONL with \"question\"), each asked against the whole index: the refusal rate.")
    var offDomain: String?
    @Option(help: "Write one JSON line per question here.") var out: String?
    @Flag(help: "Print JSON (the only format).") var json = false

    func run() async throws {
        try await failing {
            let picked = EvalQuestion.evenlySpaced(try EvalQuestion.read(qa, require: .answers), limit)
            let offDomainQuestions = try offDomain.map { try EvalQuestion.read($0, idPrefix: "off-") } ?? []
            let path = try modelOptions.resolvedModel()
            let dir = index ?? FileManager.default.temporaryDirectory.appendingPathComponent("damda-answers-\(getpid())").path
            defer { if index == nil { try? FileManager.default.removeItem(atPath: dir) } }
            let idx = try SearchIndex(directory: dir, embedder: index == nil ? nil : try embedderIfIndexed(dir, threads: modelOptions.threads))
            let loaded = DocumentLoader().load([docs])
            if index == nil { _ = try idx.ingest(loaded, progress: false) }
            let (model, _, _, adapterName) = try modelOptions.load(useDefaultAdapter: true)
            var config = try options.config(model: model, adapterDirectory: try modelOptions.assistantAdapterDirectory())
            if options.mode == nil { config.mode = idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25 }
            let assistant = Assistant(index: idx, generator: Generator(model: model), config: config,
                                      modelName: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, adapterName: adapterName)
            let log = out.map { FileManager.default.createFile(atPath: $0, contents: nil); return FileHandle(forWritingAtPath: $0)! }
            var report = try await AnswerEvaluation(assistant: assistant, documentIDs: loaded.documents.map(\.id))
                .run(answerable: picked, unanswerable: unanswerable, offDomain: offDomainQuestions) { row in
                    log?.write((jsonString(row) + "\n").data(using: .utf8)!)
                }
            report.model = path
            print(jsonString(report))
        }
    }
}
