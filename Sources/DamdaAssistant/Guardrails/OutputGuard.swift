import DamdaGuardrails
import Foundation

/// The answer's personal-data re-scan: a number the model copied from a document is masked
/// before the reader sees it. While streaming, a trailing run that may still become a number or an
/// address is held back until it is complete.
public struct OutputGuard: Sendable {
    public var policy: GuardPolicy
    var pii = PIIDetector()
    public init(policy: GuardPolicy) { self.policy = policy }

    /// The answer to show and the types masked in it.
    public func check(_ answer: String) -> (answer: String, masked: [String]) {
        guard policy.enabled, policy.answerPII != .allow else { return (answer, []) }
        let findings = pii.findings(in: answer)
        guard !findings.isEmpty else { return (answer, []) }
        return (pii.masked(answer, findings: findings), findings.map(\.type.rawValue))
    }

    /// The grounding check on a finished answer: the share of its content units (syllable bigrams,
    /// numbers) found in the chunks it was given, and whether policy `refuse` withholds it for
    /// sharing none.
    public func grounding(of answer: String, sources: [String]) -> GuardDecision.GroundingCheck {
        let support = Grounding.support(of: answer, in: sources)
        return .init(support: (support * 1000).rounded() / 1000, withheld: policy.enabled && policy.grounding == .refuse && support == 0)
    }

    /// The part of a partial answer that is safe to stream: masked, without a trailing run of
    /// digits, letters and separators that the next tokens may turn into personal data.
    public func streamable(_ partial: String) -> String {
        guard policy.enabled, policy.answerPII != .allow else { return partial }
        var cut = partial.endIndex
        while cut > partial.startIndex {
            let c = partial[partial.index(before: cut)]
            guard c.isASCII && (c.isNumber || c.isLetter || "-.@_+() ".contains(c)) else { break }
            cut = partial.index(before: cut)
        }
        return check(String(partial[..<cut])).answer
    }
}
