import Crypto
import DamdaDatasets
import Foundation

/// The exact cache's key: the normalized question plus everything else that shapes an answer (model,
/// adapter, template, retrieval, sampling, guard policy) and the tenant it was served to, hashed.
/// Two requests share a key only when the pipeline would have produced the same answer for both.
public struct CacheKey: Sendable, Hashable {
    /// SHA-256 of the settings and the question.
    public let value: String
    /// SHA-256 of the settings and scope alone: the semantic cache compares questions within it.
    public let settings: String

    public init(question: String, config: AssistantConfig, model: String, adapter: String?, indexIdentity: String) {
        let settings = Self.describe(config: config, model: model, adapter: adapter, indexIdentity: indexIdentity)
        self.settings = Self.sha256(settings)
        value = Self.sha256(settings + "\u{1E}" + Self.normalize(question))
    }

    /// NFC, lower case, runs of whitespace as one space, question and closing punctuation dropped:
    /// "보험금은  언제 받나요?" and "보험금은 언제 받나요" are the same question.
    public static func normalize(_ question: String) -> String {
        let chars = Array(question.precomposedStringWithCanonicalMapping.lowercased())
        var out = ""
        var space = false
        for (i, c) in chars.enumerated() {
            if c.isWhitespace { space = !out.isEmpty; continue }
            // A thousands separator stays ("1,000만원"); other punctuation separates words.
            let digitComma = c == "," && i > 0 && i + 1 < chars.count && chars[i - 1].isNumber && chars[i + 1].isNumber
            if c.isPunctuation && !"%.-/".contains(c) && !digitComma || c == "~" { space = space || !out.isEmpty; continue }
            if space { out.append(" "); space = false }
            out.append(c)
        }
        while out.last == "." { out.removeLast() }
        return out
    }

    /// Every setting that changes an answer, in a fixed order.
    static func describe(config c: AssistantConfig, model: String, adapter: String?, indexIdentity: String) -> String {
        let policy = c.guardrails
        let piiByType = policy.questionPIIByType.map { "\($0.key.rawValue)=\($0.value.rawValue)" }.sorted().joined(separator: ",")
        let parts: [String] = [
            "scope=\(c.cacheScope)", "model=\(model)", "adapter=\(adapter ?? "-")", "index=\(indexIdentity)",
            "template=\(c.template.text)", "chat=\(c.chatTemplate.map { String(describing: $0) } ?? "-")",
            "k=\(c.k)", "mode=\(c.mode?.rawValue ?? "auto")", "budget=\(c.budgetTokens)", "packing=\(c.contextPacking.rawValue)", "max_tokens=\(c.maxAnswerTokens)",
            "sources=\(c.filter.sources.sorted())", "tags=\(c.filter.tags.sorted())", "excluded=\(c.filter.excludedDocuments.sorted())",
            "sampling=\(String(describing: c.sampling))", "min_relevance=\(c.minRelevance)", "min_similarity=\(c.minSimilarity.map { "\($0)" } ?? "-")",
            "retrieval=\(c.useRetrieval)", "refusal_threshold=\(c.refusalThreshold.map { "\($0)" } ?? "-")", "refusal_probe=\(c.refusalProbe.map { "\($0.layer),\($0.bias),\($0.adapterSHA256 ?? "-")" } ?? "-")",
            "refusal_threshold_without_sources=\(c.refusalThresholdWithoutSources.map { "\($0)" } ?? "-")", "rewrite=\(c.rewrite.rawValue)",
            "guard=\(policy.enabled),\(policy.questionPII.rawValue),\(piiByType),\(policy.injection.rawValue),\(policy.answerPII.rawValue),\(policy.grounding.rawValue),\(policy.chunkInjection.rawValue)",
        ]
        return parts.joined(separator: "\u{1F}")
    }

    static func sha256(_ s: String) -> String {
        SHA256.hash(data: Data(s.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
