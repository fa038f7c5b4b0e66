import DamdaAssistant
import DamdaDatasets
import Foundation

/// One configuration of the assistant to evaluate: which adapter, which retrieval, which prompt.
/// `damda eval --config NAME=SPEC` where SPEC is `key=value` pairs joined by commas:
/// `adapter=default|none|DIR`, `retrieval=auto|none|bm25|vector|hybrid`, `k=8`, `budget=512`,
/// `template=FILE`, `chat=true|false`, `max-tokens=128`, `refusal-threshold=auto|off|P`,
/// `refusal-probe=auto|off|FILE`, `context=chunks|sentences`. The seed's four configurations are
/// presets by name (`base`, `rag`, `peft`, `peft+rag`); a SPEC given with such a name changes only
/// the keys it names.
public struct EvalConfiguration: Sendable, Codable, Equatable {
    public var name: String
    /// "default" (the shipped adapter on the default model), "none", or an adapter folder.
    public var adapter = "default"
    /// "none": the model alone; "auto": hybrid when the index has embeddings, else BM25.
    public var retrieval = "auto"
    public var k = AssistantConfig().k
    public var budget = 512
    public var template: String?
    public var chat = false
    public var maxTokens = 128
    /// "auto" (the adapter's calibrated threshold, from its assistant.json), "off" (argmax), or a probability.
    public var refusalThreshold = "auto"
    /// "auto" (the adapter's refusal-probe.json when it has one), "off" (first-token probability), or a probe file.
    public var refusalProbe = "auto"
    /// How the prompt's budget is shared among the chunks.
    public var context = AssistantConfig().contextPacking

    public init(name: String) { self.name = name }

    enum CodingKeys: String, CodingKey { case name, adapter, retrieval, k, budget, template, chat, maxTokens, refusalThreshold, refusalProbe, context }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        adapter = try c.decodeIfPresent(String.self, forKey: .adapter) ?? "default"
        retrieval = try c.decodeIfPresent(String.self, forKey: .retrieval) ?? "auto"
        k = try c.decodeIfPresent(Int.self, forKey: .k) ?? 5
        budget = try c.decodeIfPresent(Int.self, forKey: .budget) ?? 512
        template = try c.decodeIfPresent(String.self, forKey: .template)
        chat = try c.decodeIfPresent(Bool.self, forKey: .chat) ?? false
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 128
        // Reports written before the key existed ran with argmax refusals.
        refusalThreshold = try c.decodeIfPresent(String.self, forKey: .refusalThreshold) ?? "off"
        // ... and those written before refusal probes without one.
        refusalProbe = try c.decodeIfPresent(String.self, forKey: .refusalProbe) ?? "off"
        // ... and those before context packing with whole chunks.
        context = try c.decodeIfPresent(ContextPacking.self, forKey: .context) ?? .chunks
    }

    public var usesRetrieval: Bool { retrieval != "none" }

    /// The seed's experiment: base model and adapter, each with and without retrieval.
    public static let seedNames = ["base", "rag", "peft", "peft+rag"]

    public static func preset(_ name: String) -> EvalConfiguration? {
        var c = EvalConfiguration(name: name)
        switch name {
        case "base": c.adapter = "none"; c.retrieval = "none"
        case "rag": c.adapter = "none"
        case "peft": c.retrieval = "none"
        case "peft+rag": break
        default: return nil
        }
        return c
    }

    /// Parses `NAME` (a preset) or `NAME=SPEC`.
    public static func parse(_ text: String) throws -> EvalConfiguration {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        let name = parts[0].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { throw EvalError.badConfiguration("\"\(text)\": a configuration needs a name (NAME=SPEC)") }
        var c = preset(name) ?? EvalConfiguration(name: name)
        if parts.count == 1 {
            guard preset(name) != nil else {
                throw EvalError.badConfiguration("\"\(name)\" is not a preset (\(seedNames.joined(separator: ", "))): give NAME=SPEC")
            }
            return c
        }
        for pair in parts[1].split(separator: ",") where !pair.trimmingCharacters(in: .whitespaces).isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { throw EvalError.badConfiguration("\(name): \"\(pair)\" is not key=value") }
            let (key, value) = (kv[0], kv[1])
            func int() throws -> Int {
                guard let v = Int(value), v > 0 else { throw EvalError.badConfiguration("\(name): \(key) must be a positive integer, not \"\(value)\"") }
                return v
            }
            switch key {
            case "adapter": c.adapter = value
            case "retrieval":
                guard ["auto", "none", "bm25", "vector", "hybrid"].contains(value) else {
                    throw EvalError.badConfiguration("\(name): retrieval must be auto, none, bm25, vector or hybrid, not \"\(value)\"")
                }
                c.retrieval = value
            case "k": c.k = try int()
            case "budget": c.budget = try int()
            case "max-tokens": c.maxTokens = try int()
            case "template": c.template = value
            case "refusal-threshold":
                guard value == "auto" || value == "off" || Float(value).map({ (0...1).contains($0) }) == true else {
                    throw EvalError.badConfiguration("\(name): refusal-threshold must be auto, off or a number in 0…1, not \"\(value)\"")
                }
                c.refusalThreshold = value
            case "refusal-probe": c.refusalProbe = value
            case "context":
                guard let packing = ContextPacking(rawValue: value) else {
                    throw EvalError.badConfiguration("\(name): context must be \(ContextPacking.allCases.map(\.rawValue).joined(separator: " or ")), not \"\(value)\"")
                }
                c.context = packing
            case "chat":
                guard let b = Bool(value) else { throw EvalError.badConfiguration("\(name): chat must be true or false") }
                c.chat = b
            default:
                throw EvalError.badConfiguration("\(name): unknown key \"\(key)\" (adapter, retrieval, k, budget, template, chat, max-tokens, refusal-threshold, refusal-probe, context)")
            }
        }
        return c
    }

    /// "adapter=none, retrieval=auto, k=8, budget=512, context=sentences", for the report.
    public var summary: String {
        var s = "adapter=\(adapter), retrieval=\(retrieval)"
        if usesRetrieval { s += ", k=\(k), budget=\(budget), context=\(context.rawValue)" }
        if let t = template { s += ", template=\(t)" }
        if chat { s += ", chat" }
        if refusalThreshold != "auto" { s += ", refusal-threshold=\(refusalThreshold)" }
        if refusalProbe != "auto" { s += ", refusal-probe=\(refusalProbe)" }
        return s
    }
}
