import DamdaCore
import DamdaAssistant
import Foundation
import Hummingbird

/// The blind A/B panel's API: surveys of two or more configurations' answers, the next item for
/// an evaluator (answers as "1" and "2" in a random order), votes with the 1–5 survey, results.
struct PanelRoutes {
    let server: ServerState

    func register(_ v1: RouterGroup<BasicRequestContext>) {
        v1.get("panel/surveys") { _, _ in try JSONResponse.encodable(try self.server.panel.surveys()) }
        v1.post("panel/surveys") { req, _ in try await self.create(req) }
        v1.get("panel/surveys/:id/next") { req, ctx in try self.next(req, try Self.survey(ctx)) }
        v1.post("panel/surveys/:id/votes") { req, ctx in try await self.vote(req, try Self.survey(ctx)) }
        v1.get("panel/surveys/:id/results") { _, ctx in try self.results(try Self.survey(ctx)) }
        v1.get("panel/jobs/:id") { _, ctx in try self.job(try Self.survey(ctx)) }
    }

    static func survey(_ ctx: BasicRequestContext) throws -> String {
        guard let id = ctx.parameters.get("id"), !id.isEmpty else { throw APIError.missing("id") }
        return id
    }

    static func apiError(_ e: PanelError) -> APIError {
        switch e {
        case .unknownSurvey, .unknownItem: APIError.notFound(e.message)
        case .duplicateVote: APIError(.conflict, e.message, code: "duplicate_vote")
        case .notShown: APIError(.conflict, e.message, code: "not_shown")
        case .duplicateSurvey: APIError(.conflict, e.message, code: "duplicate_survey")
        case .badSurvey, .badVote: APIError(.badRequest, e.message, code: "invalid_value")
        }
    }

