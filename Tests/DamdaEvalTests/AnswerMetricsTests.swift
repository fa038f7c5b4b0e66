import DamdaEval
import XCTest

final class AnswerMetricsTests: XCTestCase {
    func testKorQuADMetrics() {
        XCTAssertTrue(AnswerMetrics.exactMatch("1989년 2월 15일", "1989년 2월 15일"))
        XCTAssertTrue(AnswerMetrics.exactMatch(" 1989년 2월15일. ", "1989년 2월 15일"))   // spaces and punctuation
        XCTAssertTrue(AnswerMetrics.exactMatch("《임수경》을", "임수경"))                      // quotes and a particle
        XCTAssertFalse(AnswerMetrics.exactMatch("임수경 의원", "임수경"))
        XCTAssertEqual(AnswerMetrics.f1("임수경", "임수경"), 1, accuracy: 1e-12)
        // Character F1: 3 common characters of 4 predicted and 3 gold → P .75, R 1.
        XCTAssertEqual(AnswerMetrics.f1("임수경이", "임수경"), 2 * 0.75 / 1.75, accuracy: 1e-12)
        XCTAssertEqual(AnswerMetrics.f1("", "임수경"), 0)
        XCTAssertEqual(AnswerMetrics.score("44위", golds: ["장두노미", "44위"]).f1, 1)
    }

    func testContainsAnswerForgivesSpacing() {
        XCTAssertTrue(AnswerMetrics.containsAnswer("입원 1일당 5만 원을 받습니다.", golds: ["5만원"]))
        XCTAssertFalse(AnswerMetrics.containsAnswer("3만원입니다.", golds: ["5만원"]))
    }
}
