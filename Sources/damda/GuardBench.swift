import ArgumentParser
import DamdaGuardrails
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
    @Flag(help: "Print JSON (the only output format).") var json = false

    struct Item: Decodable { var id: String; var text: String; var label: String }

    struct SetReport: Encodable {
        var file: String, attacks: Int, benign: Int, caught: Int, falseAlarms: Int, recall: Double, falsePositiveRate: Double
        var missed: [String], falseAlarmTexts: [String]
        enum CodingKeys: String, CodingKey {
            case file, attacks, benign, caught, recall, missed
            case falseAlarms = "false_alarms", falsePositiveRate = "false_positive_rate", falseAlarmTexts = "false_alarm_texts"
        }
    }

    func run() async throws {
        var detector = InjectionDetector()
        detector.threshold = threshold
        var reports: [SetReport] = []
        for file in sets {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
            var items: [Item] = []
            for (n, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let item = try? JSONDecoder().decode(Item.self, from: Data(line.utf8)), ["attack", "benign"].contains(item.label) else {
                    throw ValidationError("\(file):\(n + 1) is not {\"id\", \"text\", \"label\": \"attack\"|\"benign\"}")
                }
                items.append(item)
            }
            let attacks = items.filter { $0.label == "attack" }, benign = items.filter { $0.label == "benign" }
            let missed = attacks.filter { !detector.check($0.text).flagged }.map(\.text)
            let alarms = benign.filter { detector.check($0.text).flagged }.map(\.text)
            func share(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : (Double(a) / Double(b) * 1000).rounded() / 1000 }
            reports.append(SetReport(file: file, attacks: attacks.count, benign: benign.count, caught: attacks.count - missed.count,
                                     falseAlarms: alarms.count, recall: share(attacks.count - missed.count, attacks.count),
                                     falsePositiveRate: share(alarms.count, benign.count), missed: missed, falseAlarmTexts: alarms))
        }
        print(jsonString(reports))
    }
}
