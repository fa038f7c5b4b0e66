import DamdaGuardrails
import Foundation

/// What the assistant does with personal data and prompt injection, per place: in the question
/// (before anything else sees it) and in the answer (before the reader sees it).
public struct GuardPolicy: Sendable {
    public enum PIIAction: String, Codable, Sendable, CaseIterable {
        /// The model, retrieval and every log see `[주민등록번호]` instead of the number.
        case mask
        /// Refuse with the reason; the model is not called.
        case block
        /// Leave it as it is.
        case allow
    }
    public enum InjectionAction: String, Codable, Sendable, CaseIterable { case flag, block }
    /// An answer that shares nothing with its sources: marked (`unsupported`), or replaced by the refusal.
    public enum GroundingAction: String, Codable, Sendable, CaseIterable { case flag, refuse }
    /// A retrieved chunk that addresses the model (indirect injection): noted, or left out of the prompt.
    public enum ChunkInjectionAction: String, Codable, Sendable, CaseIterable { case flag, drop }

    public var enabled = true
    /// Per type in questions; types not listed get `questionPII`.
    public var questionPIIByType: [PIIDetector.Kind: PIIAction] = [:]
    public var questionPII = PIIAction.mask
    public var injection = InjectionAction.flag
    /// Personal data the model writes into an answer (copied from a document, say).
    public var answerPII = PIIAction.mask
    public var grounding = GroundingAction.flag
    public var chunkInjection = ChunkInjectionAction.flag
    /// Scores questions by meaning too (with an index that embeds queries): a question is flagged
    /// when the patterns or the classifier flag it.
    public var injectionClassifier: InjectionClassifier?
    public init() {}

    func action(for kind: PIIDetector.Kind) -> PIIAction { questionPIIByType[kind] ?? questionPII }
}

/// Every guard decision of one answer, returned with it (`"guard"` in the JSON) and shown on the
/// web page: what was found, what was done, and why an answer was withheld.
public struct GuardDecision: Codable, Sendable, Equatable {
    public struct PIIFinding: Codable, Sendable, Equatable {
        public var type: String
        public var action: String
        public init(type: String, action: String) { self.type = type; self.action = action }
    }
    public struct Injection: Codable, Sendable, Equatable {
        public var score: Double
        public var flagged: Bool
        public var rules: [String]
        /// The classifier's probability (nil without one).
        public var classifier: Double?
    }
    /// Personal data found in the question and what was done with each.
    public var questionPII: [PIIFinding] = []
    public var injection: Injection?
    /// Why the question was not answered ("pii" or "injection"), nil when it was.
    public var blocked: String?
    /// Personal data masked in the answer, by type.
    public var answerPII: [String] = []
    /// Retrieved chunks the injection detector flagged, and whether they were left out of the prompt.
    public struct ChunkInjection: Codable, Sendable, Equatable {
        public var chunkID: String
        public var score: Double
        public var rules: [String]
        public var dropped: Bool
        enum CodingKeys: String, CodingKey { case score, rules, dropped, chunkID = "chunk_id" }
    }
    public var chunkInjection: [ChunkInjection] = []
    /// The grounding check: the share of the answer's content found in its sources, and whether the
    /// answer was withheld for sharing none (policy `refuse`).
    public struct GroundingCheck: Codable, Sendable, Equatable {
        public var support: Double
        public var withheld: Bool
    }
    public var grounding: GroundingCheck?

    enum CodingKeys: String, CodingKey {
        case injection, blocked, grounding, questionPII = "question_pii", answerPII = "answer_pii", chunkInjection = "chunk_injection"
    }
}
