/// Models that can hand out their intermediate hidden states: what the model makes of a text,
/// for small classifiers trained on top of it (the prompt-injection guard reads a middle layer).
public protocol LayerStateReading: LanguageModel {
    var layerCount: Int { get }
    /// Width of one hidden state.
    var stateWidth: Int { get }
    /// Which model the states are (the GGUF `general.name`): a classifier records it, and only
    /// that model's states fit its weights.
    var stateSource: String { get }
    /// The base model's residual stream after layer `layer` (0-based) for every token, row-major
    /// [tokens × stateWidth]; no adapter, no KV cache kept, the layers above not run.
    func layerStates(_ tokens: [Int32], throughLayer layer: Int) throws -> [Float]
    /// `forward` (adapter applied, keys and values appended to `cache`) that also returns the last
    /// token's residual stream after `layer`.
    func forward(_ tokens: [Int32], cache: KVCache, logits: LogitsWanted, stateAfterLayer layer: Int) throws -> (logits: [Float], state: [Float])
}

extension LayerStateReading {
    /// A fixed-width summary of a text, [2 × stateWidth]: the mean over tokens 1... of each
    /// token's state, then the last token's state, every state first scaled to unit
    /// root-mean-square. The mean says what the text is about; the last token of a prompt that
    /// ends where the model's reply begins holds what the model is about to do. Scaling keeps
    /// the few huge activations from dominating, and the first token (BOS) is left out of the
    /// mean for the same reason.
    public func pooledLayerState(_ tokens: [Int32], throughLayer layer: Int, eps: Float = 1e-6) throws -> [Float] {
        let states = try layerStates(tokens, throughLayer: layer)
        let E = stateWidth, T = tokens.count
        func unit(_ t: Int) -> [Float] { unitRMS(states[(t * E)..<((t + 1) * E)], eps: eps) }
        let rows = min(1, T - 1)..<T
        var mean = [Float](repeating: 0, count: E)
        for t in rows {
            for (i, v) in unit(t).enumerated() { mean[i] += v }
        }
        let n = Float(rows.count)
        return mean.map { $0 / n } + unit(T - 1)
    }
}

/// A state scaled to unit root-mean-square: what the classifiers over hidden states read (a few
/// huge activations would otherwise dominate).
public func unitRMS<C: Collection>(_ state: C, eps: Float = 1e-6) -> [Float] where C.Element == Float {
    let sumSquares = state.reduce(Float(0)) { $0 + $1 * $1 }
    let inverseRMS = 1 / (sumSquares / Float(max(state.count, 1)) + eps).squareRoot()
    return state.map { $0 * inverseRMS }
}
