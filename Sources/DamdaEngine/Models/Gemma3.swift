import DamdaCore
import DamdaModelIO
import DamdaTokenizer
import Foundation

/// Gemma 3 text decoder hyper-parameters, read from GGUF metadata (`gemma3.*`).
public struct Gemma3Config: Sendable {
    public var embedding: Int
    public var layers: Int
    public var feedForward: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var valueDim: Int
    public var ropeDims: Int
    public var eps: Float
    public var ropeBaseGlobal: Double
    /// llama.cpp hard-codes 10 000 for Gemma 3's sliding-window layers; the reference follows it.
    public var ropeBaseLocal: Double = 10_000
    public var ropeScaleGlobal: Double
    public var slidingWindow: Int
    /// Per layer: true if it attends within `slidingWindow` only.
    public var isSliding: [Bool]
    public var attentionScale: Float
    public var embeddingScale: Float
    public var finalSoftcap: Float
    public var attentionSoftcap: Float
    public var contextLength: Int

    public init(_ f: GGUFFile) throws {
        let p = "gemma3."
        embedding = try f.int(p + "embedding_length")
        layers = try f.int(p + "block_count")
        feedForward = try f.int(p + "feed_forward_length")
        heads = try f.int(p + "attention.head_count")
        kvHeads = try f.int(p + "attention.head_count_kv", default: heads)
        headDim = try f.int(p + "attention.key_length", default: embedding / max(heads, 1))
        valueDim = try f.int(p + "attention.value_length", default: headDim)
        ropeDims = try f.int(p + "rope.dimension_count", default: headDim)
        eps = Float(try f.double(p + "attention.layer_norm_rms_epsilon", default: 1e-6))
        ropeBaseGlobal = try f.double(p + "rope.freq_base", default: 1_000_000)
        let factor = try f.double(p + "rope.scaling.factor", default: 0)
        ropeScaleGlobal = factor > 0 ? 1 / factor : 1
        slidingWindow = try f.int(p + "attention.sliding_window", default: 0)
        if slidingWindow > 0 {
            if let pattern = f.metadata[p + "attention.sliding_window_pattern"]?.array, pattern.count == layers {
                isSliding = pattern.map { $0.bool ?? (($0.int ?? 0) != 0) }
            } else {
                // llama.cpp's set_swa_pattern(6): five sliding layers, then one global.
                isSliding = (0..<layers).map { $0 % 6 < 5 }
            }
        } else {
            isSliding = Array(repeating: false, count: layers)
        }
        // 27B scales by n_embd/n_head, every other size by 1/sqrt(head_dim) (query_pre_attn_scalar).
        attentionScale = layers == 62 ? 1 / (Float(embedding) / Float(heads)).squareRoot() : 1 / Float(headDim).squareRoot()
        embeddingScale = Float(embedding).squareRoot()
        finalSoftcap = Float(try f.double(p + "final_logit_softcapping", default: 0))
        attentionSoftcap = Float(try f.double(p + "attn_logit_softcapping", default: 0))
        contextLength = try f.int(p + "context_length", default: 8192)
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0, layers > 0, embedding > 0, ropeDims <= headDim, ropeDims % 2 == 0 else {
            throw GGUFError.badTensorShape(tensor: "gemma3.*", reason: "inconsistent attention geometry")
        }
    }
}

/// Gemma 3: embeddings scaled by sqrt(n_embd), pre- and post-norms around attention and FFN,
/// per-head Q/K RMSNorm, NEOX RoPE (1e6 global, 1e4 sliding), GELU(tanh)-gated FFN, tied output.
public final class Gemma3Model: AdaptableModel, LayerStateReading, @unchecked Sendable {
    package struct Layer {
        package let attnNorm, qNorm, kNorm, postAttnNorm, ffnNorm, postFFNNorm: [Float]
        package let projections: LayerProjections

        package func matrix(_ t: LoRATarget) -> WeightMatrix { projections.matrix(t) }
    }

    public let config: Gemma3Config
    public let file: GGUFFile
    public let tokenizer: any Tokenizer
    public var chatTemplate: ChatTemplate { .gemma }
    public var threads: Int
    package let embeddings: WeightMatrix
    package let output: WeightMatrix
    package let outputNorm: [Float]
    /// Greedy decoding's screened argmax over `output` (nil where its type has no screen).
    package let greedyHead: GreedyHead?
    package let layers: [Layer]
    package let scratch = Scratch()
    /// LoRA adapters added to the projections at every forward pass (nil: the base model).
    public var adapter: LoRAAdapter? {
        willSet { precondition(newValue.map { $0.geometry == loraGeometry } ?? true, "adapter geometry does not match the model") }
    }

