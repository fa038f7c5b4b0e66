import ArgumentParser
import DamdaGuardrails
import Foundation

struct GuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard", abstract: "Guardrails: find personal data in text.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the personal data found in TEXT (type, span in Unicode scalars, confidence) and the masked text.")
        @Flag(help: "JSON: {\"pii\": [{\"type\", \"start\", \"end\", \"confidence\"}], \"masked\": \"...\"}.") var json = false
        @Argument(help: "The text to check (\"-\": read standard input).") var text: String

        struct Report: Encodable { var pii: [PIIDetector.Finding]; var masked: String }

        func run() async throws {
            let input = text == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : text
            let detector = PIIDetector()
            let findings = detector.findings(in: input)
            let report = Report(pii: findings, masked: detector.masked(input, findings: findings))
            if json { print(jsonString(report)); return }
            if findings.isEmpty { print("no personal data found") }
            let scalars = Array(input.unicodeScalars)
            for f in findings {
                let span = String(String.UnicodeScalarView(scalars[f.start..<f.end]))
                print("\(f.type.label) (\(f.type.rawValue)) \(f.start)..<\(f.end) confidence \(f.confidence): \(span)")
            }
            print("masked: \(report.masked)")
        }
    }
}
