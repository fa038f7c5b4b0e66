import DamdaAssistant
import Foundation

extension EvalRunner {
    /// Each configuration's answers to `questions`, one configuration after another on the runner's
    /// model (its adapter switched as the eval switches it), for a blind A/B survey.
    public func panelAnswers(_ configs: [EvalConfiguration], questions: [BatchQuestion],
                             progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> [PanelConfigAnswers] {
        let total = configs.count * questions.count
        var out: [PanelConfigAnswers] = []
        for (ci, config) in configs.enumerated() {
            let assistant = try assistant(for: config)
            var answers: [(id: String, question: String, answer: PanelAnswer)] = []
            for (qi, q) in questions.enumerated() {
                let a = try await assistant.answer(q.question)
                answers.append((q.id, q.question, PanelAnswer(config: config.name, a)))
                progress(ci * questions.count + qi + 1, total)
            }
            out.append(PanelConfigAnswers(name: config.name, answers: answers))
        }
        return out
    }
}

extension PanelConfigSpec {
    /// The eval configuration it names: a preset (`peft+rag`), a preset or any name changed by a
    /// SPEC, or with no SPEC the defaults (the shipped adapter with hybrid retrieval).
    public func configuration() throws -> EvalConfiguration {
        if spec.trimmingCharacters(in: .whitespaces).isEmpty {
            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw EvalError.badConfiguration("a configuration needs a name") }
            return EvalConfiguration.preset(name) ?? EvalConfiguration(name: name)
        }
        return try EvalConfiguration.parse("\(name)=\(spec)")
    }
}