    public func matrix(layer: Int, _ t: LoRATarget) -> WeightMatrix { layers[layer].matrix(t) }

    /// Input and output widths of the seven adaptable projections.
    public var loraGeometry: LoRAGeometry { Self.geometry(config) }

    static func geometry(_ c: Gemma3Config) -> LoRAGeometry {
        .decoder(layers: c.layers, embedding: c.embedding, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                        valueDim: c.valueDim, feedForward: c.feedForward)
    }

    public var vocabularySize: Int { embeddings.rows }

    /// Weight bytes one decode step reads: every layer matrix in its decode layout, and the output
    /// matrix (the bound that memory bandwidth puts on decode).
    public var decodeWeightBytes: Int {
        layers.reduce(output.decodeBytes) { sum, l in
            sum + LoRATarget.allCases.reduce(0) { $0 + l.matrix($1).decodeBytes }
        }
    }
    public var contextLength: Int { config.contextLength }

    public init(file: GGUFFile, threads: Int, weights: WeightLayout = .standard) throws {
        self.file = file
        let c = try Gemma3Config(file)
        config = c
        self.threads = threads
        tokenizer = try makeTokenizer(file)
        // Decode's own copies of the matrices it streams, in huge pages, each file page handed back
        // once copied. With `weights: .file` the sub-byte matrices are read from the mapping as
        // stored instead of re-laid; the rest (Gemma's Q8_0 output) are copied either way, which
        // costs no memory.
        let arena = WeightArena(), relayout = weights == .decode
        embeddings = try WeightMatrix(file, "token_embd.weight", arena: arena, relayout: relayout)
        guard embeddings.columns == c.embedding else {
            throw GGUFError.badTensorShape(tensor: "token_embd.weight", reason: "width \(embeddings.columns), expected \(c.embedding)")
        }
        output = file.tensorInfo("output.weight") != nil ? try WeightMatrix(file, "output.weight", arena: arena, relayout: relayout) : embeddings
        outputNorm = try loadVector(file, "output_norm.weight", count: c.embedding)
        greedyHead = GreedyHead(output)
        let geometry = Self.geometry(c)
        layers = try (0..<c.layers).map { il in
            let b = "blk.\(il)."
            let l = Layer(
                attnNorm: try loadVector(file, b + "attn_norm.weight", count: c.embedding),
                qNorm: try loadVector(file, b + "attn_q_norm.weight", count: c.headDim),
                kNorm: try loadVector(file, b + "attn_k_norm.weight", count: c.headDim),
                postAttnNorm: try loadVector(file, b + "post_attention_norm.weight", count: c.embedding),
                ffnNorm: try loadVector(file, b + "ffn_norm.weight", count: c.embedding),
                postFFNNorm: try loadVector(file, b + "post_ffw_norm.weight", count: c.embedding),
                projections: try LayerProjections(file, layer: il, geometry: geometry, arena: arena, relayout: relayout))
            return l
        }
    }

