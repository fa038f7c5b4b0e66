import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaGuardrails
import DamdaRetrieval
import Foundation

/// The prompt-injection detector on labelled sets (`{"id", "text", "label": "attack"|"benign"}` per
/// line): recall on attacks and false-positive rate on benign questions, per file, with every
/// miss and false alarm listed so a reader can see what the rules do not cover.
struct GuardBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard", abstract: "Prompt-injection recall and false-positive rate on labelled JSONL sets (JSON).")
    @Option(name: .customLong("set"), help: "A labelled JSONL file (repeatable; default: the three in evals/).")
    var sets: [String] = ["evals/injection-labelled.jsonl", "evals/injection-heldout.jsonl", "evals/injection-test.jsonl"]
    @Option(help: "Flag at or above this score.") var threshold = 0.5
    @Option(help: "Also score with this classifier (from `damda guard train`) and with rules or classifier together.") var classifier: String?
    @Option(name: .customLong("model"), help: "Path to the GGUF model the classifier reads (default: $DAMDA_MODEL, else the default model).") var modelPath: String?
    @Option(help: "Worker threads.") var threads = Threads.available
    @Flag(help: "Print JSON (the only output format).") var json = false

    typealias Item = LabelledInjectionSet.Item

    struct SetReport: Encodable {
        var file: String, detector: String = "rules", attacks: Int, benign: Int, caught: Int, falseAlarms: Int, recall: Double, falsePositiveRate: Double
        var missed: [String], falseAlarmTexts: [String]
        /// Milliseconds per text the classifier's model states took (median; classifier rows only).
        var featureMilliseconds: Double?
        enum CodingKeys: String, CodingKey {
            case file, detector, attacks, benign, caught, recall, missed, featureMilliseconds = "feature_ms_median"
            case falseAlarms = "false_alarms", falsePositiveRate = "false_positive_rate", falseAlarmTexts = "false_alarm_texts"
        }
    }

    func run() async throws {
        var detector = InjectionDetector()
        detector.threshold = threshold
        var reports: [SetReport] = []
        let model = try classifier.map { try InjectionClassifier.read($0) }
        let lm = try model.map { _ in try loadModel(path: try ModelCache.resolveModel(modelPath), threads: threads) }
        if let model, let lm, let why = InjectionProbe(features: model.features).mismatch(with: lm) { throw ValidationError("the classifier cannot read this model: \(why)") }
        for file in sets {
            let items = try LabelledInjectionSet.read(file)
            let attacks = items.filter { $0.label == "attack" }, benign = items.filter { $0.label == "benign" }
            func share(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : (Double(a) / Double(b) * 1000).rounded() / 1000 }
            func report(_ name: String, _ flagged: (Item) -> Bool) -> SetReport {
                let missed = attacks.filter { !flagged($0) }.map(\.text)
                let alarms = benign.filter(flagged).map(\.text)
                return SetReport(file: file, detector: name, attacks: attacks.count, benign: benign.count, caught: attacks.count - missed.count,
                                 falseAlarms: alarms.count, recall: share(attacks.count - missed.count, attacks.count),
                                 falsePositiveRate: share(alarms.count, benign.count), missed: missed, falseAlarmTexts: alarms)
            }
            let byRules = Dictionary(uniqueKeysWithValues: items.map { ($0.id, detector.check($0.text).flagged) })
            reports.append(report("rules") { byRules[$0.id] ?? false })
            if let model, let lm {
                let (vectors, milliseconds) = try injectionFeatures(items.map(\.text), probe: InjectionProbe(features: model.features), model: lm)
                let byModel = Dictionary(uniqueKeysWithValues: zip(items, vectors).map { ($0.id, model.probability($1) >= model.threshold) })
                var byClassifier = report("classifier") { byModel[$0.id] ?? false }
                byClassifier.featureMilliseconds = (milliseconds.sorted()[milliseconds.count / 2] * 10).rounded() / 10
                reports.append(byClassifier)
                reports.append(report("rules+classifier") { (byRules[$0.id] ?? false) || (byModel[$0.id] ?? false) })
            }
        }
        print(jsonString(reports))
    }
}

