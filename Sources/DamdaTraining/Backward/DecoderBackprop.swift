import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

/// What every decoder's training pass shares: the frozen projections with their LoRA adapters,
/// dropout, the answer-only LM head with its cross-entropy, and the forward/backward loop over
/// layers. `Gemma3Backprop` and `LlamaBackprop` supply the embedding and each layer's two passes.
/// The base weights stay quantized in the GGUF and are dequantized one projection at a time (QLoRA).
public class DecoderBackprop: @unchecked Sendable {
    public let adapter: LoRAAdapter
    public let gradients: UnsafeMutablePointer<Float>
    public var dropout: Float
    /// Keep only each layer's input and recompute the rest during backward (less memory, ~1/3 more work).
    public var recompute: Bool
    public var threads: Int
    /// Vocabulary rows per LM-head tile.
    public var vocabularyTile = 8192
    let model: any AdaptableModel
    let output: WeightMatrix
    let outputNorm: [Float]
    let eps: Float
    let finalSoftcap: Float
    let layerCount: Int
    private var weightBuffer: UnsafeMutablePointer<Float>
    private var weightCapacity = 1
    private var passSeed: UInt64 = 0

    init(model: any AdaptableModel, adapter: LoRAAdapter, output: WeightMatrix, outputNorm: [Float], eps: Float, finalSoftcap: Float,
         dropout: Float, recompute: Bool, threads: Int) throws {
        guard adapter.geometry == model.loraGeometry else { throw LoRAError.mismatch("layer or projection sizes differ") }
        self.model = model; self.adapter = adapter; self.output = output; self.outputNorm = outputNorm; self.eps = eps
        self.finalSoftcap = finalSoftcap; self.dropout = dropout; self.recompute = recompute; self.threads = threads
        layerCount = model.loraGeometry.layers
        #if canImport(Glibc)
        // Every step allocates and frees the same activation sizes: keep them on the heap instead of
        // mmap/munmap, which would have the kernel zero fresh pages each time (~4% of a step).
        _ = glibcMallopt(-3, 32 << 20)  // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 1 << 30)   // M_TRIM_THRESHOLD
        #endif
        gradients = .allocate(capacity: max(adapter.count, 1))
        gradients.initialize(repeating: 0, count: max(adapter.count, 1))
        weightBuffer = .allocate(capacity: 1)
    }

    deinit { gradients.deallocate(); weightBuffer.deallocate() }

    /// The training pass for a Gemma 3 or Llama / Qwen 2 model.
    public static func make(model: any LanguageModel, adapter: LoRAAdapter, dropout: Float = 0, recompute: Bool = false,
                            threads: Int) throws -> DecoderBackprop {
        if let g = model as? Gemma3Model { return try Gemma3Backprop(model: g, adapter: adapter, dropout: dropout, recompute: recompute, threads: threads) }
        if let l = model as? LlamaModel { return try LlamaBackprop(model: l, adapter: adapter, dropout: dropout, recompute: recompute, threads: threads) }
        throw TrainingError.unsupported("this architecture cannot be trained")
    }

    public func zeroGradients() { gradients.update(repeating: 0, count: adapter.count) }

    // MARK: What each architecture supplies

    var embeddingWidth: Int { fatalError("abstract") }
    func embed(_ tokens: [Int32], into h: UnsafeMutablePointer<Float>) { fatalError("abstract") }
    func makeActivations(tokens T: Int, probabilities: Int, inputOnly: Bool) -> LayerActivations { fatalError("abstract") }
    func attentionShape(_ il: Int) -> TrainingAttention { fatalError("abstract") }
    func layerForward(_ il: Int, _ a: LayerActivations, _ pass: Pass, out: UnsafeMutablePointer<Float>) { fatalError("abstract") }
    func layerBackward(_ il: Int, _ a: LayerActivations, _ pass: Pass, dh: UnsafeMutablePointer<Float>) { fatalError("abstract") }
    func ropeTables(_ longest: Int) -> [RopeTable] { fatalError("abstract") }

