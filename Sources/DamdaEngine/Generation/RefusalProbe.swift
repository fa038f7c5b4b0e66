import DamdaCore
import Foundation

/// Answer or refuse, read from what the model makes of the whole RAG prompt: logistic regression
/// over the residual stream after one middle layer at the prompt's last position (the position
/// that writes the first answer token), with the adapter applied. The refusal's first-token
/// probability is a fixed linear read of the last layer; a fitted read of layer 9 of Gemma 3
/// 270M separates "the sources hold the answer" from "they do not" better on questions like
/// the ones it was fitted on (KorQuAD: out-of-fold AUC 0.97 against 0.90), and worse on others
/// (it reads paraphrased questions as unanswerable): fit it on your own users' questions. Fitted
/// by `damda adapter calibrate`; an adapter folder's `refusal-probe.json` is used by default.
public struct RefusalProbe: Codable, Sendable, Equatable {
    /// The GGUF `general.name` of the base model whose states the weights read.
    public var model: String
    /// SHA-256 of the adapter's weights file applied while reading (nil: the base model alone).
    public var adapterSHA256: String?
    /// 0-based layer after which the residual stream is read.
    public var layer: Int
    /// Standardisation of the unit-RMS state: feature i enters as (x[i] - center[i]) / scale[i].
    public var center: [Float]
    public var scale: [Float]
    public var weights: [Float]
    public var bias: Float
    /// Refuse at or above this probability.
    public var threshold: Float
    /// What it was fitted on, and its out-of-fold figures there at `threshold`.
    public var trainedOn: String
    public var validation: Validation?

    public struct Validation: Codable, Sendable, Equatable {
        public var folds: Int
        /// Questions whose sources lack the answer (their article hidden) that it refuses.
        public var unanswerableRefused: Double
        /// Answerable questions it refuses.
        public var answerableRefused: Double
        public var answerable: Int, unanswerable: Int
        public init(folds: Int, unanswerableRefused: Double, answerableRefused: Double, answerable: Int, unanswerable: Int) {
            self.folds = folds; self.unanswerableRefused = unanswerableRefused; self.answerableRefused = answerableRefused
            self.answerable = answerable; self.unanswerable = unanswerable
        }
        enum CodingKeys: String, CodingKey {
            case folds, answerable, unanswerable
            case unanswerableRefused = "unanswerable_refused", answerableRefused = "answerable_refused"
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, layer, center, scale, weights, bias, threshold, validation
        case adapterSHA256 = "adapter_sha256", trainedOn = "trained_on"
    }

    /// The file's name in an adapter's folder.
    public static let fileName = "refusal-probe.json"

    public init(model: String, adapterSHA256: String?, layer: Int, center: [Float], scale: [Float], weights: [Float], bias: Float,
                threshold: Float, trainedOn: String, validation: Validation?) {
        self.model = model; self.adapterSHA256 = adapterSHA256; self.layer = layer
        self.center = center; self.scale = scale; self.weights = weights; self.bias = bias
        self.threshold = threshold; self.trainedOn = trainedOn; self.validation = validation
    }

    /// The probe's input before standardisation: the state at unit RMS (`unitRMS`).
    public static func features(_ state: [Float]) -> [Float] { unitRMS(state) }

    /// The probability that the prompt's sources do not hold the answer.
    public func probability(state: [Float]) -> Float {
        precondition(state.count == weights.count, "a state of \(state.count) values for a probe of \(weights.count)")
        return LogisticRegression.probability(Self.features(state), center: center, scale: scale, weights: weights, bias: bias)
    }

    /// Reads a probe and checks it against the model and adapter it will read.
    public static func read(_ path: String, model: String, width: Int, layers: Int, adapterSHA256: String?) throws -> RefusalProbe {
        guard let data = FileManager.default.contents(atPath: path) else { throw RefusalProbeError.unreadable(path) }
        guard let probe = try? JSONDecoder().decode(RefusalProbe.self, from: data), !probe.weights.isEmpty,
              probe.center.count == probe.weights.count, probe.scale.count == probe.weights.count,
              probe.scale.allSatisfy({ $0 > 0 && $0.isFinite }), (0...1).contains(probe.threshold) else {
            throw RefusalProbeError.malformed(path)
        }
        guard probe.model == model, probe.weights.count == width, (0..<layers).contains(probe.layer) else {
            throw RefusalProbeError.otherModel(path: path, probe: probe.model, loaded: model)
        }
        guard probe.adapterSHA256 == adapterSHA256 else { throw RefusalProbeError.otherAdapter(path) }
        return probe
    }
}

public enum RefusalProbeError: DamdaError {
    case unreadable(String)
    case malformed(String)
    case otherModel(path: String, probe: String, loaded: String)
    case otherAdapter(String)
    case unsupportedModel

    public var message: String {
        switch self {
        case let .unreadable(p): "cannot read the refusal probe at \(p)"
        case let .malformed(p): "\(p) is not a refusal probe (JSON with layer, center, scale, weights, bias, threshold in 0…1; fit one with `damda adapter calibrate`)"
        case let .otherModel(p, probe, loaded): "\(p) reads the states of '\(probe)', not of the loaded model '\(loaded)': fit one for it with `damda adapter calibrate`, or pass --refusal-probe off"
        case let .otherAdapter(p): "\(p) was fitted with another adapter than the one applied (its adapter_sha256 differs): refit it with `damda adapter calibrate`, or pass --refusal-probe off"
        case .unsupportedModel: "the refusal probe reads a model's layer states, which this model architecture does not expose"
        }
    }
}
