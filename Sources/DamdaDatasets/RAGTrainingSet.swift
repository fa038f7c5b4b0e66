import DamdaCore
import DamdaRetrieval
import Foundation

/// RAG training examples built the way the assistant prompts: each (question, answer) record gets
/// a retrieved context (gold chunk among distractors, within the prompt budget), and a share of
/// them become unanswerable (distractors only, answered "답변을 찾을 수 없습니다.").
public struct RAGTrainingSet {
    public var sampler: RAGContextSampler
    public var renderer: ExampleRenderer
    /// Share of examples turned unanswerable.
    public var unanswerableShare: Double
    /// Longest sequence: the context budget shrinks so that prompt and answer fit.
    public var maxLength: Int

    public init(sampler: RAGContextSampler, renderer: ExampleRenderer, unanswerableShare: Double, maxLength: Int) {
        self.sampler = sampler; self.renderer = renderer; self.unanswerableShare = unanswerableShare; self.maxLength = maxLength
    }

    /// Renders `records` (non-RAG records are skipped); the seed fixes which become unanswerable
    /// and the distractors' order.
    public func build(_ records: [TrainingRecord], seed: UInt64, progress: Bool = true) throws -> TrainingSet {
        var rng = SplitMix64(seed: seed ^ 0xC0_47E7)
        var out = TrainingSet()
        let bar = progress ? ProgressBar(total: Int64(records.count), label: "contexts", unit: "ex") : nil
        let tokenizer = renderer.tokenizer
        for (i, r) in records.enumerated() {
            guard case let .rag(question, _, answer, documentID) = r else { continue }
            let refuse = rng.nextUnit() < unanswerableShare
            let target = refuse ? PromptTemplate.refusal : answer
            let answerTokens = tokenizer.encode(target, addSpecial: false, parseSpecial: false).count + 2
            let budget = min(sampler.builder.budgetTokens, maxLength - answerTokens)
            guard let context = try sampler.context(question: question, answer: answer, documentID: documentID,
                                                    unanswerable: refuse, budget: budget, rng: &rng) else { out.withoutContext += 1; continue }
            out.sequences.append(renderer.rag(question: question, context: context, answer: target))
            out.unanswerable += refuse ? 1 : 0
            bar?.update(to: Int64(i + 1))
        }
        bar?.finish()
        return out
    }
}