    /// One layer's saved tensors, by name (each architecture keeps what its backward needs).
    final class LayerActivations {
        let h0: Buffer
        var saved: [String: Buffer] = [:]
        var z: [LoRATarget: Buffer] = [:]
        init(T: Int, width: Int) { h0 = Buffer(uninitialized: T * width) }
        subscript(_ name: String) -> Buffer { saved[name]! }
    }

    struct Pass {
        let T: Int
        let segments: [Range<Int>]
        /// RoPE tables for positions 0..<longest segment (architecture-specific order).
        let rope: [RopeTable]
    }

    // MARK: Loss and gradients

    /// Runs forward and backward on one packed batch: adds ∂(lossScale · Σ CE)/∂θ to `gradients`
    /// and returns the unscaled sum of cross-entropies and the number of target tokens.
    public func accumulate(_ batch: PackedBatch, lossScale: Float, dropoutSeed: UInt64) throws -> (lossSum: Double, tokens: Int) {
        try run(batch, lossScale: lossScale, dropoutSeed: dropoutSeed, backward: true)
    }

    /// The summed cross-entropy and target count without gradients (validation).
    public func loss(_ batch: PackedBatch) throws -> (lossSum: Double, tokens: Int) {
        try run(batch, lossScale: 0, dropoutSeed: 0, backward: false)
    }

    func run(_ batch: PackedBatch, lossScale: Float, dropoutSeed: UInt64, backward: Bool) throws -> (lossSum: Double, tokens: Int) {
        let T = batch.tokens.count, E = embeddingWidth
        guard T > 0 else { return (0, 0) }
        let vocabulary = model.vocabularySize
        for t in batch.tokens where t < 0 || Int(t) >= vocabulary { throw EngineError.badToken(t, vocabulary: vocabulary) }
        let longest = batch.segments.map(\.count).max() ?? 0
        guard longest <= model.contextLength else { throw EngineError.contextOverflow(needed: longest, capacity: model.contextLength) }
        passSeed = dropoutSeed
        let keepOnlyInputs = recompute || !backward
        let pass = Pass(T: T, segments: batch.segments, rope: ropeTables(longest))
        let probCount = attentionShape(0).probabilityCount(batch.segments)

        // Forward.
        let h = Buffer(T * E)
        embed(batch.tokens, into: h.p)
        var saved: [LayerActivations] = []
        for il in 0..<layerCount {
            let acts = makeActivations(tokens: T, probabilities: probCount, inputOnly: keepOnlyInputs)
            acts.h0.p.update(from: h.p, count: T * E)
            if keepOnlyInputs {
                let full = makeActivations(tokens: T, probabilities: probCount, inputOnly: false)
                full.h0.p.update(from: h.p, count: T * E)
                layerForward(il, full, pass, out: h.p)
            } else {
                layerForward(il, acts, pass, out: h.p)
            }
            saved.append(acts)
        }

        // Loss at target positions only.
        let positions = batch.targets.indices.filter { batch.targets[$0] >= 0 }
        let dh = Buffer(T * E)
        var lossSum = 0.0
        if !positions.isEmpty {
            let n = positions.count
            let hs = Buffer(n * E), xf = Buffer(n * E), dxf = Buffer(n * E)
            for (i, t) in positions.enumerated() { (hs.p + i * E).update(from: h.p + t * E, count: E) }
            outputNorm.withUnsafeBufferPointer { Ops.rmsNorm(hs.p, $0.baseAddress!, xf.p, rows: n, n: E, eps: eps) }
            lossSum = lossHead(xf.p, targets: positions.map { batch.targets[$0] }, scale: lossScale, dx: dxf.p)
            let dhs = Buffer(n * E)
            outputNorm.withUnsafeBufferPointer {
                OpsBackward.rmsNorm(x: hs.p, weight: $0.baseAddress!, dy: dxf.p, dx: dhs.p, rows: n, n: E, eps: eps, accumulate: false)
            }
            for (i, t) in positions.enumerated() { (dh.p + t * E).update(from: dhs.p + i * E, count: E) }
        }
        guard backward else { return (lossSum, positions.count) }

        // Backward, last layer first; dh carries ∂L/∂(layer output) down the residual stream.
        for il in stride(from: layerCount - 1, through: 0, by: -1) {
            var acts = saved[il]
            if recompute {
                acts = makeActivations(tokens: T, probabilities: probCount, inputOnly: false)
                acts.h0.p.update(from: saved[il].h0.p, count: T * E)
                let scratchOut = Buffer(T * E)
                layerForward(il, acts, pass, out: scratchOut.p)
            }
            layerBackward(il, acts, pass, dh: dh.p)
            saved[il] = LayerActivations(T: 0, width: 0)  // free as we go
        }
        return (lossSum, positions.count)
    }

