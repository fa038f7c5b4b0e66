import Foundation

/// Prompt injection by meaning: logistic regression over a sentence embedding (multilingual-e5's
/// "query:" vector, the one retrieval computes anyway). Patterns catch the phrasings they were
/// written for; a classifier over meaning also scores rewordings of them ("방금까지의 지침은 없던
/// 걸로 하고"). Trained by `damda guard train` on the labelled sets; shipped as a small JSON file.
public struct InjectionClassifier: Codable, Sendable, Equatable {
    public var embedder: String
    public var weights: [Float]
    public var bias: Float
    /// Flag at or above this probability (chosen on the training sets for the false-positive budget).
    public var threshold: Float
    /// What it was trained on, for the record.
    public var trainedOn: [String]

    enum CodingKeys: String, CodingKey { case embedder, weights, bias, threshold, trainedOn = "trained_on" }

    /// Where the repository keeps the shipped classifier, under `models/`.
    public static let shippedPath = "guard/injection-classifier.json"

    public func probability(_ vector: [Float]) -> Float {
        guard vector.count == weights.count else { return 0 }
        var z = bias
        for i in weights.indices { z += weights[i] * vector[i] }
        return 1 / (1 + Foundation.exp(-z))
    }

    /// Full-batch gradient descent on the mean log loss with L2, classes weighted to balance; the
    /// threshold is the lowest one that keeps the false-positive rate on `vectors` within
    /// `falsePositiveBudget` (and at least 0.5).
    public static func train(vectors: [[Float]], attack: [Bool], embedder: String, trainedOn: [String], l2: Float = 1e-3,
                             epochs: Int = 3000, learningRate: Float = 2, falsePositiveBudget: Double = 0.005) -> InjectionClassifier {
        let d = vectors.first?.count ?? 0
        var w = [Float](repeating: 0, count: d), b: Float = 0
        let positives = Float(attack.filter { $0 }.count), negatives = Float(attack.filter { !$0 }.count)
        let weightOf: (Bool) -> Float = { $0 ? 0.5 / max(positives, 1) : 0.5 / max(negatives, 1) }
        for _ in 0..<epochs {
            var gw = [Float](repeating: 0, count: d), gb: Float = 0
            for (v, y) in zip(vectors, attack) {
                var z = b
                for i in 0..<d { z += w[i] * v[i] }
                let p = 1 / (1 + Foundation.exp(-z))
                let g = (p - (y ? 1 : 0)) * weightOf(y)
                for i in 0..<d { gw[i] += g * v[i] }
                gb += g
            }
            for i in 0..<d { w[i] -= learningRate * (gw[i] + l2 * w[i]) }
            b -= learningRate * gb
        }
        var model = InjectionClassifier(embedder: embedder, weights: w, bias: b, threshold: 0.5, trainedOn: trainedOn)
        let benignScores = zip(vectors, attack).filter { !$0.1 }.map { model.probability($0.0) }.sorted(by: >)
        let allowed = Int(Double(benignScores.count) * falsePositiveBudget)
        if allowed < benignScores.count { model.threshold = max(0.5, benignScores[allowed] + 1e-4) }
        return model
    }

    public static func read(_ path: String) throws -> InjectionClassifier {
        guard let data = FileManager.default.contents(atPath: path) else { throw ClassifierFileError.unreadable(path) }
        guard let model = try? JSONDecoder().decode(InjectionClassifier.self, from: data), !model.weights.isEmpty, model.weights.allSatisfy(\.isFinite) else {
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
        case let .malformed(p): "\(p) is not an injection classifier (JSON with embedder, weights, bias, threshold; run `damda guard train`)"
        }
    }
}
