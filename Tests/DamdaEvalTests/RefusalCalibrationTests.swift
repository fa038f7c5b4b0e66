import DamdaCore
import DamdaEval
import XCTest

final class RefusalCalibrationTests: XCTestCase {
    /// Two overlapping clouds of states, answerable and unanswerable, over twenty articles: the
    /// fitted probe separates them, its out-of-fold threshold keeps answerable refusals within
    /// the budget, and the same data fits the same probe twice.
    func testFitSeparatesAndKeepsTheBudget() throws {
        var rng = SplitMix64(seed: 7)
        func gaussian() -> Float {
            let u = max(Float(rng.next() >> 40) / Float(1 << 24), 1e-7), v = Float(rng.next() >> 40) / Float(1 << 24)
            return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * .pi * v)
        }
        let width = 16
        var examples: [RefusalCalibration.Example] = []
        for i in 0..<400 {
            let unanswerable = i % 2 == 1
            var state = (0..<width).map { _ in gaussian() }
            state[3] += unanswerable ? 1.5 : -1.5        // the direction that tells them apart
            state[0] += 5                                 // a large shared component, as residual streams have
            examples.append(.init(state: state, unanswerable: unanswerable, article: "a\(i / 2 % 20)", firstTokenProbability: Float(i % 7) / 7))
        }
        var calibration = RefusalCalibration()
        calibration.layer = 3
        calibration.answerableBudget = 0.05
        let (probe, report) = try calibration.fit(examples, model: "m", adapterSHA256: "s", trainedOn: "synthetic")
        XCTAssertEqual(report.answerable, 200)
        XCTAssertEqual(report.unanswerable, 200)
        XCTAssertEqual(report.folds, 5)
        XCTAssertLessThanOrEqual(report.answerableRefused, 0.05)
        XCTAssertGreaterThan(report.unanswerableRefused, 0.5)
        XCTAssertGreaterThan(report.probeAUC, 0.9)
        XCTAssertEqual(report.firstTokenAUC!, 0.5, accuracy: 0.1)     // the stand-in probability carries no signal
        XCTAssertEqual(probe.layer, 3)
        XCTAssertEqual(probe.adapterSHA256, "s")
        XCTAssertEqual(probe.validation?.unanswerableRefused, report.unanswerableRefused)
        var clear = [Float](repeating: 0, count: width)
        clear[0] = 5
        clear[3] = 3
        XCTAssertGreaterThan(probe.probability(state: clear), probe.threshold)
        clear[3] = -3
        XCTAssertLessThan(probe.probability(state: clear), probe.threshold)
        let again = try calibration.fit(examples, model: "m", adapterSHA256: "s", trainedOn: "synthetic")
        XCTAssertEqual(again.probe, probe)

        XCTAssertThrowsError(try calibration.fit(examples.filter(\.unanswerable), model: "m", adapterSHA256: nil, trainedOn: "x"))
    }

    func testAUC() {
        XCTAssertEqual(RefusalCalibration.auc([0.9, 0.8, 0.1, 0.2], [true, true, false, false]), 1)
        XCTAssertEqual(RefusalCalibration.auc([0.1, 0.2, 0.9, 0.8], [true, true, false, false]), 0)
        XCTAssertEqual(RefusalCalibration.auc([0.5, 0.5], [true, false]), 0.5)
        XCTAssertEqual(RefusalCalibration.auc([0.3, 0.6, 0.5, 0.4], [true, true, false, false]), 0.5)
    }

    /// Out-of-fold scores come from weights that never saw the fold, and the threshold is the
    /// lowest cut within the false-positive budget.
    func testLogisticRegressionFoldsAndThreshold() {
        let folds = LogisticRegression.shuffledFolds(10, k: 5)
        XCTAssertEqual(folds.count, 10)
        XCTAssertEqual(Set(folds), Set(0..<5))
        XCTAssertTrue((0..<5).allSatisfy { f in folds.filter { $0 == f }.count == 2 })
        let scores: [Float] = [-2, -1, 0.5, 1, 3, 2, 4, 5]
        let y = [false, false, false, false, true, true, true, true]
        let cut = LogisticRegression.threshold(outOfFold: scores, y, falsePositiveBudget: 0.25)
        XCTAssertEqual(cut.logit, Float(0.5).nextUp)
        XCTAssertEqual(cut.falsePositiveRate, 0.25)
        XCTAssertEqual(cut.recall, 1)
    }
}
