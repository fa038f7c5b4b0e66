import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaEngine
import DamdaEval
import DamdaModelIO
import DamdaPostgres
import DamdaRetrieval
import Foundation

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score configurations of the assistant side by side on the same questions, with intervals; HTML report and regression gate.",
        discussion: """
            Each --config NAME=SPEC is adapter=default|none|DIR, retrieval=auto|none|bm25|vector|hybrid, k=N, budget=N, \
            template=FILE, chat=true|false, max-tokens=N (comma-separated). The presets base, rag, peft and peft+rag are the \
            seed's experiment (base model and adapter, without and with retrieval) and run when no --config is given. \
            Questions: JSONL {id, question, answers, doc_id}; lines without answers and doc_id are off-domain questions. \
            --unanswerable N asks N answerable questions again with their article hidden. Intervals are 95% bootstrap \
            intervals over questions; differences against the first configuration are paired. --gate exits 1 when a gated \
            metric's whole interval falls below the --baseline report's value.
            """)
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "Questions JSONL.") var qa: String
    @Option(help: "Questions the documents do not answer (JSONL with \"question\"), added as off-domain.") var offDomain: String?
    @Option(help: "Answerable questions, spread evenly over the file (0: all).") var limit = 0
    @Option(help: "Answerable questions asked again with their own article hidden.") var unanswerable = 0
    @Option(name: .customLong("config"), help: "NAME=SPEC (repeatable; default: base, rag, peft, peft+rag).") var configs: [String] = []
    @Option(help: "Per-question rows (JSONL), written as they come (default: beside --json or --report).") var out: String?
    @Flag(help: "Keep the rows already in --out and answer only the rest.") var resume = false
    @Option(help: "Write the summary JSON here.") var json: String?
    @Option(help: "Write the self-contained HTML report here.") var report: String?
    @Option(help: "An earlier summary JSON to compare with (--gate).") var baseline: String?
    @Flag(help: "Exit 1 when a gated metric falls below --baseline beyond its interval.") var gate = false
    @Option(help: "Bootstrap resamples.") var resamples = 1000
    @Option(help: "An OpenAI-compatible endpoint to judge answers with (a model on your network, or `damda serve`).") var judgeUrl: String?
    @Option(help: "The judge's model name.") var judgeModel = "judge"
    @Option(help: "The judge endpoint's API key.") var judgeKey: String?
    @Option(help: "Questions the judge scores per configuration (0: all).") var judgeLimit = 0
    @Option(help: "Attempts per judgement when the reply is not the rubric's JSON.") var judgeAttempts = 3
    @Option(help: "People's ratings (the JSONL of GET /v1/feedback/export): report the judge's agreement with them.") var feedback: String?
    @Flag(help: "Add the index's blind A/B panel results (every survey: win rates, mean ratings) to the JSON and the HTML report.") var panel = false

    func run() async throws {
        try await failing {
            if gate && baseline == nil { throw ValidationError("--gate needs --baseline FILE") }
            if feedback != nil && judgeUrl == nil { throw ValidationError("--feedback needs --judge-url: the judge is compared with people") }
            let specs = try (configs.isEmpty ? EvalConfiguration.seedNames : configs).map { try EvalConfiguration.parse($0) }
            guard Set(specs.map(\.name)).count == specs.count else { throw ValidationError("configuration names must differ") }
            let (all, skipped) = try EvalQuestion.readSkipping(qa, idPrefix: "q")
            if !skipped.isEmpty { note("skipped \(skipped.count) malformed lines (first: \(skipped[0]))") }
            var questions = EvalQuestion.evenlySpaced(all.filter { $0.documentID != nil && !$0.answers.isEmpty }, limit)
                + all.filter { $0.documentID == nil && $0.answers.isEmpty }
            let incomplete = all.filter { ($0.documentID == nil) != $0.answers.isEmpty }.count
            if incomplete > 0 { note("\(incomplete) questions have answers without doc_id or the reverse: left out") }
            if let off = offDomain { questions += try EvalQuestion.read(off, idPrefix: "off-").map { EvalQuestion(id: $0.id, question: $0.question) } }
            let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: modelOptions.threads))
            guard idx.chunkCount > 0 else { throw ValidationError("the index at \(indexOptions.index) is empty: ingest documents first") }
            let known = Set(try idx.store.documents().map(\.id))
            let unknown = questions.filter { $0.documentID.map { !known.contains($0) } ?? false }
            if !unknown.isEmpty {
                note("\(unknown.count) questions name documents the index lacks (first: \(unknown[0].documentID!)): left out")
                questions.removeAll { $0.documentID.map { !known.contains($0) } ?? false }
            }
            guard !questions.isEmpty else { throw ValidationError("no questions to ask") }

            let path = try modelOptions.resolvedModel()
            let model = try loadModel(path: path, threads: modelOptions.threads, weights: modelOptions.weights)
            let applyAdapter = adapterSwitcher(model: model, path: path)
            var runner = EvalRunner(index: idx, model: model, modelName: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent,
                                    questions: questions, applyAdapter: applyAdapter)
            runner.unanswerable = unanswerable

            let rowsPath = out ?? (json ?? report).map { URL(fileURLWithPath: $0).deletingPathExtension().path + ".rows.jsonl" }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("damda-eval-\(getpid()).rows.jsonl").path
            var kept = false
            if resume, let (rows, bad) = try EvalRowLog.resume(rowsPath) {
                runner.done = rows
                kept = true
                note("resuming: \(rows.count) rows kept from \(rowsPath)\(bad > 0 ? ", \(bad) unreadable lines dropped" : "")")
            }
            guard let log = EvalRowLog.open(rowsPath, keep: kept) else { throw ValidationError("cannot write \(rowsPath)") }
            let (rows, overhead) = try await runner.run(specs) { row in log.write((jsonString(row) + "\n").data(using: .utf8)!) }
            try log.close()

            var summary = EvalReport.make(rows: rows, configs: specs, model: path, index: indexOptions.index, overheadPct: overhead,
                                          bootstrap: Bootstrap(resamples: resamples))
            if let judgeUrl {
                guard let url = URL(string: judgeUrl), url.scheme?.hasPrefix("http") == true else { throw ValidationError("--judge-url must be an http(s) URL") }
                var client = JudgeClient(url: url, model: judgeModel, key: judgeKey)
                client.attempts = max(judgeAttempts, 1)
                var pass = JudgePass(client: client)
                pass.limit = judgeLimit
                var judged = await pass.run(rows, configs: specs, bootstrap: Bootstrap(resamples: resamples))
                if let feedback {
                    let (rated, skipped) = try RatedAnswer.read(feedback)
                    if skipped > 0 { note("feedback: skipped \(skipped) unreadable lines of \(feedback)") }
                    judged.feedback = await pass.agreement(with: rated)
                }
                if let e = judged.firstError { note("judge: \(e)") }
                summary.judge = judged
            }
            if panel {
                let store = try panelStore(beside: idx)
                summary.panel = try store.surveys().map { PanelResults(survey: $0, votes: try store.votes($0.id)) }
            }
            if let json { try jsonString(summary).write(toFile: json, atomically: true, encoding: .utf8) }
            if let report { try HTMLReport.render(summary, rows: rows).write(toFile: report, atomically: true, encoding: .utf8) }
            printTable(summary)
            note("rows: \(rowsPath)")
            if let baseline {
                guard let data = FileManager.default.contents(atPath: baseline),
                      let old = try? JSONDecoder().decode(EvalReport.self, from: data) else {
                    throw EvalError.badBaseline("cannot read an eval summary from \(baseline)")
                }
                let regressions = summary.regressions(against: old)
                for r in regressions { print("REGRESSION \(r)") }
                if regressions.isEmpty { print("gate: no gated metric fell below \(baseline)") }
                if gate && !regressions.isEmpty { throw ExitCode(1) }
            }
        }
    }

    func printTable(_ s: EvalReport) {
        let names = s.configurations.map(\.name)
        print("metric".padding(toLength: 24, withPad: " ", startingAt: 0) + names.map { $0.padding(toLength: 24, withPad: " ", startingAt: 0) }.joined())
        for m in EvalMetric.all(retrieval: true) where s.metrics.values.contains(where: { $0[m.name] != nil }) {
            var line = m.label.padding(toLength: 24, withPad: " ", startingAt: 0)
            for n in names {
                let cell = s.metrics[n]?[m.name].map { String(format: "%.1f [%.1f, %.1f]", $0.value, $0.low, $0.high) } ?? "—"
                line += cell.padding(toLength: 24, withPad: " ", startingAt: 0)
            }
            print(line)
        }
        print(s.overheadPct.map { String(format: "eval overhead: %.2f%% of answering time", $0) } ?? "eval overhead: not measured (resumed, nothing new answered)")
        if let j = s.judge {
            for n in names {
                guard let r = j.scores[n] else { continue }
                print(String(format: "judge %@: correctness %.2f, groundedness %.2f, helpfulness %.2f (valid %d, invalid %d, errors %d)",
                             n, r.correctness.value, r.groundedness.value, r.helpfulness.value, r.counts.valid, r.counts.invalid, r.counts.errors))
            }
            if let f = j.feedback {
                print(String(format: "judge vs people: %d rated, %d judged (%d invalid, %d errors), agreement %.1f%%, kappa %@",
                             f.rated, f.judged, f.invalid, f.errors, f.agreement, f.kappa.map { String(format: "%.2f", $0) } ?? "n/a"))
            }
            for p in j.pairwise {
                print("judge A/B \(p.config) vs \(p.baseline): \(p.configWins) wins, \(p.baselineWins) losses, \(p.ties) ties, \(p.invalid) invalid, \(p.errors) errors")
            }
        }
    }

    func note(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
}

/// Puts a configuration's adapter on the model: "none", "default" (the shipped one, checksum
/// verified) or a folder; adapters are loaded once. Returns the adapter's folder (nil: none).
func adapterSwitcher(model: any LanguageModel, path: String) -> (String) throws -> String? {
    var loaded: [String: LoRAAdapter] = [:]
    return { spec in
        guard let adaptable = model as? any AdaptableModel else {
            if spec == "none" { return nil }
            throw ValidationError("this model cannot take adapters")
        }
        if spec == "none" { adaptable.adapter = nil; return nil }
        let dir: String
        if spec == "default" {
            guard DefaultAdapter.isDefaultModel(path) else { throw ValidationError("adapter=default needs the default model; give adapter=DIR") }
            dir = try DefaultAdapter.locate()
            try DefaultAdapter.verify(directory: dir)
        } else {
            dir = spec
        }
        if loaded[dir] == nil {
            loaded[dir] = try LoRAAdapter.load(directory: dir, geometry: adaptable.loraGeometry, rowOrder: adaptable.huggingFaceRowOrder).adapter
        }
        adaptable.adapter = loaded[dir]
        return dir
    }
}
