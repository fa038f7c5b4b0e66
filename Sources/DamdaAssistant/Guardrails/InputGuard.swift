import DamdaGuardrails
import Foundation

/// The first stage of the pipeline: personal data in the question is masked (or the question is
/// blocked, or left) and prompt injection is scored (flagged or blocked), before the rewrite,
/// retrieval, the model or any log sees the question.
public struct InputGuard: Sendable {
    public var policy: GuardPolicy
    var pii = PIIDetector()
    var injection = InjectionDetector()
    public init(policy: GuardPolicy) { self.policy = policy }

    /// The question the rest of the pipeline gets, and what was decided.
    public func check(_ question: String) -> (question: String, decision: GuardDecision) {
        var decision = GuardDecision()
        let findings = pii.findings(in: question)
        var masked: [PIIDetector.Finding] = []
        for f in findings {
            let action = policy.action(for: f.type)
            decision.questionPII.append(.init(type: f.type.rawValue, action: action.rawValue))
            if action == .block { decision.blocked = "pii" }
            if action == .mask { masked.append(f) }
        }
        var text = masked.isEmpty ? question : pii.masked(question, findings: masked)
        let score = injection.check(text)
        decision.injection = .init(score: score.score, flagged: score.flagged, rules: Array(Set(score.matches.map(\.rule))).sorted())
        if score.flagged && policy.injection == .block && decision.blocked == nil { decision.blocked = "injection" }
        if decision.blocked == "pii" { text = pii.masked(question, findings: findings) }   // never pass a blocked number on, even to logs
        return (text, decision)
    }

    /// Adds the classifier's verdict on the (masked) question's features (`InjectionProbe`):
    /// flagged when the patterns or the classifier flag it, blocked under policy `block`.
    public func classify(_ decision: inout GuardDecision, vector: [Float]) {
        guard let model = policy.injectionClassifier, var injection = decision.injection else { return }
        let p = model.probability(vector)
        injection.classifier = (Double(p) * 1000).rounded() / 1000
        if p >= model.threshold {
            injection.flagged = true
            injection.rules.append("classifier")
            injection.score = max(injection.score, Double(p))
            if policy.injection == .block && decision.blocked == nil { decision.blocked = "injection" }
        }
        decision.injection = injection
    }

    /// The text without the labels masking wrote (for retrieval).
    public static func withoutMaskLabels(_ text: String) -> String {
        var out = text
        for kind in PIIDetector.Kind.allCases { out = out.replacingOccurrences(of: "[\(kind.label)]", with: " ") }
        return out == text ? text : out.split(separator: " ").joined(separator: " ")
    }

    /// What the reader is told instead of an answer (defensive UX: say why).
    public static func refusal(for reason: String, decision: GuardDecision) -> String {
        switch reason {
        case "pii":
            let labels = decision.questionPII.filter { $0.action == "block" }.compactMap { PIIDetector.Kind(rawValue: $0.type)?.label }
            return "질문에 개인정보(\(Array(Set(labels)).sorted().joined(separator: ", ")))가 있어 답하지 않았습니다. 개인정보를 빼고 다시 물어봐 주세요."
        default:
            return "질문이 시스템의 지시를 바꾸거나 숨겨진 정보를 요구하는 것으로 보여 답하지 않았습니다. 궁금한 내용을 다시 물어봐 주세요."
        }
    }
}
