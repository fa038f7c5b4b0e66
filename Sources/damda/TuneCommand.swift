import ArgumentParser
import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaEval
import DamdaModelIO
import DamdaRetrieval
import DamdaTraining
import Foundation

/// Documents to a tuned assistant in one command; each stage keeps its output in --out, so a rerun
/// after a kill continues with the stage that was running.
struct TuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Synthesize questions from the index's documents, augment, clean and split them by document, train a RAG adapter, and evaluate it against the current one.",
        discussion: """
            Stages and their files in --out: synthetic.jsonl (data synthesize), augmented.jsonl (data augment), \
            data.train/val/test.jsonl (data clean, split by source document), adapter/ (train --rag; resumes from its checkpoint), \
            eval.json + eval.html (eval on the test documents' questions: --compare's adapter vs the new one, both with retrieval).
            """)
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "Output folder for every stage.") var out: String
    @Option(help: "Questions per chunk before filtering.") var perChunk = 3
    @Option(help: "Round-trip retrieval depth for synthetic questions.") var roundTripK = 5
    @OptionGroup var teacherOptions: TeacherOptions
    @Option(help: "Lines per question after augmentation (the original included).") var factor = 2
    @Option(help: "Train, validation and test shares by source document.") var split = "0.8,0.1,0.1"
    @Option(help: "Share of training examples made unanswerable.") var unanswerable = 0.2
    @Option(help: "LoRA rank.") var rank = 16
    @Option(help: "Peak learning rate.") var lr: Float = 3e-4
    @Option(help: "Passes over the training data.") var epochs = 1
    @Option(help: "Sequences per micro-batch.") var batch = 4
    @Option(help: "Stop training after N updates (0: all epochs).") var maxSteps = 0
    @Option(help: "Test questions to evaluate (0: all).") var evalLimit = 100
    @Option(help: "Test questions also asked with their document hidden.") var evalUnanswerable = 10
    @Option(help: "The adapter the new one is compared with: default or none.") var compare = "default"

    func run() async throws {
        try await failing {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            func path(_ name: String) -> String { out + "/" + name }
            func stage(_ n: Int, _ what: String) { note("== stage \(n)/5: \(what)") }
            let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: modelOptions.threads))
            guard idx.chunkCount > 0 else { throw ValidationError("the index at \(indexOptions.index) is empty: ingest documents first") }

            stage(1, "synthesize questions from \(idx.chunkCount) chunks")
            let synthesis = try await synthesizeQuestions(index: idx, out: path("synthetic.jsonl"), perChunk: perChunk, roundTripK: roundTripK,
                                                          documents: nil, teacher: try teacherOptions.teacher(perChunk: perChunk))
            note("synthesized: \(jsonString(synthesis))")

            stage(2, "augment ×\(factor)")
            if !FileManager.default.fileExists(atPath: path("augmented.jsonl")) {
                let augmenter = Augmenter(factor: factor)
                let rows = try QAExample.read(path("synthetic.jsonl")).examples.flatMap(augmenter.augment)
                try (rows.map { jsonString($0) }.joined(separator: "\n") + "\n").write(toFile: path("augmented.jsonl"), atomically: true, encoding: .utf8)
            }

            stage(3, "clean and split by document (\(split))")
            if !FileManager.default.fileExists(atPath: path("data.test.jsonl")) {
                let shares = split.split(separator: ",").compactMap { Double($0) }
                guard shares.count == 3 else { throw ValidationError("--split needs train,validation,test shares") }
                var cleaner = DataCleaner()
                cleaner.index = idx
                cleaner.mode = idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25
                let (kept, summary) = try cleaner.clean(try QAExample.read(path("augmented.jsonl")).examples)
                note("cleaned: \(jsonString(summary))")
                // The test split keeps only original questions, so the evaluation asks no variant of a trained one.
                let parts = DataCleaner.split(kept, shares: shares)
                for (rows, name) in zip([parts[0], parts[1], parts[2].filter { $0.augmentation == nil }], ["train", "val", "test"]) {
                    try (rows.map { jsonString($0) }.joined(separator: "\n") + "\n").write(toFile: path("data.\(name).jsonl"), atomically: true, encoding: .utf8)
                }
            }

            let (loaded, modelPath, name, _) = try modelOptions.load()
            guard let model = loaded as? any AdaptableModel else { throw TrainingError.unsupported("this model cannot be trained") }
            stage(4, "train a RAG adapter")
            let adapterDir = path("adapter")
            if !FileManager.default.fileExists(atPath: adapterDir + "/done") {
                let train = try QAExample.read(path("data.train.jsonl")).examples + (try QAExample.read(path("data.val.jsonl")).examples)
                guard !train.isEmpty else {
                    throw ValidationError("the training split is empty: \(path("data.train.jsonl")) (too few documents for --split \(split)?)")
                }
                let records = train.map { TrainingRecord.rag(question: $0.question, context: nil, answer: $0.answers[0], documentID: $0.documentID) }
                let prompt = RAGPrompt(tokenizer: model.tokenizer)
                let sampler = RAGContextSampler(index: idx, prompt: prompt, budgetTokens: 512,
                                                mode: idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25)
                var set = try RAGTrainingSet(sampler: sampler, renderer: ExampleRenderer(ragPrompt: prompt, conversation: model.chatTemplate),
                                             unanswerableShare: unanswerable, maxLength: 512).build(records, seed: 0)
                set.truncate(to: 512, policy: .drop)
                let size = (try? FileManager.default.attributesOfItem(atPath: modelPath)[.size] as? Int) ?? 0
                var fineTune = FineTune(model: model, baseModelName: name, modelIdentity: "\(name):\(size)", threads: modelOptions.threads,
                                        outputDirectory: adapterDir)
                fineTune.options.rank = rank; fineTune.options.alpha = Float(2 * rank); fineTune.options.learningRate = lr
                fineTune.options.epochs = epochs; fineTune.options.batch = batch; fineTune.options.maxSteps = maxSteps
                fineTune.note = { note($0) }
                let summary = try fineTune.run(set.sequences)
                note("trained: \(jsonString(summary))")
                FileManager.default.createFile(atPath: adapterDir + "/done", contents: nil)
            }

            stage(5, "evaluate \(compare) vs the tuned adapter on the test documents")
            let test = try QAExample.read(path("data.test.jsonl")).examples
            var questions = test.filter { $0.documentID != nil }.map { EvalQuestion(id: $0.id, question: $0.question, answers: $0.answers, documentID: $0.documentID) }
            questions = EvalQuestion.evenlySpaced(questions, evalLimit)
            guard !questions.isEmpty else { throw ValidationError("the test split is empty: synthesize from more documents or change --split") }
            var before = EvalConfiguration(name: compare == "none" ? "base+rag" : "current+rag")
            before.adapter = compare
            var tuned = EvalConfiguration(name: "tuned+rag")
            tuned.adapter = adapterDir
            var runner = EvalRunner(index: idx, model: model, modelName: name, questions: questions,
                                    applyAdapter: adapterSwitcher(model: model, path: modelPath))
            runner.unanswerable = evalUnanswerable
            let rowsPath = path("eval.rows.jsonl")
            let resumed = try EvalRowLog.resume(rowsPath)
            runner.done = resumed?.rows ?? [:]
            guard let log = EvalRowLog.open(rowsPath, keep: resumed != nil) else { throw ValidationError("cannot write \(rowsPath)") }
            let (rows, overhead) = try await runner.run([before, tuned]) { log.write((jsonString($0) + "\n").data(using: .utf8)!) }
            try log.close()
            let report = EvalReport.make(rows: rows, configs: [before, tuned], model: modelPath, index: indexOptions.index, overheadPct: overhead)
            try jsonString(report).write(toFile: path("eval.json"), atomically: true, encoding: .utf8)
            try HTMLReport.render(report, rows: rows).write(toFile: path("eval.html"), atomically: true, encoding: .utf8)
            for metric in ["f1", "exact_match", "refusal_f1"] {
                let a = report.metrics[before.name]?[metric], b = report.metrics[tuned.name]?[metric]
                print(String(format: "%@: %@ %.1f → tuned %.1f", metric, before.name, a?.value ?? 0, b?.value ?? 0))
            }
            print("report: \(path("eval.html"))")
        }
    }

    func note(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
}
