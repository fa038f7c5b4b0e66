import DamdaModelIO
import DamdaCore
import Foundation

/// A projection LoRA can adapt, named as in Hugging Face PEFT's `target_modules`.
public enum LoRATarget: String, CaseIterable, Sendable, Codable {
    case q, k, v, o, gate, up, down

    /// The Hugging Face module name (`q_proj` …), as PEFT writes it in `target_modules`.
    public var moduleName: String {
        switch self {
        case .q: "q_proj"
        case .k: "k_proj"
        case .v: "v_proj"
        case .o: "o_proj"
        case .gate: "gate_proj"
        case .up: "up_proj"
        case .down: "down_proj"
        }
    }

    /// The module's path inside a decoder layer (`self_attn.q_proj`, `mlp.gate_proj`).
    public var modulePath: String {
        switch self {
        case .q, .k, .v, .o: "self_attn." + moduleName
        case .gate, .up, .down: "mlp." + moduleName
        }
    }

    /// The one of seven per-projection values that belongs to this target.
    public func pick<T>(q: T, k: T, v: T, o: T, gate: T, up: T, down: T) -> T {
        switch self {
        case .q: q
        case .k: k
        case .v: v
        case .o: o
        case .gate: gate
        case .up: up
        case .down: down
        }
    }

    public init?(moduleName: String) {
        guard let t = Self.allCases.first(where: { $0.moduleName == moduleName || $0.rawValue == moduleName }) else { return nil }
        self = t
    }

    /// Parses "q,k,v,o,gate,up,down" (short names or PEFT module names; "all" for every one).
    public static func parseList(_ s: String) throws -> [LoRATarget] {
        if s == "all" { return allCases }
        var out: [LoRATarget] = []
        for part in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let t = LoRATarget(moduleName: part) else { throw LoRAError.unknownTarget(part) }
            if !out.contains(t) { out.append(t) }
        }
        guard !out.isEmpty else { throw LoRAError.unknownTarget(s) }
        return allCases.filter(out.contains)
    }
}

/// Input and output widths of every adaptable projection of a model, per layer.
public struct LoRAGeometry: Sendable, Equatable {
    public var layers: Int
    public var dims: [LoRATarget: (input: Int, output: Int)]

    public init(layers: Int, dims: [LoRATarget: (input: Int, output: Int)]) { self.layers = layers; self.dims = dims }

    /// A decoder's projections: attention (grouped-query) and a gated FFN.
    public static func decoder(layers: Int, embedding E: Int, heads: Int, kvHeads: Int, headDim: Int, valueDim: Int,
                               feedForward F: Int) -> LoRAGeometry {
        LoRAGeometry(layers: layers, dims: [
            .q: (E, heads * headDim), .k: (E, kvHeads * headDim), .v: (E, kvHeads * valueDim), .o: (heads * valueDim, E),
            .gate: (E, F), .up: (E, F), .down: (F, E),
        ])
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.layers == b.layers && LoRATarget.allCases.allSatisfy { a.dims[$0]?.input == b.dims[$0]?.input && a.dims[$0]?.output == b.dims[$0]?.output }
    }
}

/// Low-rank adapters: for each layer and target, A [rank × input] and B [output × rank]; the
/// adapted projection is y = W x + (alpha / rank) · B (A x). Every A and B lives in one flat fp32
/// array so the optimizer, gradient clipping and checkpoints treat them as one vector.
public final class LoRAAdapter: @unchecked Sendable {
    public struct Slot: Sendable {
        public let a: Int, b: Int
        public let input: Int, output: Int
    }

    public let rank: Int
    public let alpha: Float
    public let targets: [LoRATarget]
    public let geometry: LoRAGeometry
    /// slots[layer][target]: offsets of A and B in `parameters`.
    public let slots: [[LoRATarget: Slot]]
    public let count: Int
    public let parameters: UnsafeMutablePointer<Float>

    public var scale: Float { alpha / Float(rank) }

