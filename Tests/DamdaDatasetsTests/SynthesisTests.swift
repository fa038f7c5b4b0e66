import DamdaDatasets
import DamdaRetrieval
import DamdaTestSupport
import Foundation
import XCTest

/// Questions from documents without a model, their filters, augmentation and cleaning.
final class SynthesisTests: XCTestCase {
    static let policy = """
        "입원"이란 의사가 필요하다고 인정하여 의료기관에 6시간 이상 머물며 치료를 받는 것을 말합니다. \
        회사는 피보험자가 질병 또는 상해로 입원한 경우 입원 1일당 5만원의 입원일당을 지급합니다. \
        다만 입원일당은 하나의 질병에 대하여 180일을 한도로 지급합니다. \
        회사는 서류를 받은 날부터 3영업일 이내에 보험금을 지급합니다. \
        금융분쟁조정위원회는 보험금 분쟁의 조정을 담당합니다.
        """
    static let loan = "대출을 만기 전에 갚으면 중도상환수수료로 남은 원금의 1.2%를 냅니다. 이 수수료는 대출 후 3년이 지나면 면제됩니다."

    func index() throws -> SearchIndex {
        let dir = try temporaryDirectory("synthesis")
        let docs = LoadResult(documents: [
            Document(id: "policy", title: "실손보험 약관", source: "policy.md", sections: [.init(text: Self.policy)]),
            Document(id: "loan", title: "대출 안내", source: "loan.md", sections: [.init(text: Self.loan)]),
        ])
        let idx = try SearchIndex(directory: dir.path)
        _ = try idx.ingest(docs, progress: false)
        return idx
    }

    func testKoreanQuestionForms() {
        XCTAssertEqual(KoreanQuestions.question(from: "보험금을 지급합니다."), "보험금을 지급하나요?")
        XCTAssertEqual(KoreanQuestions.question(from: "보험금을 지급합니다.", style: .hapnida), "보험금을 지급합니까?")
        XCTAssertEqual(KoreanQuestions.question(from: "해지할 수 있습니다"), "해지할 수 있나요?")
        XCTAssertEqual(KoreanQuestions.restyle("얼마를 지급하나요?", to: .banmal), "얼마를 지급해?")
        XCTAssertEqual(KoreanQuestions.question(from: "1989년에 수배되었다."), "1989년에 수배되었나요?")
        XCTAssertEqual(KoreanQuestions.question(from: "시위를 주도했다."), "시위를 주도했나요?")
        XCTAssertNil(KoreanQuestions.question(from: "보험금 지급"), "no ending to turn")
    }

