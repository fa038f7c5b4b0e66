import ArgumentParser
import DamdaGuardrails
import DamdaModelIO
import DamdaRetrieval
import Foundation

struct GuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard", abstract: "Guardrails: find personal data and prompt injection in text.", subcommands: [Check.self, Train.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the personal data found in TEXT (type, span in Unicode scalars, confidence), the prompt-injection score and the masked text.")
        @Flag(help: "JSON: {\"pii\": [{\"type\", \"start\", \"end\", \"confidence\"}], \"injection\": {\"score\", \"flagged\", \"matches\"}, \"masked\": \"...\"}.") var json = false
        @Argument(help: "The text to check (\"-\": read standard input).") var text: String

        struct Report: Encodable { var pii: [PIIDetector.Finding]; var injection: InjectionDetector.Result; var masked: String }

        func run() async throws {
            let input = text == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : text
            let detector = PIIDetector()
            let findings = detector.findings(in: input)
            let injection = InjectionDetector().check(input)
            let report = Report(pii: findings, injection: injection, masked: detector.masked(input, findings: findings))
            if json { print(jsonString(report)); return }
            if findings.isEmpty { print("no personal data found") }
            let scalars = Array(input.unicodeScalars)
            for f in findings {
                let span = String(String.UnicodeScalarView(scalars[f.start..<f.end]))
                print("\(f.type.label) (\(f.type.rawValue)) \(f.start)..<\(f.end) confidence \(f.confidence): \(span)")
            }
            print("injection: score \(injection.score)\(injection.flagged ? " (flagged)" : "")" +
                  (injection.matches.isEmpty ? "" : ": " + injection.matches.map(\.rule).joined(separator: ", ")))
            print("masked: \(report.masked)")
        }
    }

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train the prompt-injection classifier (logistic regression over e5 query vectors) on labelled JSONL sets.")
        @Option(name: .customLong("set"), help: "A labelled JSONL file {\"id\", \"text\", \"label\": \"attack\"|\"benign\"} (repeatable).")
        var sets: [String] = ["evals/injection-labelled.jsonl", "evals/injection-heldout.jsonl"]
        @Option(help: "Where to write the classifier (JSON).") var out = "models/injection-classifier.json"
        @Option(help: "Largest false-positive rate on the training set's benign questions the threshold may allow.") var falsePositiveBudget = 0.005
        @Option(help: "Embedding model file (default: the fetched multilingual-e5-small).") var embeddingModel: String?
        @Option(help: "Worker threads.") var threads = 2

        func run() async throws {
            try await failing {
                let embedder = try e5Embedder(embeddingModel, threads: threads)
                var texts: [String] = [], labels: [Bool] = []
                for file in sets {
                    for item in try LabelledInjectionSet.read(file) { texts.append(item.text); labels.append(item.label == "attack") }
                }
                let vectors = texts.map { embedder.embed(query: $0) }
                let model = InjectionClassifier.train(vectors: vectors, attack: labels, embedder: embedder.name,
                                                      trainedOn: sets.map { ($0 as NSString).lastPathComponent }, falsePositiveBudget: falsePositiveBudget)
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys]
                try enc.encode(model).write(to: URL(fileURLWithPath: out), options: .atomic)
                let flagged = zip(vectors, labels).map { (model.probability($0.0) >= model.threshold, $0.1) }
                let recall = Double(flagged.filter { $0.0 && $0.1 }.count) / Double(max(labels.filter { $0 }.count, 1))
                let fpr = Double(flagged.filter { $0.0 && !$0.1 }.count) / Double(max(labels.filter { !$0 }.count, 1))
                print(jsonString(["out": out, "examples": "\(texts.count)", "threshold": "\(model.threshold)",
                                  "training_recall": String(format: "%.3f", recall), "training_false_positive_rate": String(format: "%.3f", fpr)]))
            }
        }
    }
}

/// `{"id", "text", "label": "attack"|"benign"}` per line.
struct LabelledInjectionSet {
    struct Item: Decodable { var id: String; var text: String; var label: String }
    static func read(_ file: String) throws -> [Item] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
        var items: [Item] = []
        for (n, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let item = try? JSONDecoder().decode(Item.self, from: Data(line.utf8)), ["attack", "benign"].contains(item.label) else {
                throw ValidationError("\(file):\(n + 1) is not {\"id\", \"text\", \"label\": \"attack\"|\"benign\"}")
            }
            items.append(item)
        }
        return items
    }
}

/// The fetched multilingual-e5-small, or `path`.
func e5Embedder(_ path: String?, threads: Int) throws -> E5Embedder {
    let file = path ?? ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
    guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("no embedding model at \(file) (run `damda model fetch --embedding`)") }
    return try E5Embedder(path: file, threads: threads)
}