    /// Zero-filled adapters (callers initialize A; B stays zero so training starts at the base model).
    public init(geometry: LoRAGeometry, rank: Int, alpha: Float, targets: [LoRATarget]) {
        self.rank = rank; self.alpha = alpha; self.geometry = geometry
        self.targets = LoRATarget.allCases.filter(targets.contains)
        var offset = 0
        var slots: [[LoRATarget: Slot]] = []
        for _ in 0..<geometry.layers {
            var layer: [LoRATarget: Slot] = [:]
            for t in self.targets {
                let d = geometry.dims[t]!
                layer[t] = Slot(a: offset, b: offset + rank * d.input, input: d.input, output: d.output)
                offset += rank * (d.input + d.output)
            }
            slots.append(layer)
        }
        self.slots = slots
        count = offset
        parameters = .allocate(capacity: max(count, 1))
        parameters.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { parameters.deallocate() }

    /// PEFT's default init: A ~ Kaiming-uniform(a = √5) over the input width, B = 0.
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for layer in slots {
            for t in targets {
                let s = layer[t]!
                let bound = 1 / Float(s.input).squareRoot()
                for i in 0..<(rank * s.input) { parameters[s.a + i] = (Float(rng.nextUnit()) * 2 - 1) * bound }
                (parameters + s.b).update(repeating: 0, count: s.output * rank)
            }
        }
    }

    public func a(_ layer: Int, _ t: LoRATarget) -> UnsafeMutablePointer<Float>? { slots[layer][t].map { parameters + $0.a } }
    public func b(_ layer: Int, _ t: LoRATarget) -> UnsafeMutablePointer<Float>? { slots[layer][t].map { parameters + $0.b } }

    /// y[tokens × output] += scale · (x Aᵀ) Bᵀ for one layer's projection (no-op when not adapted).
    public func apply(layer: Int, _ t: LoRATarget, x: UnsafePointer<Float>, tokens: Int, y: UnsafeMutablePointer<Float>, threads: Int = 1) {
        guard let s = slots[layer][t] else { return }
        let z = UnsafeMutablePointer<Float>.allocate(capacity: tokens * rank)
        defer { z.deallocate() }
        // A decode step (one token, alone or as one row of a batch) in plain loops: sgemm's
        // dispatch costs more than these rank-16 products, and a batch applies the adapter row
        // by row through this same code, so batched and lone steps agree bit for bit.
        if tokens <= 4 {
            let a = parameters + s.a, b = parameters + s.b
            for t in 0..<tokens {
                let xt = x + t * s.input, yt = y + t * s.output, zt = z + t * rank
                for r in 0..<rank { zt[r] = dotF32(a + r * s.input, xt, s.input) }
                for o in 0..<s.output { yt[o] += scale * dotF32(b + o * rank, zt, rank) }
            }
            return
        }
        BLAS.gemm(false, true, tokens, rank, s.input, 1, x, s.input, parameters + s.a, s.input, 0, z, rank, threads: threads)
        BLAS.gemm(false, true, tokens, s.output, rank, scale, z, rank, parameters + s.b, rank, 1, y, s.output, threads: threads)
    }

    /// ΔW = scale · B A for one projection, row-major [output × input].
    public func delta(layer: Int, _ t: LoRATarget) -> [Float]? {
        guard let s = slots[layer][t] else { return nil }
        var d = [Float](repeating: 0, count: s.output * s.input)
        d.withUnsafeMutableBufferPointer { dp in
            BLAS.serial(false, false, s.output, s.input, rank, scale, parameters + s.b, rank, parameters + s.a, s.input, 0, dp.baseAddress!, s.input)
        }
        return d
    }
}

/// A model whose projections LoRA adapters can change (Gemma 3, Llama, Qwen 2).
public protocol AdaptableModel: LanguageModel {
    var adapter: LoRAAdapter? { get set }
    var loraGeometry: LoRAGeometry { get }
    var file: GGUFFile { get }
    /// The frozen weight of one layer's projection.
    func matrix(layer: Int, _ t: LoRATarget) -> WeightMatrix
    /// For projections whose GGUF rows are permuted relative to Hugging Face's (Llama's Q and K,
    /// stored for adjacent-pair RoPE): the Hugging Face row of each GGUF row.
    var huggingFaceRowOrder: [LoRATarget: [Int]] { get }
}

extension AdaptableModel {
    public var huggingFaceRowOrder: [LoRATarget: [Int]] { [:] }
}

/// llama.cpp's Q/K permutation for adjacent-pair RoPE: GGUF row h·D + 2i + s is Hugging Face row h·D + s·D/2 + i.
public func adjacentPairRowOrder(heads: Int, headDim: Int) -> [Int] {
    var order = [Int](repeating: 0, count: heads * headDim)
    for h in 0..<heads { for i in 0..<(headDim / 2) { for s in 0..<2 { order[h * headDim + 2 * i + s] = h * headDim + s * headDim / 2 + i } } }
    return order
}