    // MARK: Projections (frozen base + LoRA)

    /// y = x Wᵀ + scale · (drop(x) Aᵀ) Bᵀ, saving z = drop(x) Aᵀ.
    func project(_ il: Int, _ t: LoRATarget, _ x: UnsafePointer<Float>, _ T: Int, _ y: UnsafeMutablePointer<Float>, _ a: LayerActivations) {
        let w = model.matrix(layer: il, t)
        gemm(false, true, T, w.rows, w.columns, 1, x, w.columns, dequantized(w), w.columns, 0, y, w.rows)
        guard let s = adapter.slots[il][t] else { return }
        let r = adapter.rank
        let z = Buffer(uninitialized: T * r)
        a.z[t] = z
        withDropped(x, count: T * s.input, layer: il, t) { xd in
            gemm(false, true, T, r, s.input, 1, xd, s.input, adapter.parameters + s.a, s.input, 0, z.p, r)
        }
        gemm(false, true, T, s.output, r, adapter.scale, z.p, r, adapter.parameters + s.b, r, 1, y, s.output)
    }

    /// dx (+)= dy W + mask ⊙ (scale · dy B) A; dB += scale · dyᵀ z; dA += (scale · dy B)ᵀ drop(x).
    func projectBackward(_ il: Int, _ t: LoRATarget, input x: UnsafePointer<Float>, _ T: Int, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>, accumulate: Bool, _ a: LayerActivations) {
        let w = model.matrix(layer: il, t)
        gemm(false, false, T, w.columns, w.rows, 1, dy, w.rows, dequantized(w), w.columns, accumulate ? 1 : 0, dx, w.columns)
        guard let s = adapter.slots[il][t], let z = a.z[t] else { return }
        let r = adapter.rank
        gemm(true, false, s.output, r, T, adapter.scale, dy, s.output, z.p, r, 1, gradients + s.b, r)
        let dz = Buffer(uninitialized: T * r)
        gemm(false, false, T, r, s.output, adapter.scale, dy, s.output, adapter.parameters + s.b, r, 0, dz.p, r)
        withDropped(x, count: T * s.input, layer: il, t) { xd in
            gemm(true, false, r, s.input, T, 1, dz.p, r, xd, s.input, 1, gradients + s.a, s.input)
        }
        if dropout > 0 {
            let tmp = Buffer(uninitialized: T * s.input)
            gemm(false, false, T, s.input, r, 1, dz.p, r, adapter.parameters + s.a, s.input, 0, tmp.p, s.input)
            applyDropout(tmp.p, count: T * s.input, layer: il, t)
            Ops.add(dx, tmp.p, T * s.input)
        } else {
            gemm(false, false, T, s.input, r, 1, dz.p, r, adapter.parameters + s.a, s.input, 1, dx, s.input)
        }
    }

    /// The projection's weights in fp32: F32 tensors as stored, others dequantized into a reused buffer.
    func dequantized(_ w: WeightMatrix) -> UnsafePointer<Float> {
        if w.type == .f32 { return w.data.assumingMemoryBound(to: Float.self) }
        let n = w.rows * w.columns
        if n > weightCapacity { weightBuffer.deallocate(); weightBuffer = .allocate(capacity: n); weightCapacity = n }
        let buf = weightBuffer
        parallelRanges(w.rows, threads: threads, granule: 32) { range in
            w.dequantizeRows(range, into: buf + range.lowerBound * w.columns)
        }
        return UnsafePointer(buf)
    }

