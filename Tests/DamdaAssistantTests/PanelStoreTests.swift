import DamdaAssistant
import DamdaRetrieval
import DamdaTestSupport
import XCTest

/// Blind A/B surveys in a real SQLite store: items are the questions every configuration
/// answered, each evaluator sees a pair in a recorded random order, votes map slots back to
/// configurations, bad and repeated votes are refused, and results count every vote once.
final class PanelStoreTests: XCTestCase {
    func answers(_ name: String, _ texts: [(String, String)]) -> PanelConfigAnswers {
        PanelConfigAnswers(name: name, answers: texts.map { id, text in
            (id, "질문 \(id)", PanelAnswer(config: name, answer: text, citations: [PanelCitation(n: 1, title: "약관", source: "policy.md", text: "근거 \(id)")],
                                           context: "[1] 약관\n근거 \(id)"))
        })
    }

    func testSurveyVotesAndResults() throws {
        let dir = try temporaryDirectory("panel")
        defer { try? FileManager.default.removeItem(at: dir) }
        let index = try SearchIndex(directory: dir.path, embedder: nil)
        let store = try PanelStore(beside: index)

        XCTAssertThrowsError(try store.createSurvey(name: "x", configs: [answers("a", [("q1", "A1")])])) {
            XCTAssertTrue(($0 as? PanelError)?.message.contains("two or more") == true)
        }
        XCTAssertThrowsError(try store.createSurvey(name: "x", configs: [answers("a", [("q1", "A1")]), answers("a", [("q1", "B1")])]))
        XCTAssertThrowsError(try store.createSurvey(name: "x", configs: [answers("a", [("q1", "A1")]), answers("b", [("q2", "B2")])])) {
            XCTAssertTrue(($0 as? PanelError)?.message.contains("no question id") == true)
        }
        // q3 is answered by one configuration only: not an item.
        let survey = try store.createSurvey(name: "PEFT+RAG 대 RAG", configs: [
            answers("rag", [("q1", "A1"), ("q2", "A2"), ("q3", "A3")]), answers("peft+rag", [("q2", "B2"), ("q1", "B1")])])
        XCTAssertEqual(survey.items, 2)
        XCTAssertEqual(try store.items(survey.id).map(\.id), ["q1", "q2"])
        // Posted twice (a retried upload): one survey, and the second post names it.
        XCTAssertThrowsError(try store.createSurvey(name: " PEFT+RAG 대 RAG", configs: [
            answers("rag", [("q1", "A1"), ("q2", "A2"), ("q3", "A3")]), answers("peft+rag", [("q2", "B2"), ("q1", "B1")])])) {
            XCTAssertEqual($0 as? PanelError, .duplicateSurvey(survey.id))
        }
        XCTAssertEqual(try store.surveys().count, 1)

        let good = PanelRatings(accuracy: 5, grounding: 4, usefulness: 5), poor = PanelRatings(accuracy: 2, grounding: 2, usefulness: 1)
        XCTAssertThrowsError(try store.vote(survey: survey.id, item: "q1", evaluator: "김", choice: .first, ratings: [:], correction: "")) {
            XCTAssertEqual($0 as? PanelError, .notShown("q1"), "a vote needs the item shown first")
        }
        var firstSlots: [String] = []
        for evaluator in ["김"] + (2...20).map { "평가자\($0)" } {
            while let task = try store.nextTask(survey: survey.id, evaluator: evaluator) {
                XCTAssertEqual(task.answers.map(\.slot), ["1", "2"])
                XCTAssertEqual(try store.nextTask(survey: survey.id, evaluator: evaluator), task, "a reload shows the same order")
                let text = task.answers.map(\.answer)
                if task.itemID == "q1" { firstSlots.append(text[0]) }
                // Everyone prefers peft+rag's answer ("B…"), wherever it is shown.
                let slotOfB = text[0].hasPrefix("B") ? "1" : "2"
                let v = try store.vote(survey: survey.id, item: task.itemID, evaluator: evaluator,
                                       choice: PanelChoice(rawValue: slotOfB)!, ratings: [slotOfB: good, slotOfB == "1" ? "2" : "1": poor],
                                       correction: evaluator == "김" ? "정답" : "")
                XCTAssertEqual(v.winner, "peft+rag")
                XCTAssertEqual(v.ratings["peft+rag"], good)
                XCTAssertEqual(v.ratings["rag"], poor)
                XCTAssertThrowsError(try store.vote(survey: survey.id, item: task.itemID, evaluator: evaluator, choice: .tie, ratings: [:], correction: "")) {
                    XCTAssertEqual($0 as? PanelError, .duplicateVote(task.itemID))
                }
            }
        }
        XCTAssertEqual(Set(firstSlots).count, 2, "the order is drawn per evaluator (20 evaluators: both orders seen but with odds 2⁻¹⁹)")
        XCTAssertThrowsError(try store.vote(survey: survey.id, item: "q9", evaluator: "김", choice: .tie, ratings: [:], correction: "")) {
            XCTAssertEqual($0 as? PanelError, .unknownItem("q9"))
        }
        XCTAssertThrowsError(try store.nextTask(survey: "srv_nope", evaluator: "김")) { XCTAssertEqual($0 as? PanelError, .unknownSurvey("srv_nope")) }
        _ = try store.createSurvey(name: "또 하나", configs: [answers("x", [("q1", "X")]), answers("y", [("q1", "Y")])])
        let other = try XCTUnwrap(try store.surveys().last)
        let t = try XCTUnwrap(try store.nextTask(survey: other.id, evaluator: "김"))
        XCTAssertThrowsError(try store.vote(survey: other.id, item: t.itemID, evaluator: "김", choice: .tie,
                                            ratings: ["1": PanelRatings(accuracy: 6, grounding: 1, usefulness: 1)], correction: ""))
        XCTAssertThrowsError(try store.vote(survey: other.id, item: t.itemID, evaluator: "김", choice: .tie, ratings: ["3": good], correction: ""))

        let results = PanelResults(survey: try store.survey(survey.id), votes: try store.votes(survey.id))
        XCTAssertEqual(results.votes, 40)
        XCTAssertEqual(results.evaluators, 20)
        XCTAssertEqual(results.corrections, 2)
        let pair = try XCTUnwrap(results.pairs.first)
        XCTAssertEqual([pair.a, pair.b], ["rag", "peft+rag"])
        XCTAssertEqual([pair.aWins, pair.bWins, pair.ties], [0, 40, 0])
        XCTAssertEqual(pair.aWinRate, 0)
        XCTAssertEqual(pair.aWinRateLow, 0)
        XCTAssertEqual(pair.aWinRateHigh, 0.0876, accuracy: 0.001, "Wilson upper bound for 0 of 40")
        XCTAssertEqual(results.ratings["peft+rag"]?["accuracy"]?.mean, 5)
        XCTAssertEqual(results.ratings["rag"]?["usefulness"]?.mean, 1)
        XCTAssertEqual(results.ratings["rag"]?["usefulness"]?.n, 40)

        // Votes become preference pairs: the winner's answer over the loser's, on the winner's prompt.
        let preferences = try store.preferences()
        XCTAssertEqual(preferences.count, 40)
        let (jsonl, manifest) = try FeedbackExport(kind: .dpo, triage: FeedbackTriage(index: index)).run([], preferences: preferences)
        let pairs = try jsonl.split(separator: "\n").map { try JSONDecoder().decode(FeedbackPreferencePair.self, from: Data($0.utf8)) }
        XCTAssertEqual(pairs.map { [$0.chosen, $0.rejected] }.sorted { $0[0] < $1[0] }, [["B1", "A1"], ["B2", "A2"]])
        XCTAssertEqual(manifest.duplicates, 38, "one pair per question and answers")
        XCTAssertEqual(pairs[0].kind, "ab")
        XCTAssertEqual(pairs[0].chosenConfig, "peft+rag")
        XCTAssertTrue(pairs[0].prompt.contains("[1] 약관\n근거 "), pairs[0].prompt)

        // Corrections on the panel train with the shown context that holds them ("근거 q1" holds "근거 q1"; "정답" is in neither).
        let corrections = try store.corrections()
        XCTAssertEqual(corrections.map(\.correction), ["정답", "정답"])
        var held = corrections[0]
        held.correction = "근거 \(try store.items(survey.id).first { $0.question == held.question }!.id)"
        let (sft, sftManifest) = try FeedbackExport(kind: .sft, triage: FeedbackTriage(index: index)).run([], panelCorrections: [held, corrections[1]])
        let examples = try sft.split(separator: "\n").map { try JSONDecoder().decode(FeedbackSFTExample.self, from: Data($0.utf8)) }
        XCTAssertEqual(examples.map(\.kind), ["panel_correction"])
        XCTAssertEqual(examples.first?.answer, held.correction)
        XCTAssertEqual(sftManifest.skipped["panel correction that neither shown context holds"], 1)
    }
}
