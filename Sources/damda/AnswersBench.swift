import ArgumentParser
import DamdaAssistant
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

    struct QA { var id: String, question: String, answers: [String], docID: String }

    func run() async throws {
        try await failing {
            var all: [QA] = []
            for (n, line) in try String(contentsOfFile: qa, encoding: .utf8).split(separator: "\n").enumerated() {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let q = o["question"] as? String, let a = o["answers"] as? [String], let d = o["doc_id"] as? String else {
                    throw ValidationError("\(qa):\(n + 1): not a {question, answers, doc_id} object")
                }
                all.append(QA(id: o["id"] as? String ?? "\(n)", question: q, answers: a, docID: d))
            }
            // Evenly spaced, so a small limit still covers many articles.
            let picked = limit > 0 && limit < all.count ? (0..<limit).map { all[$0 * all.count / limit] } : all
            let path = try modelOptions.resolvedModel()
            let dir = index ?? FileManager.default.temporaryDirectory.appendingPathComponent("damda-answers-\(getpid())").path
            defer { if index == nil { try? FileManager.default.removeItem(atPath: dir) } }
            let idx = try SearchIndex(directory: dir, embedder: index == nil ? nil : try embedderIfIndexed(dir, threads: modelOptions.threads))
            if index == nil { _ = try idx.ingest(DocumentLoader().load([docs]), progress: false) }
            let (model, _, _, adapterName) = try modelOptions.load(useDefaultAdapter: true)
            var config = try options.config(modelPath: path)
            if options.mode == nil { config.mode = idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25 }
            let assistant = Assistant(index: idx, generator: Generator(model: model), config: config,
                                      modelName: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, adapterName: adapterName)
            let log = out.map { FileManager.default.createFile(atPath: $0, contents: nil); return FileHandle(forWritingAtPath: $0)! }
            var em = 0, refusedAnswerable = 0, echo = 0, goldGiven = 0, promptTokens = 0, answerTokens = 0, goldInAnswer = 0, unsupported = 0
            var f1 = 0.0, bestSentenceF1 = 0.0, generationSeconds = 0.0
            let bar = ProgressBar(total: Int64(picked.count + unanswerable), label: "answers", unit: "q")
            for (i, item) in picked.enumerated() {
                let a = try await assistant.answer(item.question)
                let s = AnswerMetrics.score(a.answer, golds: item.answers)
                em += s.em ? 1 : 0
                f1 += s.f1
                bestSentenceF1 += a.citations.first.map { AnswerMetrics.score($0.bestSentence, golds: item.answers).f1 } ?? 0
                refusedAnswerable += a.refused ? 1 : 0
                echo += a.echoOnly ? 1 : 0
                unsupported += a.unsupported ? 1 : 0
                goldGiven += a.citations.contains { $0.documentID == item.docID } ? 1 : 0
                let containsGold = !a.refused && AnswerMetrics.containsAnswer(a.answer, golds: item.answers)
                goldInAnswer += containsGold ? 1 : 0
                promptTokens += a.usage.promptTokens
                answerTokens += a.usage.completionTokens
                generationSeconds += a.timings.generationMs / 1000
                log?.write((jsonString(Row(id: item.id, question: item.question, gold: item.answers, answer: a.answer, raw: a.rawAnswer,
                                               em: s.em, f1: s.f1, refused: a.refused, goldChunkGiven: a.citations.contains { $0.documentID == item.docID },
                                               unanswerable: false, goldInAnswer: containsGold, cited: a.citations.map(\.documentID))) + "\n").data(using: .utf8)!)
                bar.update(to: Int64(i + 1))
            }
            // Unanswerable: the question against an index without its own article.
            var refusedUnanswerable = 0
            if unanswerable > 0 {
                let loaded = DocumentLoader().load([docs])
                for j in 0..<unanswerable {
                    let item = picked[j * picked.count / unanswerable]
                    let article = item.docID.split(separator: "-").dropLast().joined(separator: "-")
                    let others = loaded.documents.filter { !$0.id.hasPrefix(article + "-") }
                    var hidden = config
                    hidden.filter.excludedDocuments = Set(loaded.documents.map(\.id)).subtracting(others.map(\.id))
                    let a = try await assistant.answer(item.question, config: hidden)
                    refusedUnanswerable += a.refused ? 1 : 0
                    log?.write((jsonString(Row(id: item.id, question: item.question, gold: [], answer: a.answer, raw: a.rawAnswer,
                                                   em: false, f1: 0, refused: a.refused, goldChunkGiven: false, unanswerable: true,
                                                   goldInAnswer: false, cited: a.citations.map(\.documentID))) + "\n").data(using: .utf8)!)
                    bar.update(to: Int64(picked.count + j + 1))
                }
            }
            var offDomainQuestions = 0, refusedOffDomain = 0
            if let path = offDomain {
                for (n, line) in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").enumerated() {
                    guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let q = o["question"] as? String else {
                        throw ValidationError("\(path):\(n + 1): not a {question} object")
                    }
                    let a = try await assistant.answer(q)
                    offDomainQuestions += 1
                    refusedOffDomain += a.refused ? 1 : 0
                    log?.write((jsonString(Row(id: o["id"] as? String ?? "off-\(n)", question: q, gold: [], answer: a.answer, raw: a.rawAnswer,
                                                   em: false, f1: 0, refused: a.refused, goldChunkGiven: false, unanswerable: true,
                                                   goldInAnswer: false, cited: a.citations.map(\.documentID))) + "\n").data(using: .utf8)!)
                }
            }
            bar.finish()
            let n = Double(max(picked.count, 1))
            func r(_ x: Double) -> Double { (x * 10).rounded() / 10 }
            printJSON([
                "model": path, "questions": picked.count, "mode": (config.mode ?? .bm25).rawValue, "k": config.k,
                "budget_tokens": config.budgetTokens, "max_answer_tokens": config.maxAnswerTokens,
                "exact_match": r(Double(em) / n * 100), "f1": r(f1 / n * 100),
                "refused_answerable_pct": r(Double(refusedAnswerable) / n * 100),
                "echo_only_pct": r(Double(echo) / n * 100),
                "unsupported_pct": r(Double(unsupported) / n * 100),
                "gold_in_answer_pct": r(Double(goldInAnswer) / n * 100),
                "off_domain_questions": offDomainQuestions,
                "refused_off_domain_pct": offDomainQuestions > 0 ? r(Double(refusedOffDomain) / Double(offDomainQuestions) * 100) : NSNull(),
                "retrieval": config.useRetrieval,
                "min_relevance": config.minRelevance, "min_similarity": config.minSimilarity.map { $0 as Any } ?? NSNull(),
                "gold_chunk_in_context_pct": r(Double(goldGiven) / n * 100),
                "best_sentence_f1": r(bestSentenceF1 / n * 100),
                "unanswerable_questions": unanswerable,
                "refused_unanswerable_pct": unanswerable > 0 ? r(Double(refusedUnanswerable) / Double(unanswerable) * 100) : NSNull(),
                "mean_prompt_tokens": r(Double(promptTokens) / n), "mean_answer_tokens": r(Double(answerTokens) / n),
                "seconds_per_question": (generationSeconds / n * 100).rounded() / 100, "threads": modelOptions.threads,
                "adapter": adapterName ?? NSNull() as Any,
            ])
        }
    }

    struct Row: Encodable {
        var id: String, question: String, gold: [String], answer: String, raw: String
        var em: Bool, f1: Double, refused: Bool, goldChunkGiven: Bool, unanswerable: Bool, goldInAnswer: Bool, cited: [String]
    }
}
