import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaEngine
import DamdaGuardrails
import DamdaModelIO
import DamdaRetrieval
import Foundation

struct GuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard", abstract: "Guardrails: find personal data and prompt injection in text.", subcommands: [Check.self, Train.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the personal data found in TEXT (type, span in Unicode scalars, confidence), the prompt-injection score (patterns and classifier) and the masked text.")
        @Flag(help: "JSON: {\"pii\": [{\"type\", \"start\", \"end\", \"confidence\"}], \"injection\": {\"score\", \"flagged\", \"matches\"}, \"classifier\": {\"probability\", \"threshold\", \"flagged\"} or null, \"masked\": \"...\"}.") var json = false
        @Option(help: "auto: the shipped prompt-injection classifier when the default model is fetched; off: the patterns alone; or a classifier file from `damda guard train`.")
        var injectionClassifier = "auto"
        @Option(help: "Path to the GGUF model the classifier reads (default: $DAMDA_MODEL, else the default model).") var model: String?
        @Argument(help: "The text to check (\"-\": read standard input).") var text: String

        struct Verdict: Encodable { var probability: Float; var threshold: Float; var flagged: Bool }
        struct Report: Encodable {
            var pii: [PIIDetector.Finding]
            /// Flagged when the patterns or the classifier flag it, as the assistant's input guard decides.
            var injection: InjectionDetector.Result
            var classifier: Verdict?
            var masked: String
            enum CodingKeys: String, CodingKey { case pii, injection, classifier, masked }
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(pii, forKey: .pii); try c.encode(injection, forKey: .injection)
                try c.encode(classifier, forKey: .classifier); try c.encode(masked, forKey: .masked)
            }
        }

        /// The classifier and the model it reads, or nil for the patterns alone (`auto` without a
        /// fetched model, too).
        func loadClassifier() throws -> (InjectionClassifier, any LanguageModel)? {
            guard injectionClassifier != "off" else { return nil }
            if injectionClassifier == "auto", (try? ModelCache.resolveModel(model)).map({ FileManager.default.fileExists(atPath: $0) }) != true { return nil }
            let lm = try loadModel(path: try ModelCache.resolveModel(model), threads: Threads.available)
            return try resolveInjectionClassifier(injectionClassifier, model: lm).map { ($0, lm) }
        }

        func run() async throws {
            let input = text == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : text
            let detector = PIIDetector()
            let findings = detector.findings(in: input)
            var injection = InjectionDetector().check(input)
            var verdict: Verdict?
            if let (classifier, lm) = try loadClassifier() {
                let p = classifier.probability(try InjectionProbe(features: classifier.features).vector(input, model: lm))
                verdict = Verdict(probability: (p * 1000).rounded() / 1000, threshold: classifier.threshold, flagged: p >= classifier.threshold)
                if p >= classifier.threshold { injection.flagged = true; injection.score = max(injection.score, Double(p)) }
            }
            let report = Report(pii: findings, injection: injection, classifier: verdict, masked: detector.masked(input, findings: findings))
            if json { print(jsonString(report)); return }
            if findings.isEmpty { print("no personal data found") }
            let scalars = Array(input.unicodeScalars)
            for f in findings {
                let span = String(String.UnicodeScalarView(scalars[f.start..<f.end]))
                print("\(f.type.label) (\(f.type.rawValue)) \(f.start)..<\(f.end) confidence \(f.confidence): \(span)")
            }
            print("injection: score \(injection.score)\(injection.flagged ? " (flagged)" : "")" +
                  (injection.matches.isEmpty ? "" : ": " + injection.matches.map(\.rule).joined(separator: ", ")))
            if let verdict {
                print(String(format: "classifier: probability %.3f (threshold %.3f)%@", verdict.probability, verdict.threshold, verdict.flagged ? ", flagged" : ""))
            } else {
                print("classifier: not used (--injection-classifier off, or no default model fetched)")
            }
            print("masked: \(report.masked)")
        }
    }

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train the prompt-injection classifier (logistic regression over the model's mean hidden state at a middle layer) on labelled JSONL sets.")
        @Option(name: .customLong("set"), help: "A labelled JSONL file {\"id\", \"text\", \"label\": \"attack\"|\"benign\"} (repeatable).")
        var sets: [String] = ["evals/injection-labelled.jsonl", "evals/injection-heldout.jsonl"]
        @Option(help: "Where to write the classifier (JSON).") var out = "models/injection-classifier.json"
        @Option(help: "Largest out-of-fold false-positive rate on the training sets' benign texts the threshold may allow.") var falsePositiveBudget = 0.005
        @Option(help: "0-based layer whose hidden states are read.") var layer = 9
        @Option(help: "Cross-validation folds for the threshold.") var folds = 5
        @Option(help: "Path to a GGUF model (default: $DAMDA_MODEL, else the default model).") var model: String?
        @Option(help: "Worker threads.") var threads = Threads.available

        func run() async throws {
            try await failing {
                let lm = try loadModel(path: try ModelCache.resolveModel(model), threads: threads)
                guard let reader = lm as? any LayerStateReading else { throw ValidationError("this model does not expose its hidden states") }
                guard (0..<reader.layerCount).contains(layer) else { throw ValidationError("--layer must be in 0..<\(reader.layerCount)") }
                var texts: [String] = [], labels: [Bool] = []
                for file in sets {
                    for item in try LabelledInjectionSet.read(file) { texts.append(item.text); labels.append(item.label == "attack") }
                }
                let probe = InjectionProbe(features: InjectionProbe.features(of: reader, layer: layer))
                let vectors = try injectionFeatures(texts, probe: probe, model: lm).vectors
                let classifier = InjectionClassifier.train(vectors: vectors, attack: labels, features: probe.features,
                                                           trainedOn: sets.map { ($0 as NSString).lastPathComponent },
                                                           folds: folds, falsePositiveBudget: falsePositiveBudget)
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys]
                try enc.encode(classifier).write(to: URL(fileURLWithPath: out), options: .atomic)
                struct Report: Encodable {
                    var out: String, examples: Int, attacks: Int, threshold: Float, validation: InjectionClassifier.Validation?
                }
                print(jsonString(Report(out: out, examples: texts.count, attacks: labels.filter { $0 }.count,
                                        threshold: classifier.threshold, validation: classifier.validation)))
            }
        }
    }
}

/// Every text's classifier features, and the milliseconds each took, with progress (rate, ETA) on
/// standard error.
func injectionFeatures(_ texts: [String], probe: InjectionProbe, model: any LanguageModel) throws -> (vectors: [[Float]], milliseconds: [Double]) {
    let bar = ProgressBar(total: Int64(texts.count), label: "model states", unit: "texts")
    defer { bar.finish() }
    let clock = ContinuousClock()
    var milliseconds: [Double] = []
    let vectors = try texts.map { text in
        let start = clock.now
        defer { milliseconds.append((clock.now - start).milliseconds); bar.advance(by: 1) }
        return try probe.vector(text, model: model)
    }
    return (vectors, milliseconds)
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