    // MARK: Dropout (regenerated from the seed in backward, never stored)

    func withDropped(_ x: UnsafePointer<Float>, count: Int, layer: Int, _ t: LoRATarget, _ body: (UnsafePointer<Float>) -> Void) {
        guard dropout > 0 else { body(x); return }
        let xd = Buffer(uninitialized: count)
        xd.p.update(from: x, count: count)
        applyDropout(xd.p, count: count, layer: layer, t)
        body(xd.p)
    }

    /// Multiplies by the (layer, target) dropout mask ÷ (1 − p): four 16-bit draws per random word.
    /// Threads each jump to their own words of the one stream, so the mask does not depend on threads.
    func applyDropout(_ x: UnsafeMutablePointer<Float>, count: Int, layer: Int, _ t: LoRATarget) {
        let seed = passSeed ^ (UInt64(layer * 8 + LoRATarget.allCases.firstIndex(of: t)! + 1) &* 0x9E37_79B9_7F4A_7C15)
        let threshold = UInt64(dropout * 65536), keep = 1 / (1 - dropout)
        parallelRanges((count + 3) / 4, threads: threads, granule: 1024) { words in
            var rng = SplitMix64(seed: seed, skipping: UInt64(words.lowerBound))
            for w in words {
                let word = rng.next(), i = 4 * w
                for lane in 0..<4 where i + lane < count {
                    x[i + lane] *= ((word >> (16 * UInt64(lane))) & 0xFFFF) < threshold ? 0 : keep
                }
            }
        }
    }

    // MARK: Parallel building blocks

    /// Row-major fp32 product on this pass's threads.
    func gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
              _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
              _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        BLAS.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads: threads)
    }

    /// Elementwise work over `count` values, split across threads.
    func elements(_ count: Int, _ body: (Range<Int>) -> Void) { parallelRanges(count, threads: threads, granule: 4096, body) }

    /// out = RMSNorm(x) · w over `rows` rows of n, split across threads.
    func norm(_ x: UnsafePointer<Float>, _ w: [Float], _ out: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        w.withUnsafeBufferPointer { wp in
            let wb = wp.baseAddress!, eps = eps
            parallelRanges(rows, threads: threads, granule: 16) { r in
                Ops.rmsNorm(x + r.lowerBound * n, wb, out + r.lowerBound * n, rows: r.count, n: n, eps: eps)
            }
        }
    }

    /// RMSNorm's backward over rows, split across threads.
    func normBackward(x: UnsafePointer<Float>, _ w: [Float], dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                      rows: Int, n: Int, accumulate: Bool) {
        w.withUnsafeBufferPointer { wp in
            let wb = wp.baseAddress!, eps = eps
            parallelRanges(rows, threads: threads, granule: 16) { r in
                let o = r.lowerBound * n
                OpsBackward.rmsNorm(x: x + o, weight: wb, dy: dy + o, dx: dx + o, rows: r.count, n: n, eps: eps, accumulate: accumulate)
            }
        }
    }

    // MARK: LM head and cross-entropy

    /// Σ CE over rows of xf [n × E] against `targets`, writing dx = scale · ∂ΣCE/∂xf. The output
    /// matrix is dequantized one tile at a time; a running max and sum (online softmax) let one
    /// pass produce both the loss and Σ softmax(l)_v · e_v.
    func lossHead(_ xf: UnsafePointer<Float>, targets: [Int32], scale: Float, dx: UnsafeMutablePointer<Float>) -> Double {
        let out = output, E = out.columns, V = out.rows, n = targets.count
        let softcap = finalSoftcap
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
            gemm(false, true, n, rows, E, 1, xf, E, w.p, E, 0, logits.p, rows)
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
            gemm(false, false, n, E, rows, 1, logits.p, rows, w.p, E, 1, acc.p, E)
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
