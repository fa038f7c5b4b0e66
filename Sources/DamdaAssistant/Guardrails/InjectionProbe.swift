import DamdaEngine
import DamdaGuardrails

/// Reads a question the way the injection classifier was trained to see it: as a user turn of
/// the model's chat template, the base model run up to the classifier's layer, and the mean and
/// the last of those states (`LayerStateReading.pooledLayerState`). Training, the benchmark and
/// the input guard all go through here, so they compute the same features.
public struct InjectionProbe: Sendable {
    public let features: InjectionClassifier.Features

    public init(features: InjectionClassifier.Features) { self.features = features }

    /// The features of `model` at `layer` (what `damda guard train` records).
    public static func features(of model: any LayerStateReading, layer: Int, maxTokens: Int = 512) -> InjectionClassifier.Features {
        InjectionClassifier.Features(model: model.stateSource, width: 2 * model.stateWidth, layer: layer, maxTokens: maxTokens)
    }

    /// Why `model` cannot give these features (nil: it can).
    public func mismatch(with model: any LanguageModel) -> String? {
        guard let reader = model as? any LayerStateReading else { return "the model does not expose its hidden states" }
        if reader.stateSource != features.model || 2 * reader.stateWidth != features.width || features.layer >= reader.layerCount {
            return "the classifier reads \(features.model) (width \(features.width), layer \(features.layer)); the model is \(reader.stateSource) (width 2 × \(reader.stateWidth), \(reader.layerCount) layers)"
        }
        return nil
    }

    /// The question's feature vector; the caller makes sure nothing else runs on the model.
    public func vector(_ question: String, model: any LanguageModel) throws -> [Float] {
        guard mismatch(with: model) == nil, let reader = model as? any LayerStateReading else {
            throw AssistantError.classifierModelMismatch(mismatch(with: model) ?? "")
        }
        return try reader.pooledLayerState(tokens(question, model: model), throughLayer: features.layer)
    }

    /// The question as a user turn, BOS first. Beyond `maxTokens` the middle goes: the first and
    /// last halves stay, so an instruction appended to a long text is still read, and the last
    /// token is still the one where the model's reply would begin.
    public func tokens(_ question: String, model: any LanguageModel) -> [Int32] {
        let prompt = model.chatTemplate.render([ChatMessage(role: "user", content: question)])
        let all = model.tokenizer.encode(prompt, addSpecial: true, parseSpecial: true)
        guard all.count > features.maxTokens else { return all }
        let head = features.maxTokens / 2
        return Array(all.prefix(head) + all.suffix(features.maxTokens - head))
    }
}
