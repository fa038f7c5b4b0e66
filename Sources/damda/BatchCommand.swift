import ArgumentParser
import DamdaAssistant
import DamdaEngine
import DamdaPostgres
import Foundation

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Answer a JSONL file of questions into a JSONL file of cited answers; a rerun resumes where a killed run stopped.",
        discussion: """
        Each input line is a JSON object with "question" and optionally "id" (a string or an integer; default \
        line-N), such as an eval questions file. Each answer is one line of --out, flushed to disk as it is \
        written; a rerun skips ids already there. Up to --concurrency questions are answered at once, their \
        tokens decoded together in one batched step. A summary (counts, skipped lines with reasons, failures, \
        rates) goes to --summary and to standard output.
        """)
    @OptionGroup var indexOptions: IndexOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var options: AssistantOptions
    @Option(name: .customLong("in"), help: "Questions (JSONL).") var input: String
    @Option(help: "Answers (JSONL), appended to and resumed.") var out: String
    @Option(help: "Questions answered at once (one batched decode step for all of them).") var concurrency = 8
    @Option(help: "Where the summary JSON goes (default: OUT with .summary.json).") var summary: String?

    func run() async throws {
        try await failing {
            guard concurrency >= 1 else { throw BatchError.badConcurrency(concurrency) }
            guard FileManager.default.fileExists(atPath: input) else { throw BatchError.unreadable(input) }
            let n = concurrency
            let assistant = try makeAssistant(indexOptions: indexOptions, modelOptions: modelOptions, options: options) { model in
                DecodeScheduler(model: model, maxActive: n, maxQueue: n, prefixCache: PrefixCache())
            }
            var job = BatchJob(questions: input, answers: out, concurrency: concurrency)
            job.answerLog = try feedbackStore(beside: assistant.index)
            let result = try await job.run(assistant: assistant) { FileHandle.standardError.write(("note: " + $0 + "\n").data(using: .utf8)!) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
            let data = try encoder.encode(result)
            let path = summary ?? (out.hasSuffix(".jsonl") ? String(out.dropLast(6)) : out) + ".summary.json"
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