    func panel<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as PanelError { throw Self.apiError(e) }
    }

    /// `{"name", "configs": [{"name", "answers": [lines of a damda batch answers file]}]}`, or
    /// `{"name", "questions": ["…" or {"id", "question"}], "configs": [{"name", "spec"}]}`: the
    /// server answers every question under each configuration (the eval's SPEC) in the background
    /// and creates the survey; the reply (202) is the job, polled at /v1/panel/jobs/ID.
    func create(_ request: Request) async throws -> Response {
        let body = try await JSONBody(request, limit: server.maxBodyBytes)
        let name = try body.requiredString("name")
        if body.has("questions") { return try createFromConfigurations(body, name: name) }
        guard let list = body.object["configs"] as? [[String: Any]] else { throw APIError.invalid("configs", "must be an array of {name, answers}") }
        var configs: [PanelConfigAnswers] = []
        for (i, c) in list.enumerated() {
            guard let n = c["name"] as? String, let answers = c["answers"] as? [Any] else {
                throw APIError.invalid("configs", "item \(i + 1) needs a string \"name\" and an \"answers\" array")
            }
            var rows: [(id: String, question: String, answer: PanelAnswer)] = []
            for (j, a) in answers.enumerated() {
                guard let data = try? JSONSerialization.data(withJSONObject: a), let r = try? JSONDecoder().decode(BatchResult.self, from: data) else {
                    throw APIError.invalid("configs", "item \(i + 1) answer \(j + 1) is not a line of a `damda batch` answers file")
                }
                rows.append((r.id, r.question, PanelAnswer(config: n, r)))
            }
            configs.append(PanelConfigAnswers(name: n, answers: rows))
        }
        let survey = try panel { try server.panel.createSurvey(name: name, configs: configs) }
        return try JSONResponse.encodable(survey, status: .created)
    }

    func next(_ request: Request, _ survey: String) throws -> Response {
        guard let evaluator = request.uri.queryParameters.get("evaluator").map { String($0) }, !evaluator.isEmpty else { throw APIError.missing("evaluator") }
        guard let task = try panel({ try server.panel.nextTask(survey: survey, evaluator: evaluator) }) else {
            let s = try panel { try server.panel.survey(survey) }
            return try JSONResponse.object(["survey_id": survey, "done": s.items, "total": s.items, "finished": true])
        }
        return try JSONResponse.encodable(task)
    }

    /// `{"item_id", "evaluator", "choice": "1"|"2"|"tie", "ratings": {"1": {accuracy, grounding, usefulness}, "2": {…}}, "correction"}`.
    func vote(_ request: Request, _ survey: String) async throws -> Response {
        let body = try await JSONBody(request, limit: server.maxBodyBytes)
        let item = try body.requiredString("item_id")
        let evaluator = try body.requiredString("evaluator")
        guard let choice = PanelChoice(rawValue: try body.requiredString("choice")) else { throw APIError.invalid("choice", "must be \"1\", \"2\" or \"tie\"") }
        var ratings: [String: PanelRatings] = [:]
        if body.has("ratings") {
            guard let r = body.object["ratings"] as? [String: Any] else { throw APIError.invalid("ratings", "must be an object keyed by \"1\" and \"2\"") }
            for (slot, value) in r {
                guard let o = value as? [String: Any], let data = try? JSONSerialization.data(withJSONObject: o),
                      let parsed = try? JSONDecoder().decode(PanelRatings.self, from: data) else {
                    throw APIError.invalid("ratings", "\"\(slot)\" needs integer accuracy, grounding and usefulness from 1 to 5")
                }
                ratings[slot] = parsed
            }
        }
        // A correction becomes training data: personal data in it is masked before it is stored.
        let correction = DocumentRedactor().masked(try body.string("correction") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard correction.count <= 10_000 else { throw APIError.invalid("correction", "is longer than 10,000 characters") }
        let v = try panel {
            try server.panel.vote(survey: survey, item: item, evaluator: evaluator, choice: choice, ratings: ratings, correction: correction)
        }
        // The slots' configurations stay hidden from the page until the results.
        return try JSONResponse.object(["id": v.id, "survey_id": survey, "item_id": item, "choice": choice.rawValue], status: .created)
    }

    func results(_ survey: String) throws -> Response {
        let (s, votes) = try panel { (try server.panel.survey(survey), try server.panel.votes(survey)) }
        return try JSONResponse.encodable(PanelResults(survey: s, votes: votes))
    }

    /// Largest survey the server answers in one job.
    static let maxGeneratedAnswers = 2_000

    func createFromConfigurations(_ body: JSONBody, name: String) throws -> Response {
        guard let jobs = server.panelJobs else {
            throw APIError(.badRequest, "this server cannot answer configurations: upload `damda batch` answer files instead", code: "invalid_value")
        }
        guard let list = body.object["questions"] as? [Any] else { throw APIError.invalid("questions", "must be an array of questions") }
        var questions: [BatchQuestion] = []
        for (i, q) in list.enumerated() {
            let text: String?, id: String
            if let s = q as? String { text = s; id = "q\(i + 1)" } else if let o = q as? [String: Any] {
                text = o["question"] as? String
                id = (o["id"] as? String) ?? (o["id"] as? Int).map(String.init) ?? "q\(i + 1)"
            } else { text = nil; id = "" }
            guard let t = text?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else {
                throw APIError.invalid("questions", "item \(i + 1) must be a non-empty question (a string or {\"id\", \"question\"})")
            }
            questions.append(BatchQuestion(id: id, question: t, line: i + 1))
        }
        guard let cs = body.object["configs"] as? [[String: Any]] else { throw APIError.invalid("configs", "must be an array of {name, spec}") }
        let configs = try cs.enumerated().map { i, c -> PanelConfigSpec in
            guard let n = c["name"] as? String else { throw APIError.invalid("configs", "item \(i + 1) needs a string \"name\"") }
            guard c["spec"] == nil || c["spec"] is String || c["spec"] is NSNull else { throw APIError.invalid("configs", "item \(i + 1): \"spec\" must be a string") }
            return PanelConfigSpec(name: n.trimmingCharacters(in: .whitespaces), spec: (c["spec"] as? String) ?? "")
        }
        guard questions.count * configs.count <= Self.maxGeneratedAnswers else {
            throw APIError.invalid("questions", "asks for \(questions.count * configs.count) answers; at most \(Self.maxGeneratedAnswers) per survey")
        }
        do {
            return try JSONResponse.encodable(try jobs.start(name: name, configs: configs, questions: questions), status: .accepted)
        } catch let e as PanelError { throw Self.apiError(e) } catch let e as any DamdaError {
            throw APIError(.badRequest, e.message, code: "invalid_value")
        }
    }

    func job(_ id: String) throws -> Response {
        guard let job = server.panelJobs?.job(id) else { throw APIError.notFound("no survey job with id '\(id)'") }
        return try JSONResponse.encodable(job)
    }
}
