import ArgumentParser
import DamdaGuardrails
import Foundation

struct GuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard", abstract: "Guardrails: find personal data and prompt injection in text.", subcommands: [Check.self])

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
}
