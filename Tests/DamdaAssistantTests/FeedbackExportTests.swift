import DamdaAssistant
import DamdaDatasets
import DamdaEval
import DamdaRetrieval
import DamdaTestSupport
import XCTest

/// Ratings and corrections in a real SQLite feedback store over a BM25 index of the sample
/// insurance corpus become eval items, RAG training examples and preference pairs that the eval
/// and training readers take as they are; negatives get a triage label from the grounding metric.
final class FeedbackExportTests: XCTestCase {
    func testRatingsBecomeEvalTrainingAndPreferenceData() throws {
        let dir = try temporaryDirectory("feedback-export")
        defer { try? FileManager.default.removeItem(at: dir) }
        let index = try SearchIndex(directory: dir.appendingPathComponent("index").path, embedder: nil)
        _ = try index.ingest(DocumentLoader().load([repositoryRoot.appendingPathComponent("samples/insurance").path]), progress: false)
        let store = try SQLiteFeedbackStore(beside: index)

        func served(_ question: String, search: String? = nil, k: Int = 3) throws -> [Citation] {
            try index.search(search ?? question, k: k, mode: .bm25).hits.enumerated().map { Citation(n: $0.offset + 1, hit: $0.element) }
        }
        func answer(_ id: String, _ question: String, _ text: String, _ citations: [Citation]) throws -> AnswerRecord {
            let a = AnswerRecord(id: id, question: question, answer: text, citations: citations, model: "gemma-3-270m", adapter: "ko-rag")
            try store.record(a)
            return a
        }
        let daily = "입원하면 하루에 보험금을 얼마 받나요?"
        let a1 = try answer("a1", daily, "입원 1일당 10만원을 받습니다.", try served(daily))
        XCTAssertTrue(a1.citations.contains { $0.text.contains("입원 1일당 5만원") }, "the served sources hold the right amount")
        // Rated up first, then down with a correction: the latest rating counts.
        _ = try store.addFeedback(answerID: "a1", rating: .up, comment: "")
        let f1 = try XCTUnwrap(try store.addFeedback(answerID: "a1", rating: .down, comment: "금액이 틀렸어요", correction: "입원 1일당 5만원"))
        // The same question and correction on another serving: a repeat.
        _ = try answer("a1b", daily, "10만원", try served(daily))
        _ = try store.addFeedback(answerID: "a1b", rating: .down, comment: "", correction: "입원 1일당 5만원")
        // Served the wrong chunk; the index has the right one.
        let debit = "자동이체 날짜를 바꿀 수 있나요?"
        _ = try answer("a2", debit, "바꿀 수 없습니다.", try served(debit, search: "약관 목적 보험계약자", k: 1))
        _ = try store.addFeedback(answerID: "a2", rating: .down, comment: "", correction: "매월 5일, 15일, 25일 가운데 하나로 바꿀 수 있습니다")
        // No document says it.
        _ = try answer("a3", "화성 탐사 로버의 바퀴는 몇 개인가요?", "네 개입니다.", try served("보험금"))
        _ = try store.addFeedback(answerID: "a3", rating: .down, comment: "", correction: "화성 탐사 로버 퍼서비어런스의 바퀴는 여섯 개입니다")
        // Rated up, with personal data stored raw (a server run with --pii allow).
        let receipt = "병원비 영수증만으로 청구할 수 있나요? 제 번호는 010-1234-5678입니다"
        var receiptSources = try served("병원비 영수증만으로 청구할 수 있나요?")
        receiptSources[0].used = true
        _ = try answer("a4", receipt, "통원 의료비가 10만원 이하라면 영수증과 세부내역서로 청구할 수 있습니다.", receiptSources)
        _ = try store.addFeedback(answerID: "a4", rating: .up, comment: "")
        // "Not found" rated up: the documents do not answer it.
        _ = try answer("a5", "회사 주가는 얼마인가요?", PromptTemplate.refusal, [])
        _ = try store.addFeedback(answerID: "a5", rating: .up, comment: "")
        // Down without a correction.
        _ = try answer("a6", "보험료는 얼마인가요?", "월 3만원입니다.", try served("보험료"))
        _ = try store.addFeedback(answerID: "a6", rating: .down, comment: "")

        let records = try store.feedback()
        XCTAssertEqual(records.count, 8)
        func run(_ kind: FeedbackExportKind, approved: Bool = false) throws -> (rows: [String], manifest: FeedbackExportManifest, path: String) {
            var e = FeedbackExport(kind: kind, triage: FeedbackTriage(index: index))
            e.includeApproved = approved
            let (jsonl, manifest) = try e.run(records)
            let path = dir.appendingPathComponent("\(kind.rawValue).jsonl").path
            try jsonl.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertFalse(jsonl.contains("1234-5678"), "personal data is masked in every export")
            return (jsonl.split(separator: "\n").map(String.init), manifest, path)
        }

        // Triage: one label per negative, from where the correction is found.
        let triage = try run(.triage)
        let labels = Dictionary(uniqueKeysWithValues: try triage.rows.map { try JSONDecoder().decode(FeedbackTriageRow.self, from: Data($0.utf8)) }
            .map { ($0.feedbackID, $0.label) })
        XCTAssertEqual(labels[f1], .wrongAnswer)
        XCTAssertEqual(Set(labels.values), [.wrongAnswer, .retrievalMiss, .missingDocument, .needsCorrection])
        XCTAssertEqual(triage.manifest.triage, ["wrong_answer": 2, "retrieval_miss": 1, "missing_document": 1, "needs_correction": 1])
        XCTAssertEqual(triage.manifest.answers, 7, "a1's two ratings count once")
        XCTAssertEqual(triage.manifest.missingDocuments, ["화성 탐사 로버의 바퀴는 몇 개인가요?"])

        // Eval: corrections (wrong answer, retrieval miss), the answer rated up, the "not found" rated up.
        let eval = try run(.eval)
        let items = try EvalQuestion.read(eval.path)
        XCTAssertEqual(items.count, 4, eval.rows.joined(separator: "\n"))
        XCTAssertEqual(eval.manifest.duplicates, 1, "a1b repeats a1's question and correction")
        XCTAssertEqual(items.first { $0.question == daily }?.answers, ["입원 1일당 5만원"])
        let debitItem = try XCTUnwrap(items.first { $0.question == debit })
        XCTAssertEqual(debitItem.documentID, try index.search("매월 5일, 15일, 25일 가운데 하나로", k: 1, mode: .bm25).hits.first?.chunk.documentID,
                       "a retrieval miss names the document that holds the correction")
        XCTAssertEqual(items.first { $0.question.hasPrefix("병원비") }?.question, "병원비 영수증만으로 청구할 수 있나요? 제 번호는 [휴대폰번호]입니다")
        let unanswerable = try XCTUnwrap(items.first { $0.question == "회사 주가는 얼마인가요?" })
        XCTAssertEqual(unanswerable.answers, [])
        XCTAssertNil(unanswerable.documentID)

        // SFT: each correction with a context that holds it, read by the training reader as RAG records.
        let sft = try run(.sft)
        let (records2, report) = try TrainingDataReader.read(sft.path, format: .rag)
        XCTAssertEqual(report.skipped, 0)
        XCTAssertEqual(records2.count, 2)
        for r in records2 {
            guard case let .rag(question, context, answer, _) = r, let context else { return XCTFail("not a RAG record with a context: \(r)") }
            XCTAssertEqual(Grounding.support(of: answer, in: [context]), 1, "\(question): the context holds the target")
        }
        let withApproved = try run(.sft, approved: true)
        XCTAssertEqual(withApproved.rows.count, 3, "the answer rated up with sources joins; the sourceless \"not found\" does not")

        // The served context is rebuilt exactly: it is what the prompt held.
        let example = try JSONDecoder().decode(FeedbackSFTExample.self, from: Data(try XCTUnwrap(sft.rows.first).utf8))
        XCTAssertEqual(example.context, Citation.context(a1.citations))
        XCTAssertTrue(example.context.hasPrefix("[1] "), example.context)

        // DPO: only wrong answers pair (the served prompt held the correction); a1b rejected other words.
        let dpo = try run(.dpo)
        XCTAssertEqual(dpo.rows.count, 2)
        let pairs = try dpo.rows.map { try JSONDecoder().decode(FeedbackPreferencePair.self, from: Data($0.utf8)) }
        let pair = try XCTUnwrap(pairs.first { $0.feedbackID == f1 })
        XCTAssertEqual(pair.chosen, "입원 1일당 5만원")
        XCTAssertEqual(pair.rejected, "입원 1일당 10만원을 받습니다.")
        XCTAssertEqual(pair.prompt, PromptTemplate.korean.render(question: daily, context: Citation.context(a1.citations)))

        // The manifest's digest names the rows; --since keeps later ratings only.
        XCTAssertEqual(eval.manifest.sha256.count, 64)
        XCTAssertEqual(eval.manifest.rows, 4)
        let later = FeedbackExport(kind: .eval, since: Date().addingTimeInterval(3600), triage: FeedbackTriage(index: index))
        XCTAssertEqual(try later.run(records).manifest.rows, 0)
    }
}
