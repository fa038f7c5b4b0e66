import DamdaDatasets
import Foundation

extension PanelAnswer {
    /// A served answer, with its sources and the context they formed.
    public init(config: String, _ a: AssistantAnswer) {
        self.init(config: config, answer: a.answer,
                  citations: a.citations.map { PanelCitation(n: $0.n, title: $0.title, source: $0.source, text: $0.text) },
                  context: Citation.context(a.citations))
    }

    /// A line of a `damda batch` answers file.
    public init(config: String, _ r: BatchResult) {
        self.init(config: config, answer: r.answer,
                  citations: r.citations.map { PanelCitation(n: $0.n, title: $0.title, source: $0.source, text: $0.text) },
                  context: ContextBuilder.render(r.citations.map {
                      (ContextBuilder.header($0.n, title: $0.title, headingPath: $0.heading, page: $0.page), $0.text)
                  }))
    }
}

extension PanelConfigAnswers {
    /// One configuration's answers from a `damda batch` answers file; a line that is not a batch
    /// answer is an error naming it.
    public static func read(name: String, batchAnswers path: String) throws -> PanelConfigAnswers {
        guard let data = FileManager.default.contents(atPath: path) else { throw BatchError.unreadable(path) }
        var answers: [(id: String, question: String, answer: PanelAnswer)] = []
        for (i, raw) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !raw.isEmpty {
            guard let r = try? JSONDecoder().decode(BatchResult.self, from: Data(raw)) else {
                throw PanelError.badSurvey("\(path):\(i + 1) is not a line of a `damda batch` answers file")
            }
            answers.append((r.id, r.question, PanelAnswer(config: name, r)))
        }
        return PanelConfigAnswers(name: name, answers: answers)
    }
}
