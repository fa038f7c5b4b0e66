import DamdaEngine
import DamdaTestSupport
import Foundation
import XCTest

/// Sampling as a distribution: what each parameter keeps and how often each token comes out.
final class SamplerTests: XCTestCase {
    /// The top-k selection equals a full sort (largest first, ties to the lower index), including
    /// heavy ties, negative values and infinities, below and above the histogram path's size.
    func testTopIndicesMatchFullSort() {
        var rng = SeededGenerator(seed: 11)
        for n in [1, 10, 5000, 300_000] {
            var values = (0..<n).map { _ in Float(Int.random(in: -40...40, using: &rng)) / 4 }
            if n > 100 { values[n / 3] = .infinity; values[n / 2] = -.infinity; values[7] = -0.0; values[8] = 0 }
            let sorted = (0..<n).sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
            for k in [1, 20, 1024, n] where k <= n {
                let top = values.withUnsafeBufferPointer { Sampler.topIndices($0, k) }
                XCTAssertEqual(top, Array(sorted.prefix(k)), "n \(n) k \(k)")
            }
        }
    }

    /// Four tokens that matter, scattered over a 6,000-token vocabulary whose other logits are
    /// negligible; frequencies over 6,000 seeded draws against the exact probabilities.
    func testSamplerFollowsTheDistribution() {
        let ids = [4321, 17, 999, 5999]
        var logits = [Float](repeating: -40, count: 6000)
        for (i, v) in zip(ids, [Float(2), 1, 0.5, 0]) { logits[i] = v }

        func frequencies(_ p: SamplingParameters, history: [Int32] = []) -> [Double] {
            var sampler = Sampler(p)
            var counts = [Int: Int]()
            let draws = 6_000
            for _ in 0..<draws { counts[Int(sampler.sample(logits, history: history)), default: 0] += 1 }
            XCTAssertEqual(counts.keys.filter { !ids.contains($0) }, [], "only the four tokens come out")
            return ids.map { Double(counts[$0, default: 0]) / Double(draws) }
        }
        func softmax(_ v: [Double]) -> [Double] {
            let e = v.map { exp($0 - v.max()!) }
            return e.map { $0 / e.reduce(0, +) }
        }
        func assertClose(_ got: [Double], _ want: [Double], _ what: String) {
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 0.025, "\(what): got \(got), want \(want)") }
        }

        let full = softmax([2, 1, 0.5, 0])
        assertClose(frequencies(SamplingParameters(temperature: 1, seed: 1)), full, "temperature 1")
        assertClose(frequencies(SamplingParameters(temperature: 0.5, seed: 2)), softmax([4, 2, 1, 0]), "temperature 0.5")
        let two = softmax([2, 1])
        assertClose(frequencies(SamplingParameters(temperature: 1, topK: 2, seed: 3)), two + [0, 0], "top-k 2")
        // Cumulative .579, .792: top-p 0.6 keeps two tokens.
        assertClose(frequencies(SamplingParameters(temperature: 1, topP: 0.6, seed: 4)), two + [0, 0], "top-p 0.6")
        // Relative to the best: e^-1 = .37 stays above 0.3, e^-1.5 = .22 does not.
        assertClose(frequencies(SamplingParameters(temperature: 1, minP: 0.3, seed: 5)), two + [0, 0], "min-p 0.3")
        // Penalty 2 on the best token (logit 2 → 1) makes it tie with the second.
        assertClose(frequencies(SamplingParameters(temperature: 1, repetitionPenalty: 2, seed: 6), history: [Int32(ids[0])]),
                    softmax([1, 1, 0.5, 0]), "repetition penalty 2")
        // Greedy ignores the seed and takes the argmax.
        var greedy = Sampler(.greedy)
        XCTAssertEqual(greedy.sample(logits, history: []), Int32(ids[0]))
    }

    /// Sampling from the top logits a decode step hands back for `output(vocabulary:history:)`
    /// draws the very tokens sampling from every logit draws, whatever extra tokens the set holds,
    /// with ties, penalties above and below 1, top-k, top-p, min-p and greedy with a penalty.
    func testSamplingFromTopLogitsDrawsWhatEveryLogitDraws() {
        var rng = SeededGenerator(seed: 29)
        let vocabulary = 5000
        let settings = [
            SamplingParameters(temperature: 0.8, seed: 1),
            SamplingParameters(temperature: 1, topK: 40, topP: 0.95, minP: 0.05, seed: 2),
            SamplingParameters(temperature: 1.3, repetitionPenalty: 1.3, repetitionWindow: 16, seed: 3),
            SamplingParameters(temperature: 0.7, topP: 0.5, repetitionPenalty: 0.8, seed: 4),
            SamplingParameters(temperature: 0, repetitionPenalty: 2, seed: 5),
        ]
        for p in settings {
            var full = Sampler(p), sparse = Sampler(p), padded = Sampler(p)
            var history: [Int32] = (0..<20).map { _ in Int32.random(in: 0..<60, using: &rng) }
            for draw in 0..<150 {
                // Coarse values, so ties are common; the likeliest tokens sit among the low ids, as history does.
                let logits = (0..<vocabulary).map { i in Float(Int.random(in: -30...(i < 100 ? 30 : 8), using: &rng)) / 4 }
                guard case let .top(count, including) = full.output(vocabulary: vocabulary, history: history) else {
                    return XCTFail("sampling asks for the top logits")
                }
                XCTAssertEqual(Set(including), full.penalized(history: history))
                let top = TopLogits(logits: logits, count: count, including: including)
                // Up to most of the vocabulary, so the selection also takes `topIndices`' histogram path.
                let extra = (0..<(draw % 2 == 0 ? 300 : 6000)).map { _ in Int32.random(in: 0..<Int32(vocabulary), using: &rng) }
                let wider = TopLogits(logits: logits, count: count, including: including + extra)
                let want = full.sample(logits, history: history)
                XCTAssertEqual(sparse.sample(top, history: history), want, "\(p), draw \(draw)")
                XCTAssertEqual(padded.sample(wider, history: history), want, "\(p), draw \(draw), with extra tokens")
                history.append(want)
            }
        }
    }
}
