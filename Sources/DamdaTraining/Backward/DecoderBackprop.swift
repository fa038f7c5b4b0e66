import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

/// One architecture's layers in training: forward keeping what backward needs in its own named
/// activations (llm.c's `ActivationTensors`), and backward. `Gemma3Backprop` and `LlamaBackprop`
/// implement it; `DecoderBackprop` runs the shared loop over layers and the loss.
protocol ArchitectureBackprop: AnyObject {
    associatedtype Activations: LayerActivations
    var projections: LoRAProjections { get }
    var embeddingWidth: Int { get }
    /// The LM head (tied or separate) and the norm before it.
    var output: WeightMatrix { get }
    var outputNorm: [Float] { get }
    /// Gemma's final logit soft-cap (0: none).
    var finalSoftcap: Float { get }
    func embed(_ tokens: [Int32], into h: UnsafeMutablePointer<Float>)
    /// RoPE tables for positions 0..<longest (architecture-specific bases and order).
    func ropeTables(_ longest: Int) -> [RopeTable]
    func attentionShape(_ il: Int) -> TrainingAttention
    func makeActivations(tokens T: Int, probabilities: Int) -> Activations
    /// Layer `il` from `a.input` to `out`, filling `a`.
    func layerForward(_ il: Int, _ a: Activations, _ pass: BackpropPass, out: UnsafeMutablePointer<Float>)
    /// ∂L/∂(layer output) in `dh` becomes ∂L/∂(layer input); LoRA gradients accumulate.
    func layerBackward(_ il: Int, _ a: Activations, _ pass: BackpropPass, dh: UnsafeMutablePointer<Float>)
}

/// What every architecture's activations hold besides their own tensors.
protocol LayerActivations {
    /// The layer's input (the residual stream), kept even when the rest is recomputed.
    var input: Buffer { get }
    var lora: LoRAIntermediates { get }
}

/// The LoRA projections' z = drop(x) Aᵀ per target, saved by forward for backward.
final class LoRAIntermediates {
    var z: [LoRATarget: Buffer] = [:]
}

/// One packed batch's shape as the layers see it.
struct BackpropPass {
    let T: Int
    let segments: [Range<Int>]
    /// RoPE tables for positions 0..<longest segment.
    let rope: [RopeTable]
}

/// A model whose layers the training pass knows (Gemma 3, Llama / Qwen 2).
protocol TrainableArchitecture: AdaptableModel {
    func backpropLayers(adapter: LoRAAdapter, dropout: Float, threads: Int) throws -> any ArchitectureBackprop
}

/// The LoRA training pass of a decoder: embedding, the layers forward and backward, the
/// answer-only LM head with its cross-entropy, and the gradients of the adapter's parameters.
public final class DecoderBackprop: @unchecked Sendable {
    let layers: any ArchitectureBackprop
    var projections: LoRAProjections { layers.projections }
    public var adapter: LoRAAdapter { projections.adapter }
    public var gradients: UnsafeMutablePointer<Float> { projections.gradients }
    public var dropout: Float {
        get { projections.dropout }
        set { projections.dropout = newValue }
    }
    /// Keep only each layer's input and recompute the rest during backward (less memory, ~1/3 more work).
    public var recompute: Bool
    public var threads: Int { projections.threads }
    /// Vocabulary rows per LM-head tile.
    public var vocabularyTile = 8192
    let model: any AdaptableModel
    let layerCount: Int

    /// The training pass for a Gemma 3 or Llama / Qwen 2 model.
    public init(model: any LanguageModel, adapter: LoRAAdapter, dropout: Float = 0, recompute: Bool = false, threads: Int) throws {
        guard let trainable = model as? any TrainableArchitecture else { throw TrainingError.unsupported("this architecture cannot be trained") }
        guard adapter.geometry == trainable.loraGeometry else { throw LoRAError.mismatch("layer or projection sizes differ") }
        layers = try trainable.backpropLayers(adapter: adapter, dropout: dropout, threads: threads)
        self.model = trainable
        self.recompute = recompute
        layerCount = trainable.loraGeometry.layers
        #if canImport(Glibc)
        // Every step allocates and frees the same activation sizes: keep them on the heap instead of
        // mmap/munmap, which would have the kernel zero fresh pages each time (~4% of a step).
        _ = glibcMallopt(-3, 32 << 20)  // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 1 << 30)   // M_TRIM_THRESHOLD
        #endif
    }

    public func zeroGradients() { gradients.update(repeating: 0, count: adapter.count) }

    // MARK: Loss and gradients

    /// Runs forward and backward on one packed batch: adds ∂(lossScale · Σ CE)/∂θ to `gradients`
    /// and returns the unscaled sum of cross-entropies and the number of target tokens.
    public func accumulate(_ batch: PackedBatch, lossScale: Float, dropoutSeed: UInt64) throws -> (lossSum: Double, tokens: Int) {
        try run(layers, batch, lossScale: lossScale, dropoutSeed: dropoutSeed, backward: true)
    }

