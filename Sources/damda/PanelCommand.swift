import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaPostgres
import Foundation

struct PanelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "panel", abstract: "Blind A/B surveys of configurations' answers, rated on the evaluator panel (/panel of damda serve).",
        subcommands: [PanelCreateCommand.self, PanelResultsCommand.self])
}

struct PanelCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a survey from two or more configurations' answers: `damda batch` answer files, or configurations (the eval's SPEC) that answer a questions file.",
        discussion: "From answer files: damda batch --in q.jsonl --out rag.jsonl --no-adapter; damda batch --in q.jsonl --out peft-rag.jsonl; "
            + "damda panel create --index IDX --name 'PEFT+RAG vs RAG' --config rag=rag.jsonl --config peft+rag=peft-rag.jsonl. "
            + "From configurations: damda panel create --index IDX --name 'k 5 vs 2' --questions q.jsonl --config peft+rag --config k2=k=2 "
            + "(SPEC keys as in damda eval: adapter, retrieval, k, budget, template, chat, max-tokens, refusal-threshold).")
    @OptionGroup var indexOptions: IndexOptions
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The survey's name.") var name: String
    @Option(help: "NAME=ANSWERS.jsonl per configuration (two or more); with --questions, NAME=SPEC or a preset (base, rag, peft, peft+rag).") var config: [String] = []
    @Option(help: "Questions JSONL ({\"question\", \"id\"?} per line): each configuration answers them here, then the survey is made.") var questions: String?

    func run() async throws {
        try await failing {
            guard FileManager.default.fileExists(atPath: indexOptions.index) else { throw ValidationError("no index at \(indexOptions.index)") }
            let configs: [PanelConfigAnswers]
            if let questions {
                let (qs, skipped, _) = try BatchJob.readQuestions(questions)
                for s in skipped { note("\(questions):\(s.line): skipped, \(s.reason)") }
                let specs = config.map { c -> PanelConfigSpec in
                    guard let eq = c.firstIndex(of: "=") else { return PanelConfigSpec(name: c, spec: "") }
                    return PanelConfigSpec(name: String(c[..<eq]), spec: String(c[c.index(after: eq)...]))
                }
                guard specs.count >= 2 else { throw ValidationError("give two or more --config NAME=SPEC") }
                guard !qs.isEmpty else { throw ValidationError("\(questions) has no questions") }
                let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: modelOptions.threads))
                let answering = LocalPanelAnswering(index: idx, modelPath: try modelOptions.resolvedModel(), threads: modelOptions.threads)
                try answering.check(specs)
                let bar = ProgressBar(total: Int64(qs.count * specs.count), label: "panel", unit: "answers")
                configs = try await answering.answers(specs, questions: qs) { done, _ in bar.update(to: Int64(done)) }
                bar.finish()
                let survey = try panelStore(beside: idx).createSurvey(name: name, configs: configs)
                print(jsonString(survey))
                return
            }
            configs = try config.map { spec -> PanelConfigAnswers in
                guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else { throw ValidationError("--config must be NAME=ANSWERS.jsonl (got '\(spec)')") }
                return try PanelConfigAnswers.read(name: String(spec[..<eq]), batchAnswers: String(spec[spec.index(after: eq)...]))
            }
            let store = try panelStore(beside: try indexOptions.open(embedder: nil))
            let survey = try store.createSurvey(name: name, configs: configs)
            print(jsonString(survey))
        }
    }

    func note(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
}

struct PanelResultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results", abstract: "A survey's win rates (95% Wilson intervals) and mean ratings per criterion, as JSON.")
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "Survey id (default: the latest).") var survey: String?

    func run() async throws {
        try await failing {
            guard FileManager.default.fileExists(atPath: indexOptions.index) else { throw ValidationError("no index at \(indexOptions.index)") }
            let store = try panelStore(beside: try indexOptions.open(embedder: nil))
            guard let id = try survey ?? store.surveys().last?.id else { throw ValidationError("the index has no survey: create one with `damda panel create`") }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
            print(String(decoding: try encoder.encode(PanelResults(survey: try store.survey(id), votes: try store.votes(id))), as: UTF8.self))
        }
    }
}