    func testSpansBecomeQuestionsThatDoNotCopyTheSentence() {
        let chunk = Chunk(documentID: "policy", ordinal: 0, text: Self.policy, title: "약관", source: "policy.md", headingPath: [], page: nil)
        let qs = ExtractiveSynthesizer(perChunk: 20).questions(for: chunk)
        let byAnswer = Dictionary(qs.map { ($0.answers[0], $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(byAnswer["5만원"]?.question, "입원 1일당 얼마의 입원일당을 지급하나요?")
        XCTAssertEqual(byAnswer["180일"]?.question, "입원일당은 하나의 질병에 대하여 며칠을 한도로 지급하나요?")
        XCTAssertEqual(byAnswer["3영업일"]?.question, "서류를 받은 날부터 며칠 이내에 보험금을 지급하나요?")
        XCTAssertEqual(byAnswer["입원"]?.generator, "extractive/definition")
        XCTAssertEqual(byAnswer["금융분쟁조정위원회"]?.question, "보험금 분쟁의 조정을 담당하는 곳은 어디인가요?")
        XCTAssertTrue(qs.allSatisfy { q in q.answers.allSatisfy { Self.policy.contains($0) } }, "every answer is a span of the chunk")
        XCTAssertFalse(qs.contains { $0.answers[0] == "1일" }, "1일당 is a rate, not a period")
        XCTAssertTrue(ExtractiveSynthesizer().questions(for: Chunk(documentID: "x", ordinal: 0, text: "Hello world.", title: "", source: "",
                                                                    headingPath: [], page: nil)).isEmpty)
    }

    func testFiltersAreCountedAndARerunResumes() async throws {
        let idx = try index()
        var synthesis = QuestionSynthesis(index: idx, mode: .bm25)
        synthesis.progress = false
        var kept: [SynthesizedQuestion] = [], done: [String] = []
        let summary = try await synthesis.run(existing: [], doneChunks: [], emit: { kept.append($0) }, chunkDone: { done.append($0) })
        XCTAssertEqual(summary.candidates, summary.kept + summary.dropped.values.reduce(0, +))
        XCTAssertEqual(summary.kept, kept.count)
        XCTAssertGreaterThan(summary.kept, 2)
        XCTAssertEqual(Set(kept.map(\.id)).count, kept.count)
        for q in kept {
            let hits = try idx.search(q.question, k: 5)
            XCTAssertTrue(hits.contains { $0.chunk.id == q.chunkID }, "round trip: \(q.question)")
        }
        let again = try await synthesis.run(existing: kept, doneChunks: Set(done), emit: { _ in XCTFail("all chunks were done") }, chunkDone: { _ in })
        XCTAssertEqual(again.chunks, 0)
        // The same questions again are duplicates of the kept ones.
        let repeated = try await synthesis.run(existing: kept, doneChunks: [], emit: { _ in }, chunkDone: { _ in })
        XCTAssertEqual(repeated.kept, 0)
        XCTAssertEqual(repeated.dropped["duplicate"], summary.kept)
    }

    func testTeacherRepliesAreValidatedAgainstTheSchema() {
        let chunk = Chunk(documentID: "policy", ordinal: 0, text: Self.policy, title: "약관", source: "policy.md", headingPath: [], page: nil)
        // Wrapped in prose and a code fence, with a brace inside a string: still one valid object.
        let reply = """
            네, 만들었습니다.
            ```json
            {"questions": [{"question": "입원하면 하루에 얼마 받나요? {참고}", "answer": "5만원", "evidence": "입원 1일당 5만원의 입원일당을 지급합니다."},
                           {"question": "한도는 며칠인가요?", "answer": "180일", "evidence": "문서에 없는 인용"},
                           {"question": "", "answer": "x"}]}
            ```
            """
        let qs = TeacherSynthesizer.questions(fromReply: reply, chunk: chunk, model: "teacher-7b", perChunk: 3)
        XCTAssertEqual(qs?.map(\.answers), [["5만원"], ["180일"]], "the empty question is dropped")
        XCTAssertEqual(qs?.first?.evidence, "입원 1일당 5만원의 입원일당을 지급합니다.", "a quote of the chunk is kept")
        XCTAssertTrue(qs?[1].evidence.hasPrefix("다만 입원일당은") == true, "a quote not in the chunk is replaced by the sentence holding the answer")
        XCTAssertEqual(qs?.first?.generator, "teacher/teacher-7b")
        XCTAssertNil(TeacherSynthesizer.questions(fromReply: "답변", chunk: chunk, model: "m", perChunk: 3), "no JSON")
        XCTAssertNil(TeacherSynthesizer.questions(fromReply: #"{"question": "a", "answer": "b"}"#, chunk: chunk, model: "m", perChunk: 3),
                     "JSON without the schema")
        XCTAssertEqual(TeacherSynthesizer.questions(fromReply: #"{"questions": []}"#, chunk: chunk, model: "m", perChunk: 3)?.count, 0)
    }

    func testNounAnswersAndClauseEndings() {
        let chunk = Chunk(documentID: "kq", ordinal: 0, text: "임종석은 경희대 학생회관 건물 계단에서 검거되었다. PC용 데모는 2007년 8월 20일 공식적으로 공개됐고, 인터뷰에서 발표되기도 했다.",
                          title: "", source: "", headingPath: [], page: nil)
        let qs = ExtractiveSynthesizer(perChunk: 20).questions(for: chunk)
        let byAnswer = Dictionary(qs.map { ($0.answers[0], $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(byAnswer["학생회관 건물 계단"]?.question, "임종석은 경희대 어디에서 검거되었나요?", "bare nouns join the phrase")
        XCTAssertEqual(byAnswer["2007년 8월 20일"]?.question, "PC용 데모는 언제 공식적으로 공개됐나요?", "the question ends with its own clause")
        XCTAssertEqual(KoreanQuestions.question(from: "큰 도움이 됐습니다."), "큰 도움이 됐나요?")
    }

    func testAugmentationKeepsAnswersAndIsDeterministic() {
        var e = QAExample(SynthesizedQuestion(id: "q1", question: "입원 1일당 얼마를 지급하나요?", answers: ["5만원"], documentID: "policy",
                                             chunkID: "c", evidence: "", generator: "extractive/amount"))
        e.context = "가나다라입니다. 입원 1일당 5만원을 지급합니다. 180일이 한도입니다. 서류는 3일 안에 냅니다."
        let a = Augmenter(factor: 10, seed: 1)
        let variants = a.augment(e)
        XCTAssertEqual(variants.first, e)
        XCTAssertTrue(variants.dropFirst().allSatisfy { $0.answers == e.answers && $0.augmentation != nil })
        let tags = Set(variants.compactMap(\.augmentation))
        XCTAssertTrue(tags.isSuperset(of: ["style:hapnida", "style:banmal", "question_word", "spacing", "context_order"]), "\(tags)")
        XCTAssertTrue(variants.contains { $0.question == "입원 1일당 얼마를 지급합니까?" })
        XCTAssertEqual(a.augment(e), variants, "the same seed gives the same variants")
        XCTAssertEqual(Augmenter(factor: 3, seed: 1).augment(e).count, 3)
    }

    func testCleaningAndTheSplitByDocument() throws {
        XCTAssertEqual(DataCleaner.standardize("  “보험금”은  언제  주나요？？ "), "\"보험금\"은 언제 주나요?")
        func ex(_ id: String, _ q: String, _ doc: String) -> QAExample {
            QAExample(SynthesizedQuestion(id: id, question: q, answers: ["5만원"], documentID: doc, chunkID: "", evidence: "", generator: ""))
        }
        let rows = [ex("1", "입원하면 얼마 받나요?", "policy"), ex("2", "입원하면  얼마 받나요？", "policy"), ex("3", "오늘 날씨는 어떤가요?", "policy")]
        var cleaner = DataCleaner()
        cleaner.index = try index()
        let (kept, s) = try cleaner.clean(rows)
        XCTAssertEqual(s.duplicates, 1)
        XCTAssertEqual(s.offDomain, 1, "the weather question matches no chunk")
        XCTAssertEqual(kept.map(\.id), ["1"])
        // Personal data is masked wherever it appears in an example.
        var withPII = ex("4", "제 번호 010-1234-5678로 입원 보험금 문의드려요", "policy")
        withPII.context = "고객 주민번호 900101-1234568"
        let (scrubbed, ps) = try DataCleaner().clean([withPII])
        XCTAssertEqual(scrubbed.first?.question, "제 번호 [휴대폰번호]로 입원 보험금 문의드려요")
        XCTAssertEqual(scrubbed.first?.context, "고객 주민번호 [주민등록번호]")
        XCTAssertEqual(ps.piiMasked, 1)
        XCTAssertEqual(ps.piiByType, ["mobile_phone": 1, "resident_registration_number": 1])
        let many = (0..<200).map { ex("\($0)", "질문 \($0)?", "doc-\($0 % 20)") }
        let parts = DataCleaner.split(many, shares: [0.8, 0.1, 0.1])
        XCTAssertEqual(parts.map(\.count).reduce(0, +), 200)
        let docs = parts.map { Set($0.compactMap(\.documentID)) }
        XCTAssertTrue(docs[0].isDisjoint(with: docs[2]) && docs[0].isDisjoint(with: docs[1]) && docs[1].isDisjoint(with: docs[2]), "no document in two splits")
        XCTAssertEqual(DataCleaner.split(many, shares: [0.8, 0.1, 0.1]).map { $0.map(\.id) }, parts.map { $0.map(\.id) }, "stable")
    }
}
