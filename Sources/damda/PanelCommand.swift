import ArgumentParser
import DamdaAssistant
import DamdaPostgres
import Foundation

struct PanelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "panel", abstract: "Blind A/B surveys of configurations' answers, rated on the evaluator panel (/panel of damda serve).",
        subcommands: [PanelCreateCommand.self, PanelResultsCommand.self])
}

struct PanelCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a survey from two or more `damda batch` answers files of the same questions.",
        discussion: "Example: damda batch --in q.jsonl --out rag.jsonl --no-adapter; damda batch --in q.jsonl --out peft-rag.jsonl; "
            + "damda panel create --index IDX --name 'PEFT+RAG vs RAG' --config rag=rag.jsonl --config peft+rag=peft-rag.jsonl")
    @OptionGroup var indexOptions: IndexOptions
    @Option(help: "The survey's name.") var name: String
    @Option(help: "NAME=ANSWERS.jsonl, one per configuration (two or more).") var config: [String] = []

    func run() async throws {
        try await failing {
            let configs = try config.map { spec -> PanelConfigAnswers in
                guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else { throw ValidationError("--config must be NAME=ANSWERS.jsonl (got '\(spec)')") }
                return try PanelConfigAnswers.read(name: String(spec[..<eq]), batchAnswers: String(spec[spec.index(after: eq)...]))
            }
            guard FileManager.default.fileExists(atPath: indexOptions.index) else { throw ValidationError("no index at \(indexOptions.index)") }
            let store = try panelStore(beside: try indexOptions.open(embedder: nil))
            let survey = try store.createSurvey(name: name, configs: configs)
            print(jsonString(survey))
        }
    }
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
