import DamdaRetrieval
import Foundation
import XCTest

final class IngestTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-ingest-\(UUID())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("docs/sub"), withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ text: String) throws {
        try text.write(to: dir.appendingPathComponent("docs/" + name), atomically: true, encoding: .utf8)
    }

    func makeCorpus() throws {
        try write("policy.md", "# 든든보험 약관\n\n## 제3조 보험금의 지급\n\n회사는 피보험자가 입원한 경우 입원 1일당 3만원의 보험금을 지급합니다.\n\n## 제4조 보험료 납입\n\n보험료는 매월 25일에 자동이체로 납입합니다.\n")
        try write("sub/faq.html", "<html><head><title>자주 묻는 질문</title><style>p{}</style></head><body><h1>해지</h1><p>해지환급금은 &quot;해지 신청일&quot;로부터 3영업일 안에 지급됩니다.</p><script>var x = 1;</script></body></html>")
        try write("notes.txt", "청구 서류는 진단서와 영수증입니다. 팩스나 앱으로 제출할 수 있어요")
        try write("faq.csv", "id,title,text\nq1,\"청구, 기한\",\"보험금 청구는 사고일로부터 3년 안에 해야 합니다.\"\nq2,broken\n")
        try write("records.jsonl", "{\"id\": \"r1\", \"title\": \"대출\", \"text\": \"주택담보대출의 중도상환수수료는 3년간 부과됩니다.\", \"topic\": \"loan\"}\nnot json\n{\"id\": \"r2\", \"title\": \"빈\"}\n")
        try write("empty.txt", "")
        try Data([0x00, 0xFF, 0x10, 0x00, 0x42]).write(to: dir.appendingPathComponent("docs/binary.txt"))
    }

    func testLoadsEveryFormatAndReportsBadInput() throws {
        try makeCorpus()
        let r = DocumentLoader().load([dir.appendingPathComponent("docs").path])
        let titles = Set(r.documents.map(\.title))
        XCTAssertTrue(titles.isSuperset(of: ["든든보험 약관", "자주 묻는 질문", "notes", "청구, 기한", "대출"]), "\(titles)")
        let md = r.documents.first { $0.title == "든든보험 약관" }!
        XCTAssertEqual(md.sections.map(\.headingPath), [["든든보험 약관", "제3조 보험금의 지급"], ["든든보험 약관", "제4조 보험료 납입"]])
        let html = r.documents.first { $0.title == "자주 묻는 질문" }!
        XCTAssertEqual(html.sections.first?.headingPath, ["해지"])
        XCTAssertFalse(html.sections.map(\.text).joined().contains("var x"))
        XCTAssertTrue(html.sections.map(\.text).joined().contains("\"해지 신청일\""))
        XCTAssertEqual(r.documents.first { $0.id == "r1" }?.tags, ["loan"])
        // Problems: the short CSV row, the non-JSON line, the JSONL record without text, the empty and the binary file.
        let problems = r.problems.map(\.description)
        XCTAssertEqual(problems.count, 5, "\(problems)")
        XCTAssertTrue(problems.contains { $0.contains("faq.csv:3") })
        XCTAssertTrue(problems.contains { $0.contains("records.jsonl:2") })
        XCTAssertTrue(problems.contains { $0.contains("binary.txt") && $0.contains("binary") })
        XCTAssertTrue(problems.contains { $0.contains("empty.txt") })
    }

    func testIngestSearchUpdateSkipPrune() throws {
        try makeCorpus()
        let idxDir = dir.appendingPathComponent("index").path
        let idx = try SearchIndex(directory: idxDir)
        let docs = dir.appendingPathComponent("docs").path
        let first = try idx.ingest(DocumentLoader().load([docs]), progress: false)
        XCTAssertEqual(first.added, 5)
        let hits = try idx.search("입원하면 보험금을 얼마나 받나요?", k: 3)
        XCTAssertEqual(hits.first?.chunk.title, "든든보험 약관")
        XCTAssertEqual(hits.first?.chunk.headingPath.last, "제3조 보험금의 지급")
        // One chunk per document: the same best hit, then only other documents.
        let collapsed = try idx.search("입원하면 보험금을 얼마나 받나요?", k: 3, perDocument: 1)
        XCTAssertEqual(collapsed.first?.chunk.id, hits.first?.chunk.id)
        XCTAssertEqual(Set(collapsed.map(\.chunk.documentID)).count, collapsed.count)
        XCTAssertEqual(collapsed.map(\.rank), Array(1...collapsed.count))
        // The query's terms travel with the hits: relevance, sentence choice and answer coverage use them.
        let terms = hits.terms
        XCTAssertEqual(terms.query, "입원하면 보험금을 얼마나 받나요?")
        XCTAssertFalse(terms.weights.keys.contains { $0.hasPrefix("얼마") }, "question words carry no topic")
        XCTAssertEqual(hits.first!.relevance, terms.coverage(in: hits.first!.chunk.title + "\n" + hits.first!.chunk.text), accuracy: 1e-6)
        XCTAssertEqual(terms.bestSentence(["날씨가 맑습니다.", "입원하면 보험금을 지급합니다.", "보험"]), 1)
        XCTAssertEqual(terms.coverage(in: "전혀 다른 이야기"), 0)
        XCTAssertGreaterThan(terms.terms(of: "입원 보험금").weights.count, 0)
        XCTAssertEqual(try idx.search("중도상환수수료", k: 3, filter: SearchFilter(tags: ["loan"])).first?.chunk.documentID, "r1")
        XCTAssertTrue(try idx.search("중도상환수수료", k: 3, filter: SearchFilter(tags: ["insurance"])).isEmpty)

        let again = try idx.ingest(DocumentLoader().load([docs]), progress: false)
        XCTAssertEqual(again.skipped, 5); XCTAssertEqual(again.added + again.updated, 0)

        try write("notes.txt", "청구 서류는 진단서와 영수증, 통장 사본입니다.")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("docs/sub/faq.html"))
        let third = try idx.ingest(DocumentLoader().load([docs]), prune: true, progress: false)
        XCTAssertEqual(third.updated, 1); XCTAssertEqual(third.removed, 1)
        XCTAssertTrue(try idx.search("통장 사본", k: 1).first?.chunk.text.contains("통장 사본") ?? false)
        // Reopening reads the same index back from SQLite.
        let reopened = try SearchIndex(directory: idxDir)
        XCTAssertEqual(reopened.chunkCount, idx.chunkCount)
        XCTAssertThrowsError(try SearchIndex(directory: idxDir, analyzer: "whitespace"))
    }

    /// Titles are indexed with the text; an index written when only the text was (no `bm25_fields`
    /// mark) gets its terms recomputed on open, so its titles are found too.
    func testTitlesAreIndexedAlsoInOldIndexes() throws {
        let doc = Document(id: "d1", title: "자동차보험", source: "d1.txt",
                           sections: [.init(text: "사고가 나면 즉시 신고해야 합니다.", headingPath: ["제5조 사고 접수"])])
        let other = Document(id: "d2", title: "여행자 안내", source: "d2.txt", sections: [.init(text: "여권을 챙기세요.")])
        let fresh = try SearchIndex(directory: dir.appendingPathComponent("fresh").path)
        _ = try fresh.ingest(LoadResult(documents: [doc, other], problems: []), progress: false)
        XCTAssertEqual(try fresh.search("자동차보험", k: 1).first?.chunk.documentID, "d1")

        let oldDir = dir.appendingPathComponent("old")
        try FileManager.default.createDirectory(at: oldDir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: oldDir.appendingPathComponent("index.sqlite").path)
        try store.setMeta("analyzer", "bigram")
        let analyzer = HangulBigramAnalyzer()
        for d in [doc, other] {
            let chunks = Chunker().chunk(d)
            let textOnly = chunks.map { Dictionary(analyzer.terms($0.text).map { ($0, 1) }, uniquingKeysWith: +) }
            try store.replace([IngestBatchItem(document: d, hash: d.contentHash, chunks: chunks, terms: textOnly, embeddings: [])])
        }
        let old = try SearchIndex(directory: oldDir.path)
        XCTAssertEqual(try old.search("자동차보험", k: 1).first?.chunk.documentID, "d1")
    }

    func testAnIndexPathThatIsAFileIsAClearError() throws {
        let index = try SearchIndex(directory: dir.appendingPathComponent("idx").path)
        _ = try index.ingest(LoadResult(documents: [Document(id: "d1", title: "약관", source: "d1.txt", sections: [.init(text: "보험료는 매월 냅니다.")])],
                                        problems: []), progress: false)
        let database = dir.appendingPathComponent("idx/index.sqlite").path
        XCTAssertThrowsError(try SearchIndex(directory: database)) { error in
            XCTAssertEqual((error as? RetrievalError)?.message,
                           "\(database) is a file: an index is a directory (its database is DIR/index.sqlite); give the directory")
        }
        XCTAssertEqual(try SearchIndex(directory: dir.appendingPathComponent("idx").path).chunkCount, 1, "the index is untouched")
    }

    /// kill -9 during `damda ingest`, then the same command again: the index equals an uninterrupted run's.
    func testKillDuringIngestThenRerunGivesTheSameIndex() throws {
        let damda = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/release/damda").path
        guard FileManager.default.isExecutableFile(atPath: damda) else { throw XCTSkip("build damda first (swift build -c release)") }
        var lines: [String] = []
        for i in 0..<6000 {
            let text = (0..<12).map { "제\(i)-\($0)조 보험계약자 \(i * 7 + $0)번은 보험료를 납입합니다." }.joined(separator: " ")
            lines.append("{\"id\": \"doc\(i)\", \"title\": \"문서 \(i)\", \"text\": \"\(text)\"}")
        }
        let corpus = dir.appendingPathComponent("big.jsonl")
        try lines.joined(separator: "\n").write(to: corpus, atomically: true, encoding: .utf8)
        func run(_ index: String, killAfter: Double? = nil) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: damda)
            p.arguments = ["ingest", corpus.path, "--index", index, "--no-embeddings"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            if let t = killAfter {
                Thread.sleep(forTimeInterval: t)
                kill(p.processIdentifier, SIGKILL)
            }
            p.waitUntilExit()
            return p.terminationStatus
        }
        let clean = dir.appendingPathComponent("clean").path, killed = dir.appendingPathComponent("killed").path
        XCTAssertEqual(try run(clean), 0)
        _ = try run(killed, killAfter: 1.0)
        // The interrupted index holds only whole documents.
        let partial = try SearchIndex(directory: killed)
        let expectedPerDoc = try SearchIndex(directory: clean).store.documents().first!.chunks
        for d in try partial.store.documents() { XCTAssertEqual(d.chunks, expectedPerDoc, d.id) }
        XCTAssertEqual(try run(killed), 0)
        let a = try SearchIndex(directory: clean).store.documents(), b = try SearchIndex(directory: killed).store.documents()
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 6000)
    }
}
