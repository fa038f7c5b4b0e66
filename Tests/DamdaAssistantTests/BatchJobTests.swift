import DamdaAssistant
import DamdaEngine
import DamdaRetrieval
import DamdaTestSupport
import XCTest

/// `BatchJob` on the default model over the sample insurance corpus: answers decoded together in
/// batched steps are the lone assistant's answers, broken lines are counted skips, and a run cut
/// mid-write resumes without asking a question twice or losing one.
final class BatchJobTests: XCTestCase {
    func testBatchedAnswersMatchLoneAnswersAndAKilledRunResumes() async throws {
        let model = try loadModel(path: try defaultModelPath(), threads: 2)
        let dir = try temporaryDirectory("batch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let index = try SearchIndex(directory: dir.appendingPathComponent("index").path, embedder: nil)
        _ = try index.ingest(DocumentLoader().load([repositoryRoot.appendingPathComponent("samples/insurance").path]), progress: false)
        var config = AssistantConfig()
        config.maxAnswerTokens = 16
        let scheduler = DecodeScheduler(model: model, maxActive: 3, maxQueue: 3)
        let batched = Assistant(index: index, generator: scheduler, config: config, modelName: "gemma-3-270m")
        let lone = Assistant(index: index, generator: Generator(model: model), config: config, modelName: "gemma-3-270m")

        let questions = dir.appendingPathComponent("questions.jsonl").path
        try """
        {"id": "q1", "question": "입원하면 하루에 보험금을 얼마 받나요?"}
        {"id": 2, "question": "보험료를 연체하면 계약이 어떻게 되나요?"}
        not json at all

        {"id": "q1", "question": "같은 id가 두 번"}
        {"question": "화성 탐사 로버의 바퀴는 몇 개인가?"}
        {"id": true, "question": "id가 참/거짓"}
        {"id": "q5", "question": "   "}
        {"id": "q6", "question": "청약을 철회할 수 있는 기간은 언제까지인가요?"}
        """.write(toFile: questions, atomically: true, encoding: .utf8)

        let answers = dir.appendingPathComponent("answers.jsonl").path
        let full = try await BatchJob(questions: questions, answers: answers, concurrency: 3).run(assistant: batched)
        XCTAssertEqual(full.lines, 8)
        XCTAssertEqual(full.questions, 4)
        XCTAssertEqual(full.answered, 4)
        XCTAssertEqual(full.refused, 1, "the off-topic question")
        XCTAssertEqual(full.skipped.map(\.line), [3, 5, 7, 8])
        XCTAssertTrue(full.skipped[1].reason.contains("duplicate id 'q1' (first on line 1)"), full.skipped[1].reason)
        XCTAssertTrue(full.failed.isEmpty)
        XCTAssertNotNil(full.meanDecodeBatch)
        XCTAssertGreaterThan(full.meanDecodeBatch!, 1, "answers decoded together")

        let rows = try readResults(answers)
        XCTAssertEqual(Set(rows.map(\.id)), ["q1", "2", "line-6", "q6"])
        for row in rows {
            let alone = try await lone.answer(row.question)
            var expected = BatchResult(id: row.id, alone)
            expected.answerID = row.answerID
            XCTAssertEqual(row, expected, "batched and lone answers differ for \(row.id)")
        }

        // A kill mid-write: two whole lines and half of the third survive.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: answers))
        let lineEnds = bytes.indices.filter { bytes[$0] == UInt8(ascii: "\n") }
        let cut = bytes.prefix(lineEnds[1] + 1) + bytes[(lineEnds[1] + 1)..<(lineEnds[1] + 20)]
        try cut.write(to: URL(fileURLWithPath: answers))
        let resumed = try await BatchJob(questions: questions, answers: answers, concurrency: 3).run(assistant: batched)
        XCTAssertTrue(resumed.truncatedPartialLine)
        XCTAssertEqual(resumed.alreadyAnswered, 2)
        XCTAssertEqual(resumed.answered, 2)
        let after = try readResults(answers)
        XCTAssertEqual(after.map(\.id).sorted(), rows.map(\.id).sorted(), "every question once, none lost")
        func content(_ r: [BatchResult]) -> [String: String] {
            Dictionary(uniqueKeysWithValues: r.map { ($0.id, $0.answer + "|" + $0.citations.map(\.chunkID).joined(separator: ",")) })
        }
        XCTAssertEqual(content(after), content(rows))

        let again = try await BatchJob(questions: questions, answers: answers, concurrency: 3).run(assistant: batched)
        XCTAssertEqual(again.answered, 0)
        XCTAssertEqual(again.alreadyAnswered, 4)

        // A line this command did not write is an error, and the file is left as it was.
        try (try String(contentsOfFile: answers, encoding: .utf8) + "{\"note\": \"hand-written\"}\n").write(toFile: answers, atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: answers))
        do {
            _ = try await BatchJob(questions: questions, answers: answers, concurrency: 3).run(assistant: batched)
            XCTFail("a foreign line must stop the run")
        } catch let e as BatchError {
            XCTAssertTrue(e.message.contains("answers.jsonl:5"), e.message)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: answers)), before)
    }

    func readResults(_ path: String) throws -> [BatchResult] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(BatchResult.self, from: Data($0.utf8))
        }
    }
}
