import DamdaCore
import DamdaModelIO
import DamdaTokenizer
import Foundation

/// Llama / Qwen 2 hyper-parameters from GGUF metadata (`llama.*` or `qwen2.*`).
public struct LlamaConfig: Sendable {
    public var architecture: String
    public var embedding: Int
    public var layers: Int
    public var feedForward: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ropeDims: Int
    public var eps: Float
    public var ropeBase: Double
    public var ropeScale: Double
    public var contextLength: Int
    /// Llama GGUFs store Q/K permuted for adjacent-pair RoPE; Qwen 2 uses NEOX halves.
    public var neoxRope: Bool

    public init(_ f: GGUFFile) throws {
        architecture = try f.string("general.architecture")
        let p = architecture + "."
        embedding = try f.int(p + "embedding_length")
        layers = try f.int(p + "block_count")
        feedForward = try f.int(p + "feed_forward_length")
        heads = try f.int(p + "attention.head_count")
        kvHeads = try f.int(p + "attention.head_count_kv", default: heads)
        headDim = try f.int(p + "attention.key_length", default: embedding / max(heads, 1))
        ropeDims = try f.int(p + "rope.dimension_count", default: headDim)
        eps = Float(try f.double(p + "attention.layer_norm_rms_epsilon", default: 1e-5))
        ropeBase = try f.double(p + "rope.freq_base", default: 10_000)
        let factor = try f.double(p + "rope.scaling.factor", default: 0)
        ropeScale = factor > 0 ? 1 / factor : 1
        contextLength = try f.int(p + "context_length", default: 4096)
        neoxRope = architecture == "qwen2"
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0, ropeDims <= headDim, ropeDims % 2 == 0 else {
            throw GGUFError.badTensorShape(tensor: p + "*", reason: "inconsistent attention geometry")
        }
    }
}

/// Llama family (Llama 2/3, Qwen 2): pre-norm blocks, RoPE, grouped-query attention, SiLU-gated FFN,
/// optional Q/K/V biases (Qwen 2), separate or tied output matrix.
public final class LlamaModel: AdaptableModel, @unchecked Sendable {
    package struct Layer {
        package let attnNorm, ffnNorm: [Float]
        package let qBias, kBias, vBias: [Float]?
        package let projections: LayerProjections

        package func matrix(_ t: LoRATarget) -> WeightMatrix { projections.matrix(t) }
    }

    public let config: LlamaConfig
    public let file: GGUFFile
    public let tokenizer: any Tokenizer
    public var chatTemplate: ChatTemplate { .forArchitecture(config.architecture) }
    public var threads: Int
    package let embeddings: WeightMatrix
    package let output: WeightMatrix
    package let outputNorm: [Float]
    package let layers: [Layer]
    let scratch = Scratch()
    /// LoRA adapters added to the projections at every forward pass (nil: the base model).
    public var adapter: LoRAAdapter? {
        willSet { precondition(newValue.map { $0.geometry == loraGeometry } ?? true, "adapter geometry does not match the model") }
    }

    public var loraGeometry: LoRAGeometry { Self.geometry(config) }

    static func geometry(_ c: LlamaConfig) -> LoRAGeometry {
        .decoder(layers: c.layers, embedding: c.embedding, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                        valueDim: c.headDim, feedForward: c.feedForward)
    }

    public func matrix(layer: Int, _ t: LoRATarget) -> WeightMatrix {
        layers[layer].matrix(t)
    }

    /// Llama GGUFs store Q and K rows permuted for adjacent-pair RoPE; Qwen 2 keeps Hugging Face's order.
    public var huggingFaceRowOrder: [LoRATarget: [Int]] {
        guard !config.neoxRope else { return [:] }
        return [.q: adjacentPairRowOrder(heads: config.heads, headDim: config.headDim),
                .k: adjacentPairRowOrder(heads: config.kvHeads, headDim: config.headDim)]
    }

    public var vocabularySize: Int { output.rows }
    public var contextLength: Int { config.contextLength }