    /// The summed cross-entropy and target count without gradients (validation).
    public func loss(_ batch: PackedBatch) throws -> (lossSum: Double, tokens: Int) {
        try run(layers, batch, lossScale: 0, dropoutSeed: 0, backward: false)
    }

    func run<A: ArchitectureBackprop>(_ arch: A, _ batch: PackedBatch, lossScale: Float, dropoutSeed: UInt64,
                                      backward: Bool) throws -> (lossSum: Double, tokens: Int) {
        let T = batch.tokens.count, E = arch.embeddingWidth
        guard T > 0 else { return (0, 0) }
        let vocabulary = model.vocabularySize
        for t in batch.tokens where t < 0 || Int(t) >= vocabulary { throw EngineError.badToken(t, vocabulary: vocabulary) }
        let longest = batch.segments.map(\.count).max() ?? 0
        guard longest <= model.contextLength else { throw EngineError.contextOverflow(needed: longest, capacity: model.contextLength) }
        projections.passSeed = dropoutSeed
        let keepOnlyInputs = recompute || !backward
        let pass = BackpropPass(T: T, segments: batch.segments, rope: arch.ropeTables(longest))
        let probCount = arch.attentionShape(0).probabilityCount(batch.segments)

        // Forward. Each layer keeps its activations, or only its input when they are recomputed.
        let h = Buffer(T * E)
        arch.embed(batch.tokens, into: h.p)
        var saved: [A.Activations?] = []
        var inputs: [Buffer?] = []
        for il in 0..<layerCount {
            let acts = arch.makeActivations(tokens: T, probabilities: probCount)
            acts.input.p.update(from: h.p, count: T * E)
            if keepOnlyInputs {
                let input = Buffer(uninitialized: T * E)
                input.p.update(from: h.p, count: T * E)
                arch.layerForward(il, acts, pass, out: h.p)
                inputs.append(input)
                saved.append(nil)
            } else {
                arch.layerForward(il, acts, pass, out: h.p)
                inputs.append(acts.input)
                saved.append(acts)
            }
        }

        // Loss at target positions only.
        let positions = batch.targets.indices.filter { batch.targets[$0] >= 0 }
        let dh = Buffer(T * E)
        var lossSum = 0.0
        if !positions.isEmpty {
            let n = positions.count, eps = projections.eps
            let hs = Buffer(n * E), xf = Buffer(n * E), dxf = Buffer(n * E)
            for (i, t) in positions.enumerated() { (hs.p + i * E).update(from: h.p + t * E, count: E) }
            arch.outputNorm.withUnsafeBufferPointer { Ops.rmsNorm(hs.p, $0.baseAddress!, xf.p, rows: n, n: E, eps: eps) }
            lossSum = lossHead(arch.output, finalSoftcap: arch.finalSoftcap, xf.p, targets: positions.map { batch.targets[$0] },
                               scale: lossScale, dx: dxf.p)
            let dhs = Buffer(n * E)
            arch.outputNorm.withUnsafeBufferPointer {
                OpsBackward.rmsNorm(x: hs.p, weight: $0.baseAddress!, dy: dxf.p, dx: dhs.p, rows: n, n: E, eps: eps, accumulate: false)
            }
            for (i, t) in positions.enumerated() { (dh.p + t * E).update(from: dhs.p + i * E, count: E) }
        }
        guard backward else { return (lossSum, positions.count) }

        // Backward, last layer first; dh carries ∂L/∂(layer output) down the residual stream.
        for il in stride(from: layerCount - 1, through: 0, by: -1) {
            let acts: A.Activations
            if let kept = saved[il] {
                acts = kept
            } else {
                acts = arch.makeActivations(tokens: T, probabilities: probCount)
                acts.input.p.update(from: inputs[il]!.p, count: T * E)
                let scratchOut = Buffer(T * E)
                arch.layerForward(il, acts, pass, out: scratchOut.p)
            }
            arch.layerBackward(il, acts, pass, dh: dh.p)
            saved[il] = nil  // free as we go
            inputs[il] = nil
        }
        return (lossSum, positions.count)
    }

    // MARK: LM head and cross-entropy