    public convenience init(path: String, threads: Int = Threads.available) throws {
        try self.init(file: try GGUFFile(path: path), threads: threads)
    }

    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: config.layers, capacity: min(capacity, config.contextLength),
                keyDim: config.kvHeads * config.headDim, valueDim: config.kvHeads * config.valueDim)
    }

    public func forward(_ tokens: [Int32], cache: KVCache, logits wanted: LogitsWanted) throws -> [Float] {
        let h = try hiddenStates(tokens, cache: cache)
        return outputLogits(h.p, tokens: tokens.count, wanted: wanted, norm: outputNorm, eps: config.eps, softcap: config.finalSoftcap)
    }

    /// The greedy next token after `tokens`, through `GreedyHead` where the output matrix allows:
    /// the token `forward` + argmax would give, without every logit in fp32. A final softcap
    /// (tanh) could merge two fp32 logits into a tie, so softcapped models take the full product.
    public func forwardGreedy(_ tokens: [Int32], cache: KVCache) throws -> Int32 {
        guard let head = greedyHead, config.finalSoftcap == 0 else {
            let logits = try forward(tokens, cache: cache, logits: .last)
            return Int32(Ops.argmax(logits))
        }
        let h = try hiddenStates(tokens, cache: cache)
        let E = config.embedding
        let x = Buffer(uninitialized: E)
        Ops.rmsNorm(h.p + (tokens.count - 1) * E, outputNorm, x.p, rows: 1, n: E, eps: config.eps)
        return Int32(head.argmax(x.p, threads: threads))
    }

    /// Runs the decoder over `tokens`, appending their keys and values to `cache`; returns the
    /// final hidden states [tokens × embedding] before the output norm.
    func hiddenStates(_ tokens: [Int32], cache: KVCache) throws -> Buffer {
        try hiddenStates(tokens, cache: cache, throughLayer: nil, adapter: adapter)
    }

    /// The same with the adapter given, stopping after layer `last` when it is set (the residual
    /// stream there; the later layers not run, `cache` needs only their keys and values).
    /// `capture`: the last token's residual stream after that layer is copied there as it passes.
    func hiddenStates(_ tokens: [Int32], cache: KVCache, throughLayer last: Int?, adapter: LoRAAdapter?,
                      capture: (layer: Int, into: UnsafeMutablePointer<Float>)? = nil) throws -> Buffer {
        let c = config
        let T = tokens.count
        guard T > 0 else { throw EngineError.emptyPrompt }
        guard cache.count + T <= cache.capacity else { throw EngineError.contextOverflow(needed: cache.count + T, capacity: cache.capacity) }
        for t in tokens where t < 0 || Int(t) >= vocabularySize { throw EngineError.badToken(t, vocabulary: vocabularySize) }
        let E = c.embedding, H = c.heads, D = c.headDim, Dv = c.valueDim
        let kDim = c.kvHeads * D, vDim = c.kvHeads * Dv
        let start = cache.count

        let h = Buffer(T * E), x = Buffer(T * E), tmp = Buffer(T * max(E, H * Dv))
        // Attention's q, k, v and output and the feed-forward's gate and up are never live at the
        // same time, so they share one buffer (5 MB less at the peak of a 512-token prefill).
        let work = Buffer(T * max(H * D + kDim + vDim + H * Dv, 2 * c.feedForward))
        let q = work.p, k = q + T * H * D, v = k + T * kDim, att = v + T * vDim
        let gate = work.p, up = work.p + T * c.feedForward

        let positions = start..<(start + T)
        let ropeLocal = RopeTable(positions: positions, nRot: c.ropeDims, base: c.ropeBaseLocal, freqScale: 1)
        let ropeGlobal = RopeTable(positions: positions, nRot: c.ropeDims, base: c.ropeBaseGlobal, freqScale: c.ropeScaleGlobal)
        for (t, id) in tokens.enumerated() {
            embeddings.dequantizeRow(Int(id), into: h.p + t * E)
            Ops.scale(h.p + t * E, c.embeddingScale, E)
        }
        // A prompt's row-wise steps (norms, rotations, residual adds, the gated GELU) split over the threads
        // by tokens, each row's arithmetic unchanged: run on the calling thread alone they left the
        // other core spinning for about 5% of a 512-token prefill. A few tokens stay on one thread.
        let rowThreads = T >= 16 ? threads : 1
        func byTokens(_ body: (Range<Int>) -> Void) { parallelRanges(T, threads: rowThreads, body) }
        func norm(_ x: UnsafeMutablePointer<Float>, _ w: [Float], _ out: UnsafeMutablePointer<Float>, perToken: Int, n: Int) {
            byTokens { t in
                Ops.rmsNorm(x + t.lowerBound * perToken * n, w, out + t.lowerBound * perToken * n, rows: t.count * perToken, n: n, eps: c.eps)
            }
        }
        func addResidual(_ from: UnsafePointer<Float>) { byTokens { t in Ops.add(h.p + t.lowerBound * E, from + t.lowerBound * E, t.count * E) } }
        for (il, L) in layers.enumerated() where il <= (last ?? layers.count - 1) {
            norm(h.p, L.attnNorm, x.p, perToken: 1, n: E)
            L.projections.project([.q, .k, .v], x.p, tokens: T, [q, k, v], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            norm(q, L.qNorm, q, perToken: H, n: D)
            norm(k, L.kNorm, k, perToken: c.kvHeads, n: D)
            let sliding = c.isSliding[il]
            let rope = sliding ? ropeLocal : ropeGlobal
            byTokens { t in
                Ops.rope(q, tokens: t.upperBound, heads: H, dim: D, table: rope, first: t.lowerBound)
                Ops.rope(k, tokens: t.upperBound, heads: c.kvHeads, dim: D, table: rope, first: t.lowerBound)
                Ops.scale(q + t.lowerBound * H * D, c.attentionScale, t.count * H * D)
                (cache.keys[il] + (start + t.lowerBound) * kDim).update(from: k + t.lowerBound * kDim, count: t.count * kDim)
                (cache.values[il] + (start + t.lowerBound) * vDim).update(from: v + t.lowerBound * vDim, count: t.count * vDim)
            }
            attention(q: q, cache: cache, layer: il, start: start, tokens: T, heads: H, kvHeads: c.kvHeads,
                      headDim: D, valueDim: Dv, window: sliding && c.slidingWindow > 0 ? c.slidingWindow : nil,
                      softcap: c.attentionSoftcap, out: att, threads: threads)
            L.projections.project([.o], att, tokens: T, [tmp.p], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            norm(tmp.p, L.postAttnNorm, tmp.p, perToken: 1, n: E)
            addResidual(tmp.p)

            norm(h.p, L.ffnNorm, x.p, perToken: 1, n: E)
            L.projections.project([.gate, .up], x.p, tokens: T, [gate, up], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            let F = c.feedForward
            byTokens { t in Ops.geluGateVector(gate + t.lowerBound * F, up + t.lowerBound * F, t.count * F) }
            L.projections.project([.down], gate, tokens: T, [tmp.p], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            norm(tmp.p, L.postFFNNorm, tmp.p, perToken: 1, n: E)
            addResidual(tmp.p)
            if let capture, capture.layer == il { capture.into.update(from: h.p + (T - 1) * E, count: E) }
        }
        cache.count = start + T
        return h
    }

    /// The base model's residual stream after layer `layer` (0-based) for every token, [tokens ×
    /// embedding], without the adapter and without the layers above: features for classifiers
    /// that read what the model makes of a text (`LayerStateReading`).
    public func layerStates(_ tokens: [Int32], throughLayer layer: Int) throws -> [Float] {
        precondition(layers.indices.contains(layer), "layer \(layer) is outside 0..<\(layers.count)")
        // Keys and values only for the layers that run; they are dropped with the cache.
        let cache = KVCache(layers: layer + 1, capacity: tokens.count, keyDim: config.kvHeads * config.headDim,
                            valueDim: config.kvHeads * config.valueDim)
        let h = try hiddenStates(tokens, cache: cache, throughLayer: layer, adapter: nil)
        return Array(UnsafeBufferPointer(start: h.p, count: tokens.count * config.embedding))
    }

    /// `forward` that also hands back the last token's residual stream after `layer`, with the
    /// adapter applied: what a `RefusalProbe` reads at the end of a prompt. The logits are the
    /// very ones `forward` returns.
    public func forward(_ tokens: [Int32], cache: KVCache, logits wanted: LogitsWanted, stateAfterLayer layer: Int) throws -> (logits: [Float], state: [Float]) {
        precondition(layers.indices.contains(layer), "layer \(layer) is outside 0..<\(layers.count)")
        let state = Buffer(config.embedding)
        let h = try hiddenStates(tokens, cache: cache, throughLayer: nil, adapter: adapter, capture: (layer, state.p))
        let logits = outputLogits(h.p, tokens: tokens.count, wanted: wanted, norm: outputNorm, eps: config.eps, softcap: config.finalSoftcap)
        return (logits, Array(UnsafeBufferPointer(start: state.p, count: config.embedding)))
    }

    public var layerCount: Int { layers.count }
    public var stateWidth: Int { config.embedding }
    public var stateSource: String { (try? file.string("general.name")) ?? "gemma3" }

    func outputLogits(_ h: UnsafeMutablePointer<Float>, tokens T: Int, wanted: LogitsWanted, norm: [Float], eps: Float, softcap: Float) -> [Float] {
        let E = config.embedding
        let first: Int
        switch wanted {
        case .none: return []
        case .last: first = T - 1
        case .all: first = 0
        }
        let n = T - first
        let V = output.rows
        var logits = [Float](repeating: 0, count: n * V)
        let x = Buffer(n * E)
        Ops.rmsNorm(h + first * E, norm, x.p, rows: n, n: E, eps: eps)
        logits.withUnsafeMutableBufferPointer { lp in
            for t in 0..<n { matvec(output, x.p + t * E, lp.baseAddress! + t * V, threads: threads) }
            if softcap > 0 { for i in 0..<(n * V) { lp[i] = tanhf(lp[i] / softcap) * softcap } }
        }
        return logits
    }
}
