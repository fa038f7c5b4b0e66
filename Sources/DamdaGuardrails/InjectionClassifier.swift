import DamdaCore
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
        return LogisticRegression.probability(x, center: center, scale: scale, weights: weights, bias: bias)
    }

    /// Trains on `vectors` (one per labelled text) with `LogisticRegression`. The threshold comes
    /// from `folds`-fold cross-validation: the lowest that keeps the out-of-fold false-positive
    /// rate on benign texts within `falsePositiveBudget`, so it is set on scores of texts the
    /// weights did not see (on the training texts themselves every threshold looks safe).
    public static func train(vectors: [[Float]], attack: [Bool], features: Features, trainedOn: [String],
                             l2: Float = 1e-2, epochs: Int = 400, learningRate: Float = 0.01,
                             folds: Int = 5, falsePositiveBudget: Double = 0.005) -> InjectionClassifier {
        precondition(vectors.count == attack.count && !vectors.isEmpty)
        let (center, scale) = LogisticRegression.standardization(vectors)
        let x = LogisticRegression.standardize(vectors, center: center, scale: scale)
        let k = max(2, min(folds, vectors.count))
        let outOfFold = LogisticRegression.outOfFoldLogits(x, attack, fold: LogisticRegression.shuffledFolds(vectors.count, k: k),
                                                           l2: l2, epochs: epochs, learningRate: learningRate)
        let cut = LogisticRegression.threshold(outOfFold: outOfFold, attack, falsePositiveBudget: falsePositiveBudget)
        let validation = Validation(folds: k, recall: cut.recall, falsePositiveRate: cut.falsePositiveRate)
        let (w, b) = LogisticRegression.fit(x, attack, l2: l2, epochs: epochs, learningRate: learningRate)
        return InjectionClassifier(features: features, center: center, scale: scale, weights: w, bias: b,
                                   threshold: LogisticRegression.sigmoid(cut.logit), trainedOn: trainedOn, validation: validation)
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