    public init(file: GGUFFile, threads: Int, weights: WeightLayout = .standard) throws {
        self.file = file
        let c = try LlamaConfig(file)
        config = c
        self.threads = threads
        tokenizer = try makeTokenizer(file)
        // Decode's own copies of the matrices it streams, in huge pages, each file page handed back
        // once copied. With `weights: .file` the sub-byte matrices are read from the mapping as
        // stored instead of re-laid; the rest (a Q8_0 or F16 output) are copied either way, which
        // costs no memory.
        let arena = WeightArena(), relayout = weights == .decode
        embeddings = try WeightMatrix(file, "token_embd.weight", arena: arena, relayout: relayout)
        output = file.tensorInfo("output.weight") != nil ? try WeightMatrix(file, "output.weight", arena: arena, relayout: relayout) : embeddings
        outputNorm = try loadVector(file, "output_norm.weight", count: c.embedding)
        func optional(_ n: String, _ count: Int) throws -> [Float]? {
            file.tensorInfo(n) == nil ? nil : try loadVector(file, n, count: count)
        }
        let geometry = Self.geometry(c)
        layers = try (0..<c.layers).map { il in
            let b = "blk.\(il)."
            let l = Layer(
                attnNorm: try loadVector(file, b + "attn_norm.weight", count: c.embedding),
                ffnNorm: try loadVector(file, b + "ffn_norm.weight", count: c.embedding),
                qBias: try optional(b + "attn_q.bias", c.heads * c.headDim),
                kBias: try optional(b + "attn_k.bias", c.kvHeads * c.headDim),
                vBias: try optional(b + "attn_v.bias", c.kvHeads * c.headDim),
                projections: try LayerProjections(file, layer: il, geometry: geometry, arena: arena, relayout: relayout))
            return l
        }
    }

    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: config.layers, capacity: min(capacity, config.contextLength),
                keyDim: config.kvHeads * config.headDim, valueDim: config.kvHeads * config.headDim)
    }

    public func forward(_ tokens: [Int32], cache: KVCache, logits wanted: LogitsWanted) throws -> [Float] {
        let c = config
        let T = tokens.count
        guard T > 0 else { throw EngineError.emptyPrompt }
        guard cache.count + T <= cache.capacity else { throw EngineError.contextOverflow(needed: cache.count + T, capacity: cache.capacity) }
        for t in tokens where t < 0 || Int(t) >= embeddings.rows { throw EngineError.badToken(t, vocabulary: embeddings.rows) }
        let E = c.embedding, H = c.heads, D = c.headDim, kDim = c.kvHeads * D
        let start = cache.count
        let h = Buffer(T * E), x = Buffer(T * E), tmp = Buffer(T * E)
        let q = Buffer(T * H * D), k = Buffer(T * kDim), v = Buffer(T * kDim), att = Buffer(T * H * D)
        let gate = Buffer(T * c.feedForward), up = Buffer(T * c.feedForward)
        for (t, id) in tokens.enumerated() { embeddings.dequantizeRow(Int(id), into: h.p + t * E) }
        let positions = start..<(start + T)
        let rope = RopeTable(positions: positions, nRot: c.ropeDims, base: c.ropeBase, freqScale: c.ropeScale)
        for (il, L) in layers.enumerated() {
            Ops.rmsNorm(h.p, L.attnNorm, x.p, rows: T, n: E, eps: c.eps)
            L.projections.project([.q, .k, .v], x.p, tokens: T, [q.p, k.p, v.p], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            if let b = L.qBias { Ops.addBias(q.p, b, rows: T) }
            if let b = L.kBias { Ops.addBias(k.p, b, rows: T) }
            if let b = L.vBias { Ops.addBias(v.p, b, rows: T) }
            if c.neoxRope {
                Ops.rope(q.p, tokens: T, heads: H, dim: D, table: rope)
                Ops.rope(k.p, tokens: T, heads: c.kvHeads, dim: D, table: rope)
            } else {
                Ops.ropeInterleaved(q.p, tokens: T, heads: H, dim: D, table: rope)
                Ops.ropeInterleaved(k.p, tokens: T, heads: c.kvHeads, dim: D, table: rope)
            }
            Ops.scale(q.p, 1 / Float(D).squareRoot(), T * H * D)
            (cache.keys[il] + start * kDim).update(from: k.p, count: T * kDim)
            (cache.values[il] + start * kDim).update(from: v.p, count: T * kDim)
            attention(q: q.p, cache: cache, layer: il, start: start, tokens: T, heads: H, kvHeads: c.kvHeads,
                      headDim: D, valueDim: D, window: nil, softcap: 0, out: att.p, threads: threads)
            L.projections.project([.o], att.p, tokens: T, [tmp.p], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            Ops.add(h.p, tmp.p, T * E)
            Ops.rmsNorm(h.p, L.ffnNorm, x.p, rows: T, n: E, eps: c.eps)
            L.projections.project([.gate, .up], x.p, tokens: T, [gate.p, up.p], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            Ops.siluGate(gate.p, up.p, T * c.feedForward)
            L.projections.project([.down], gate.p, tokens: T, [tmp.p], layer: il, adapter: adapter, threads: threads, scratch: scratch)
            Ops.add(h.p, tmp.p, T * E)
        }
        cache.count = start + T
        let first = wanted == .all ? 0 : T - 1
        if wanted == .none { return [] }
        let n = T - first, V = output.rows
        var logits = [Float](repeating: 0, count: n * V)
        Ops.rmsNorm(h.p + first * E, outputNorm, x.p, rows: n, n: E, eps: c.eps)
        logits.withUnsafeMutableBufferPointer { lp in
            for t in 0..<n { matvec(output, x.p + t * E, lp.baseAddress! + t * V, threads: threads) }
        }
        return logits
    }
}
