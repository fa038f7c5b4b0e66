import Foundation

/// What an adapter was calibrated for, beside its weights: `assistant.json` in the adapter folder
/// (`{"refusal_threshold": 0.5, "calibrated_on": "..."}`). The assistant reads it when its options
/// say `auto`; an adapter without the file runs with the assistant's plain defaults.
public struct AdapterSettings: Codable, Sendable, Equatable {
    /// The refusal's first-token probability at which the model may refuse (see `FirstTokenGate`).
    public var refusalThreshold: Float?
    /// How the values were chosen (questions, metric), for the reader.
    public var calibratedOn: String?

    public static let fileName = "assistant.json"

    enum CodingKeys: String, CodingKey { case refusalThreshold = "refusal_threshold", calibratedOn = "calibrated_on" }

    public init(refusalThreshold: Float? = nil, calibratedOn: String? = nil) {
        self.refusalThreshold = refusalThreshold; self.calibratedOn = calibratedOn
    }

    /// The folder's settings; nil when it has no `assistant.json`. A file that does not parse, or a
    /// threshold outside 0…1, is an error naming the file: it never silently falls back.
    public static func read(directory: String) throws -> AdapterSettings? {
        let path = directory + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path),
              let settings = try? JSONDecoder().decode(AdapterSettings.self, from: data) else {
            throw AdapterFileError.badSettings(path: path, why: "not JSON of the form {\"refusal_threshold\": 0.5}")
        }
        if let t = settings.refusalThreshold, !(0...1).contains(t) {
            throw AdapterFileError.badSettings(path: path, why: "refusal_threshold \(t) is outside 0…1")
        }
        return settings
    }
}
