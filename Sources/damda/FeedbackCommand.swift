import ArgumentParser
import DamdaAssistant
import DamdaPostgres
import Foundation

struct FeedbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback", abstract: "The feedback flywheel: ratings and corrections become eval and training data.",
        subcommands: [FeedbackExportCommand.self])
}

struct FeedbackExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export the index's ratings as eval items, RAG training examples, preference pairs or triaged negatives.",
        discussion: """
        --as eval: {id, question, answers, doc_id} for `damda eval --qa` (answers rated up, corrections of answers rated \
        down; a "not found" rated up becomes an unanswerable item). --as sft: {question, context, answer, doc_id} for \
        `damda train --format rag`, a correction paired with the context that holds it. --as dpo: {prompt, chosen, \
        rejected}, the correction chosen over the served answer on the served prompt. --as triage: every negative with a \
        suggested label (wrong_answer, retrieval_miss, missing_document, needs_correction) and why. Personal data is \
        masked, repeats dropped; OUT.manifest.json records counts, skips and the rows' SHA-256.
        """)
    @OptionGroup var indexOptions: IndexOptions
    @Option(name: .customLong("as"), help: "eval, sft, dpo or triage.") var kind: String
    @Option(help: "Output JSONL (its manifest goes beside it).") var out: String
    @Option(help: "Only ratings given on or after this date (YYYY-MM-DD or an ISO 8601 time).") var since: String?
    @Flag(help: "sft: also answers rated up, with the context they were served.") var includeApproved = false

    func run() async throws {
        try await failing {
            guard let k = FeedbackExportKind(rawValue: kind) else { throw ValidationError("--as must be eval, sft, dpo or triage") }
            let sinceDate = try since.map { s -> Date in
                if let d = ISO8601DateFormatter().date(from: s) { return d }
                let day = DateFormatter()
                day.locale = Locale(identifier: "en_US_POSIX"); day.timeZone = TimeZone(identifier: "UTC"); day.dateFormat = "yyyy-MM-dd"
                guard let d = day.date(from: s) else { throw ValidationError("--since must be YYYY-MM-DD or an ISO 8601 time (got '\(s)')") }
                return d
            }
            guard FileManager.default.fileExists(atPath: indexOptions.index) else { throw ValidationError("no index at \(indexOptions.index)") }
            let index = try indexOptions.open(embedder: nil)
            let store = try feedbackStore(beside: index)
            var export = FeedbackExport(kind: k, since: sinceDate, triage: FeedbackTriage(index: index))
            export.includeApproved = includeApproved
            let panel = try panelStore(beside: index)
            let (jsonl, manifest) = try export.run(try store.feedback(), preferences: k == .dpo ? try panel.preferences() : [],
                                                   panelCorrections: k == .sft ? try panel.corrections() : [])
            try Data(jsonl.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
            let data = try encoder.encode(manifest)
            try data.write(to: URL(fileURLWithPath: (out.hasSuffix(".jsonl") ? String(out.dropLast(6)) : out) + ".manifest.json"), options: .atomic)
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