    /// Σ CE over rows of xf [n × E] against `targets`, writing dx = scale · ∂ΣCE/∂xf. The output
    /// matrix is dequantized one tile at a time; a running max and sum (online softmax) let one
    /// pass produce both the loss and Σ softmax(l)_v · e_v.
    func lossHead(_ out: WeightMatrix, finalSoftcap softcap: Float, _ xf: UnsafePointer<Float>, targets: [Int32], scale: Float,
                  dx: UnsafeMutablePointer<Float>) -> Double {
        let E = out.columns, V = out.rows, n = targets.count, threads = projections.threads
        // Running max, normalizer, target logit and the softcap's slope at the target, per row.
        let state = Buffer(4 * n)
        let m = state.p, z = state.p + n, targetLogit = state.p + 2 * n, targetSlope = state.p + 3 * n
        for i in 0..<n { m[i] = -.infinity; z[i] = 0; targetLogit[i] = 0; targetSlope[i] = 1 }
        let acc = Buffer(n * E)
        let tile = min(vocabularyTile, V)
        let w = Buffer(uninitialized: tile * E), logits = Buffer(uninitialized: n * tile)
        let slopes = softcap > 0 ? Buffer(uninitialized: n * tile) : nil
        var start = 0
        while start < V {
            let rows = min(tile, V - start)
            let wp = w.p
            if out.type == .f32 {
                wp.update(from: out.data.assumingMemoryBound(to: Float.self) + start * E, count: rows * E)
            } else {
                parallelRanges(rows, threads: threads, granule: 64) { r in
                    out.dequantizeRows((start + r.lowerBound)..<(start + r.upperBound), into: wp + r.lowerBound * E)
                }
            }
            projections.gemm(false, true, n, rows, E, 1, xf, E, w.p, E, 0, logits.p, rows)
            let lp = logits.p, accp = acc.p, tileStart = start
            parallelRanges(n, threads: threads) { rowRange in
                for i in rowRange {
                    let l = lp + i * rows
                    let slope = slopes.map { $0.p + i * rows }
                    if let slope {
                        for j in 0..<rows { let t = tanhf(l[j] / softcap); l[j] = t * softcap; slope[j] = 1 - t * t }
                    }
                    let target = Int(targets[i])
                    if target >= tileStart && target < tileStart + rows {
                        targetLogit[i] = l[target - tileStart]
                        targetSlope[i] = slope.map { $0[target - tileStart] } ?? 1
                    }
                    var tileMax = -Float.infinity
                    for j in 0..<rows where l[j] > tileMax { tileMax = l[j] }
                    let newMax = max(m[i], tileMax)
                    let rescale = m[i] == -.infinity ? 0 : expf(m[i] - newMax)
                    if rescale != 1 { Ops.scale(accp + i * E, rescale, E) }
                    // exp(l − max), then × slope when soft-capped (the chain rule through tanh).
                    for j in 0..<rows { l[j] -= newMax }
                    Ops.expVector(l, rows)
                    var sum: Float = 0
                    for j in 0..<rows { sum += l[j] }
                    if let slope { for j in 0..<rows { l[j] *= slope[j] } }
                    z[i] = z[i] * rescale + sum
                    m[i] = newMax
                }
            }
            projections.gemm(false, false, n, E, rows, 1, logits.p, rows, w.p, E, 1, acc.p, E)
            start += rows
        }
        var loss = 0.0
        let row = Buffer(E)
        for i in 0..<n {
            loss += Double(logf(z[i]) + m[i] - targetLogit[i])
            out.dequantizeRow(Int(targets[i]), into: row.p)
            let d = dx + i * E, a = acc.p + i * E
            let inv = 1 / z[i]
            for e in 0..<E { d[e] = scale * (a[e] * inv - targetSlope[i] * row.p[e]) }
        }
        return loss
    }
}

#if canImport(Glibc)
/// glibc's mallopt (malloc.h is not in Swift's Glibc module).
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// The shared building blocks, callable from each architecture's layers as their own.
extension ArchitectureBackprop {
    var threads: Int { projections.threads }

    func project(_ il: Int, _ t: LoRATarget, _ x: UnsafePointer<Float>, _ T: Int, _ y: UnsafeMutablePointer<Float>, _ lora: LoRAIntermediates) {
        projections.project(il, t, x, T, y, lora)
    }

    func projectBackward(_ il: Int, _ t: LoRATarget, input x: UnsafePointer<Float>, _ T: Int, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>, accumulate: Bool, _ lora: LoRAIntermediates) {
        projections.projectBackward(il, t, input: x, T, dy: dy, dx: dx, accumulate: accumulate, lora)
    }

    func norm(_ x: UnsafePointer<Float>, _ w: [Float], _ out: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        projections.norm(x, w, out, rows: rows, n: n)
    }

    func normBackward(x: UnsafePointer<Float>, _ w: [Float], dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                      rows: Int, n: Int, accumulate: Bool) {
        projections.normBackward(x: x, w, dy: dy, dx: dx, rows: rows, n: n, accumulate: accumulate)
    }

    func elements(_ count: Int, _ body: (Range<Int>) -> Void) { projections.elements(count, body) }
}
