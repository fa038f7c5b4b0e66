import Foundation

/// Binary logistic regression over standardised feature vectors, as the small classifiers that read
/// a model's hidden states use it (the injection guard, the refusal probe): full-batch Adam on the
/// class-balanced mean log loss with L2, deterministic from zeros, and k-fold cross-validation
/// that sets the decision threshold on scores of vectors the weights did not see.
public enum LogisticRegression {
    /// Per-feature mean and standard deviation (+1e-3, so a constant feature stays finite).
    public static func standardization(_ vectors: [[Float]]) -> (center: [Float], scale: [Float]) {
        precondition(!vectors.isEmpty)
        let d = vectors[0].count, n = Float(vectors.count)
        var center = [Float](repeating: 0, count: d), scale = [Float](repeating: 0, count: d)
        for v in vectors { for i in 0..<d { center[i] += v[i] } }
        center = center.map { $0 / n }
        for v in vectors { for i in 0..<d { scale[i] += (v[i] - center[i]) * (v[i] - center[i]) } }
        scale = scale.map { ($0 / n).squareRoot() + 1e-3 }
        return (center, scale)
    }

    public static func standardize(_ vectors: [[Float]], center: [Float], scale: [Float]) -> [[Float]] {
        vectors.map { v in (0..<v.count).map { (v[$0] - center[$0]) / scale[$0] } }
    }

    /// The log-odds of a standardised feature vector.
    public static func logit(_ x: [Float], weights: [Float], bias: Float) -> Float {
        var z = bias
        for i in weights.indices { z += weights[i] * x[i] }
        return z
    }

    public static func sigmoid(_ z: Float) -> Float { 1 / (1 + Foundation.exp(-z)) }

    /// The probability of a raw feature vector under weights fitted on standardised ones.
    public static func probability(_ x: [Float], center: [Float], scale: [Float], weights: [Float], bias: Float) -> Float {
        sigmoid(logit(x.indices.map { (x[$0] - center[$0]) / scale[$0] }, weights: weights, bias: bias))
    }

    /// Adam on the class-balanced mean log loss plus l2/2 |w|², from zeros.
    public static func fit(_ x: [[Float]], _ y: [Bool], l2: Float, epochs: Int, learningRate: Float) -> (weights: [Float], bias: Float) {
        let d = x.first?.count ?? 0
        let positives = Float(y.filter { $0 }.count), negatives = Float(y.count) - positives
        let weightOf: (Bool) -> Float = { $0 ? 0.5 / max(positives, 1) : 0.5 / max(negatives, 1) }
        var w = [Float](repeating: 0, count: d), b: Float = 0
        var m = [Float](repeating: 0, count: d), v = [Float](repeating: 0, count: d), mb: Float = 0, vb: Float = 0
        let beta1: Float = 0.9, beta2: Float = 0.999
        for t in 1...max(epochs, 1) {
            var gw = w.map { l2 * $0 }, gb: Float = 0
            for (row, label) in zip(x, y) {
                let g = (sigmoid(logit(row, weights: w, bias: b)) - (label ? 1 : 0)) * weightOf(label)
                for i in 0..<d { gw[i] += g * row[i] }
                gb += g
            }
            let step = learningRate * (1 - Foundation.pow(beta2, Float(t))).squareRoot() / (1 - Foundation.pow(beta1, Float(t)))
            for i in 0..<d {
                m[i] = beta1 * m[i] + (1 - beta1) * gw[i]
                v[i] = beta2 * v[i] + (1 - beta2) * gw[i] * gw[i]
                w[i] -= step * m[i] / (v[i].squareRoot() + 1e-8)
            }
            mb = beta1 * mb + (1 - beta1) * gb
            vb = beta2 * vb + (1 - beta2) * gb * gb
            b -= step * mb / (vb.squareRoot() + 1e-8)
        }
        return (w, b)
    }

    /// Each vector's log-odds from weights fitted without its fold (`fold[i]` in 0..<k).
    public static func outOfFoldLogits(_ x: [[Float]], _ y: [Bool], fold: [Int], l2: Float, epochs: Int, learningRate: Float) -> [Float] {
        precondition(fold.count == x.count)
        var out = [Float](repeating: 0, count: x.count)
        for f in Set(fold).sorted() {
            let kept = x.indices.filter { fold[$0] != f }
            let (w, b) = fit(kept.map { x[$0] }, kept.map { y[$0] }, l2: l2, epochs: epochs, learningRate: learningRate)
            for i in x.indices where fold[i] == f { out[i] = logit(x[i], weights: w, bias: b) }
        }
        return out
    }

    /// k folds of `n` items from a fixed shuffle (a linear congruential sequence), so training is repeatable.
    public static func shuffledFolds(_ n: Int, k: Int) -> [Int] {
        var order = Array(0..<n), state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in stride(from: n - 1, to: 0, by: -1) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            order.swapAt(i, Int((state >> 33) % UInt64(i + 1)))
        }
        var fold = [Int](repeating: 0, count: n)
        for (position, i) in order.enumerated() { fold[i] = position % k }
        return fold
    }

    /// The lowest log-odds cut (never below 0, probability 0.5) that flags at most
    /// `falsePositiveBudget` of the negatives' out-of-fold scores, with the recall and
    /// false-positive rate it gives there.
    public static func threshold(outOfFold: [Float], _ y: [Bool], falsePositiveBudget: Double) -> (logit: Float, recall: Double, falsePositiveRate: Double) {
        let negatives = y.indices.filter { !y[$0] }.map { outOfFold[$0] }.sorted(by: >)
        let allowed = Int(Double(negatives.count) * falsePositiveBudget)
        let cut = allowed < negatives.count ? max(0, negatives[allowed]).nextUp : 0
        let positives = y.indices.filter { y[$0] }
        return (cut,
                Double(positives.filter { outOfFold[$0] >= cut }.count) / Double(max(positives.count, 1)),
                Double(negatives.filter { $0 >= cut }.count) / Double(max(negatives.count, 1)))
    }
}
