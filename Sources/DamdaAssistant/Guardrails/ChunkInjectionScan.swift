import DamdaGuardrails
import DamdaRetrieval

/// Indirect prompt injection: a retrieved chunk that tells the model what to do ("이전 지시를
/// 무시하고…", a chat-template control token, a fake [질문] block) would reach the prompt with the
/// document's authority. Each chunk the prompt may hold is scored with the question's detector;
/// flagged ones are noted in the answer's guard metadata, or (policy `drop`) left out.
struct ChunkInjectionScan {
    let action: GuardPolicy.ChunkInjectionAction
    let detector = InjectionDetector()

    func filter(_ hits: [SearchHit]) -> (kept: [SearchHit], flagged: [GuardDecision.ChunkInjection]) {
        var kept: [SearchHit] = [], flagged: [GuardDecision.ChunkInjection] = []
        for hit in hits {
            let r = detector.check(hit.chunk.text)
            if r.flagged {
                flagged.append(.init(chunkID: hit.chunk.id, score: r.score, rules: Array(Set(r.matches.map(\.rule))).sorted(), dropped: action == .drop))
                if action == .drop { continue }
            }
            kept.append(hit)
        }
        return (kept, flagged)
    }
}
