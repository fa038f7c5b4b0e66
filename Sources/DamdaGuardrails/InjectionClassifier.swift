import Foundation

/// Prompt injection by meaning: logistic regression over what the language model itself makes of
/// the question, the mean and the last of its hidden states at a middle layer (`Features`). A model
/// trained to follow instructions represents "an instruction to me" apart from "a question that
/// uses 무시 or 관리자" far better than word patterns or a sentence embedding do: on sets written
/// blind, the patterns found 0.33–0.43 of the attacks, logistic regression over e5 vectors 0.43,
/// and this 0.99 (README, "Prompt-injection detector"). Trained by `damda guard train`; shipped as
/// a JSON file.
public struct InjectionClassifier: Codable, Sendable, Equatable {
    /// Which states the weights read; a model whose states differ cannot use them.
    public struct Features: Codable, Sendable, Equatable {
        /// The GGUF `general.name` of the model the states come from.
        public var model: String
        /// Width of the feature vector: the mean state, then the last token's state.
        public var width: Int
        /// 0-based layer after which the residual stream is read.
        public var layer: Int
        /// The question is read as a user turn of the model's chat template, at most this many
        /// tokens (a longer one keeps its first and last halves).
        public var maxTokens: Int
        public init(model: String, width: Int, layer: Int, maxTokens: Int) {
            self.model = model; self.width = width; self.layer = layer; self.maxTokens = maxTokens
        }
        enum CodingKeys: String, CodingKey { case model, width, layer, maxTokens = "max_tokens" }
    }

    /// Out-of-fold figures on the training sets at `threshold` (k-fold cross-validation).
    public struct Validation: Codable, Sendable, Equatable {
        public var folds: Int, recall: Double, falsePositiveRate: Double
        enum CodingKeys: String, CodingKey { case folds, recall, falsePositiveRate = "false_positive_rate" }
    }

    public var features: Features
    /// Standardisation: feature i enters as (x[i] - center[i]) / scale[i].
    public var center: [Float]
    public var scale: [Float]
    public var weights: [Float]
    public var bias: Float
    /// Flag at or above this probability.
    public var threshold: Float
    /// What it was trained on, for the record.
    public var trainedOn: [String]
    public var validation: Validation?

    enum CodingKeys: String, CodingKey {
        case features, center, scale, weights, bias, threshold, validation, trainedOn = "trained_on"
    }

    /// Where the repository keeps the shipped classifier, under `models/`.
    public static let shippedPath = "guard/injection-classifier.json"

    public func probability(_ x: [Float]) -> Float {
        guard x.count == weights.count else { return 0 }
        return Self.sigmoid(Self.logit(x.indices.map { (x[$0] - center[$0]) / scale[$0] }, weights: weights, bias: bias))
    }

    /// The log-odds of a standardised feature vector.
    static func logit(_ x: [Float], weights: [Float], bias: Float) -> Float {
        var z = bias
        for i in weights.indices { z += weights[i] * x[i] }
        return z
    }

    static func sigmoid(_ z: Float) -> Float { 1 / (1 + Foundation.exp(-z)) }

    /// Trains on `vectors` (one per labelled text). Features are standardised, the weights fitted
    /// by full-batch Adam on the class-balanced mean log loss with L2, deterministic from zeros.
    /// The threshold comes from `folds`-fold cross-validation: the lowest that keeps the
    /// out-of-fold false-positive rate on benign texts within `falsePositiveBudget`, so it is set
    /// on scores of texts the weights did not see (on the training texts themselves every
    /// threshold looks safe).
    public static func train(vectors: [[Float]], attack: [Bool], features: Features, trainedOn: [String],
                             l2: Float = 1e-2, epochs: Int = 400, learningRate: Float = 0.01,
                             folds: Int = 5, falsePositiveBudget: Double = 0.005) -> InjectionClassifier {
        precondition(vectors.count == attack.count && !vectors.isEmpty)
        let d = vectors[0].count, n = vectors.count
        var center = [Float](repeating: 0, count: d), scale = [Float](repeating: 0, count: d)
        for v in vectors { for i in 0..<d { center[i] += v[i] } }
        center = center.map { $0 / Float(n) }
        for v in vectors { for i in 0..<d { scale[i] += (v[i] - center[i]) * (v[i] - center[i]) } }
        scale = scale.map { ($0 / Float(n)).squareRoot() + 1e-3 }
        let x = vectors.map { v in (0..<d).map { (v[$0] - center[$0]) / scale[$0] } }

        // Folds: a fixed shuffle (a linear congruential sequence), so training is repeatable.
        var order = Array(0..<n), state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in stride(from: n - 1, to: 0, by: -1) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            order.swapAt(i, Int((state >> 33) % UInt64(i + 1)))
        }
        var outOfFold = [Float](repeating: 0, count: n)
        let k = max(2, min(folds, n))
        for f in 0..<k {
            let held = Set(order.enumerated().filter { $0.offset % k == f }.map(\.element))
            let kept = (0..<n).filter { !held.contains($0) }
            let (w, b) = fit(kept.map { x[$0] }, kept.map { attack[$0] }, l2: l2, epochs: epochs, learningRate: learningRate)
            for i in held { outOfFold[i] = logit(x[i], weights: w, bias: b) }
        }
        let benign = (0..<n).filter { !attack[$0] }.map { outOfFold[$0] }.sorted(by: >)
        let allowed = Int(Double(benign.count) * falsePositiveBudget)
        let cut = allowed < benign.count ? max(0, benign[allowed]).nextUp : 0
        let attacks = (0..<n).filter { attack[$0] }
        let validation = Validation(
            folds: k,
            recall: Double(attacks.filter { outOfFold[$0] >= cut }.count) / Double(max(attacks.count, 1)),
            falsePositiveRate: Double(benign.filter { $0 >= cut }.count) / Double(max(benign.count, 1)))

        let (w, b) = fit(x, attack, l2: l2, epochs: epochs, learningRate: learningRate)
        return InjectionClassifier(features: features, center: center, scale: scale, weights: w, bias: b,
                                   threshold: sigmoid(cut), trainedOn: trainedOn, validation: validation)
    }

    /// Adam on the class-balanced mean log loss plus l2/2 |w|², from zeros.
    static func fit(_ x: [[Float]], _ y: [Bool], l2: Float, epochs: Int, learningRate: Float) -> (weights: [Float], bias: Float) {
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

    public static func read(_ path: String) throws -> InjectionClassifier {
        guard let data = FileManager.default.contents(atPath: path) else { throw ClassifierFileError.unreadable(path) }
        guard let model = try? JSONDecoder().decode(InjectionClassifier.self, from: data), !model.weights.isEmpty,
              model.weights.count == model.features.width, model.center.count == model.weights.count, model.scale.count == model.weights.count,
              (model.weights + model.center + model.scale + [model.bias, model.threshold]).allSatisfy(\.isFinite), model.scale.allSatisfy({ $0 > 0 }) else {
            throw ClassifierFileError.malformed(path)
        }
        return model
    }
}

public enum ClassifierFileError: Error, CustomStringConvertible {
    case unreadable(String)
    case malformed(String)
    public var description: String {
        switch self {
        case let .unreadable(p): "cannot read the injection classifier at \(p)"
        case let .malformed(p): "\(p) is not an injection classifier (JSON with features, center, scale, weights, bias, threshold; run `damda guard train`)"
        }
    }
}
