import DamdaCore
import Foundation

/// A configuration as the eval names it: `NAME` and a SPEC such as `adapter=none,k=3`.
public struct PanelConfigSpec: Sendable, Codable, Equatable {
    public var name: String
    public var spec: String
    public init(name: String, spec: String) { self.name = name; self.spec = spec }
}

/// Answers a question set under each configuration, for a survey the administrator defined by
/// configurations rather than by answer files. The server's implementation runs on its own copy of
/// the model, so switching adapters between configurations never touches the answers it serves.
public protocol PanelAnswering: Sendable {
    /// Rejects a bad SPEC (unknown key, a value out of range, an adapter that does not load) before any work.
    func check(_ configs: [PanelConfigSpec]) throws
    /// Each configuration's answers, in configuration order; `progress(done, total)` after each answer.
    func answers(_ configs: [PanelConfigSpec], questions: [BatchQuestion],
                 progress: @escaping @Sendable (Int, Int) -> Void) async throws -> [PanelConfigAnswers]
}

/// A survey being made: its configurations answer the questions, then the survey is created.
public struct PanelJob: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case queued, running, done, failed }
    public var id: String
    public var name: String
    public var status: Status
    /// Answers written so far and in all (questions × configurations).
    public var done: Int
    public var total: Int
    public var survey: PanelSurvey?
    public var error: String?
}

/// Survey jobs, one at a time (they share one model copy), kept in memory: a job lives as long as
/// the server; its survey, once created, is in the panel store like any other.
public final class PanelJobs: @unchecked Sendable {
    let lock = NSLock()
    var jobs: [String: PanelJob] = [:]
    var tail: Task<Void, Never>?
    public let answering: any PanelAnswering
    let store: PanelStore

    public init(answering: any PanelAnswering, store: PanelStore) { self.answering = answering; self.store = store }

    public func job(_ id: String) -> PanelJob? { lock.withLock { jobs[id] } }

    func update(_ id: String, _ change: (inout PanelJob) -> Void) { lock.withLock { if var j = jobs[id] { change(&j); jobs[id] = j } } }

    /// Checks the survey's shape and SPECs now (errors are the caller's), then queues the work.
    public func start(name: String, configs: [PanelConfigSpec], questions: [BatchQuestion]) throws -> PanelJob {
        let title = try PanelStore.checkShape(name: name, configs: configs.map(\.name))
        guard !questions.isEmpty else { throw PanelError.badSurvey("there are no questions") }
        guard Set(questions.map(\.id)).count == questions.count else { throw PanelError.badSurvey("question ids must be distinct") }
        try answering.check(configs)
        let job = PanelJob(id: "job_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased(), name: title, status: .queued, done: 0,
                           total: questions.count * configs.count, survey: nil, error: nil)
        let id = job.id
        let work: @Sendable () async -> Void = { [self] in
            update(id) { $0.status = .running }
            do {
                let answers = try await answering.answers(configs, questions: questions) { [weak self] done, total in
                    self?.update(id) { $0.done = done; $0.total = total }
                }
                let survey = try store.createSurvey(name: title, configs: answers)
                update(id) { $0.status = .done; $0.survey = survey }
            } catch {
                update(id) { $0.status = .failed; $0.error = (error as? any DamdaError)?.message ?? String(describing: error) }
            }
        }
        lock.withLock {
            jobs[id] = job
            let previous = tail
            tail = Task.detached { await previous?.value; await work() }
        }
        return job
    }
}