/// The personal-data detector on a labelled set (`{"id", "text", "pii": [{"type", "value"}]}` per
/// line, `evals/pii-labelled.jsonl`): per-type precision and recall (a finding counts when its type
/// and exact span match a labelled value), and every miss and false alarm listed.
struct PIIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pii", abstract: "Personal-data detector precision and recall per type on a labelled JSONL set (JSON).")
    @Option(name: .customLong("set"), help: "A labelled JSONL file.") var set = "evals/pii-labelled.jsonl"

    struct Item: Decodable {
        struct Value: Decodable { var type: String; var value: String }
        var id: String; var text: String; var pii: [Value]
    }

    struct TypeReport: Encodable {
        var type: String, labelled: Int, found: Int, correct: Int, precision: Double, recall: Double
    }

    struct Report: Encodable {
        var file: String, lines: Int, values: Int, linesWithoutPII: Int
        var microPrecision: Double, microRecall: Double
        var falseAlarmsOnLinesWithoutPII: Int
        var types: [TypeReport]
        var missed: [String], falseAlarms: [String]
        enum CodingKeys: String, CodingKey {
            case file, lines, values, types, missed
            case linesWithoutPII = "lines_without_pii", microPrecision = "micro_precision", microRecall = "micro_recall"
            case falseAlarmsOnLinesWithoutPII = "false_alarms_on_lines_without_pii", falseAlarms = "false_alarms"
        }
    }

    func run() async throws {
        guard let text = try? String(contentsOfFile: set, encoding: .utf8) else { throw ValidationError("cannot read \(set)") }
        var items: [Item] = []
        for (n, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let item = try? JSONDecoder().decode(Item.self, from: Data(line.utf8)) else {
                throw ValidationError("\(set):\(n + 1) is not {\"id\", \"text\", \"pii\": [{\"type\", \"value\"}]}")
            }
            items.append(item)
        }
        let detector = PIIDetector()
        var labelled: [String: Int] = [:], found: [String: Int] = [:], correct: [String: Int] = [:]
        var missed: [String] = [], alarms: [String] = []
        var alarmsOnClean = 0
        for item in items {
            let scalars = Array(item.text.unicodeScalars)
            let findings = detector.findings(in: item.text).map { f in
                (type: f.type.rawValue, value: String(String.UnicodeScalarView(scalars[f.start..<f.end])))
            }
            for v in item.pii {
                labelled[v.type, default: 0] += 1
                if findings.contains(where: { $0.type == v.type && $0.value == v.value }) { correct[v.type, default: 0] += 1 } else {
                    missed.append("\(item.id) \(v.type) '\(v.value)' found \(findings.map { "\($0.type) '\($0.value)'" })")
                }
            }
            for f in findings {
                found[f.type, default: 0] += 1
                if !item.pii.contains(where: { $0.type == f.type && $0.value == f.value }) {
                    alarms.append("\(item.id) \(f.type) '\(f.value)' in: \(item.text)")
                    if item.pii.isEmpty { alarmsOnClean += 1 }
                }
            }
        }
        func share(_ a: Int, _ b: Int) -> Double { b == 0 ? 1 : (Double(a) / Double(b) * 1000).rounded() / 1000 }
        let types = PIIDetector.Kind.allCases.map(\.rawValue).filter { labelled[$0] != nil || found[$0] != nil }.map { t in
            TypeReport(type: t, labelled: labelled[t] ?? 0, found: found[t] ?? 0, correct: correct[t] ?? 0,
                       precision: share(correct[t] ?? 0, found[t] ?? 0), recall: share(correct[t] ?? 0, labelled[t] ?? 0))
        }
        let tp = correct.values.reduce(0, +)
        print(jsonString(Report(file: set, lines: items.count, values: labelled.values.reduce(0, +), linesWithoutPII: items.filter { $0.pii.isEmpty }.count,
                                microPrecision: share(tp, found.values.reduce(0, +)), microRecall: share(tp, labelled.values.reduce(0, +)),
                                falseAlarmsOnLinesWithoutPII: alarmsOnClean, types: types, missed: missed, falseAlarms: alarms)))
    }
}
