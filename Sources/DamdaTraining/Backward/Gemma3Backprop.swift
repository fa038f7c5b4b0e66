import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

public enum TrainingError: DamdaError {
    case unsupported(String)
    case badData(String)
    case badCheckpoint(String)

    public var message: String {
        switch self {
        case let .unsupported(why): "training: \(why)"
        case let .badData(why): why
        case let .badCheckpoint(why): "checkpoint: \(why)"
        }
    }
}

/// Sequences laid end to end for one forward/backward pass; each attends only within itself
/// and its positions restart at 0 (packing with a block-diagonal causal mask).
public struct PackedBatch: Sendable {
    public var tokens: [Int32] = []
    /// The next token at each position, or -1 where no loss is taken (prompt, padding).
    public var targets: [Int32] = []
    public var segments: [Range<Int>] = []

    public init() {}

    /// Appends one sequence: position i predicts ids[i + 1], with a loss where that token is an answer token.
    public mutating func append(_ s: TrainingSequence) {
        guard s.ids.count >= 2 else { return }
        let start = tokens.count
        tokens += s.ids.dropLast()
        targets += (1..<s.ids.count).map { s.isAnswer[$0] ? s.ids[$0] : -1 }
        segments.append(start..<tokens.count)
    }

    public mutating func append(ids: [Int32], lossFrom: Int) {
        append(TrainingSequence(ids: ids, isAnswer: ids.indices.map { $0 >= lossFrom }))
    }

    public var lossTokens: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}

/// Gemma 3 forward with saved activations and the backward pass into LoRA gradients. The base
/// weights stay quantized in the GGUF and are dequantized per projection (QLoRA); the loss's LM
/// head runs only at positions that carry a target, in vocabulary tiles with an online softmax.
public final class Gemma3Backprop: @unchecked Sendable {
    public let model: Gemma3Model
    public let adapter: LoRAAdapter
    public let gradients: UnsafeMutablePointer<Float>
    public var dropout: Float
    /// Keep only each layer's input and recompute the rest during backward (less memory, ~1/3 more work).
    public var recompute: Bool
    public var threads: Int
    /// Vocabulary rows per LM-head tile.
    public var vocabularyTile = 8192
    private var weightBuffer: UnsafeMutablePointer<Float>
    private var weightCapacity: Int

    public init(model: Gemma3Model, adapter: LoRAAdapter, dropout: Float = 0, recompute: Bool = false, threads: Int) throws {
        guard adapter.geometry == model.loraGeometry else { throw LoRAError.mismatch("layer or projection sizes differ") }
        guard model.config.attentionSoftcap == 0 else { throw TrainingError.unsupported("attention logit soft-capping (Gemma 2) is not supported") }
        self.model = model; self.adapter = adapter; self.dropout = dropout; self.recompute = recompute; self.threads = threads
        gradients = .allocate(capacity: max(adapter.count, 1))
        gradients.initialize(repeating: 0, count: max(adapter.count, 1))
        weightCapacity = 1
        weightBuffer = .allocate(capacity: 1)
    }

    deinit { gradients.deallocate(); weightBuffer.deallocate() }

    public func zeroGradients() { gradients.update(repeating: 0, count: adapter.count) }

    // MARK: Saved activations

    final class LayerActivations {
        let h0, x1, q0, k0, q2, k2, v, att, o0, h1, x2, g, u, tg, d0: Buffer
        let probs: Buffer
        var z: [LoRATarget: Buffer] = [:]
        init(T: Int, c: Gemma3Config, probCount: Int, rank: Int, targets: [LoRATarget], inputOnly: Bool) {
            let E = c.embedding, F = c.feedForward
            h0 = Buffer(T * E)
            let n = inputOnly ? 0 : T
            x1 = Buffer(n * E); q0 = Buffer(n * c.heads * c.headDim); k0 = Buffer(n * c.kvHeads * c.headDim)
            q2 = Buffer(n * c.heads * c.headDim); k2 = Buffer(n * c.kvHeads * c.headDim); v = Buffer(n * c.kvHeads * c.valueDim)
            att = Buffer(n * c.heads * c.valueDim); o0 = Buffer(n * E); h1 = Buffer(n * E); x2 = Buffer(n * E)
            g = Buffer(n * F); u = Buffer(n * F); tg = Buffer(n * F); d0 = Buffer(n * E)
            probs = Buffer(inputOnly ? 0 : probCount)
            if !inputOnly { for t in targets { z[t] = Buffer(T * rank) } }
        }
    }

    struct Pass {
        let T: Int
        let segments: [Range<Int>]
        let ropeLocal: RopeTable, ropeGlobal: RopeTable
        let dropoutSeed: UInt64
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
        let keepOnlyInputs = recompute || !backward
        let c = model.config
        let T = batch.tokens.count, E = c.embedding
        guard T > 0 else { return (0, 0) }
        passSeed = dropoutSeed
        for t in batch.tokens where t < 0 || Int(t) >= model.vocabularySize { throw EngineError.badToken(t, vocabulary: model.vocabularySize) }
        let longest = batch.segments.map(\.count).max() ?? 0
        guard longest <= c.contextLength else { throw EngineError.contextOverflow(needed: longest, capacity: c.contextLength) }
        let pass = Pass(T: T, segments: batch.segments,
                        ropeLocal: RopeTable(positions: 0..<longest, nRot: c.ropeDims, base: c.ropeBaseLocal, freqScale: 1),
                        ropeGlobal: RopeTable(positions: 0..<longest, nRot: c.ropeDims, base: c.ropeBaseGlobal, freqScale: c.ropeScaleGlobal),
                        dropoutSeed: dropoutSeed)
        let probCount = TrainingAttention(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim: c.valueDim, window: nil)
            .probabilityCount(batch.segments)

        // Forward.
        let h = Buffer(T * E)
        for (t, id) in batch.tokens.enumerated() {
            model.embeddings.dequantizeRow(Int(id), into: h.p + t * E)
            Ops.scale(h.p + t * E, c.embeddingScale, E)
        }
        var saved: [LayerActivations] = []
        for il in 0..<c.layers {
            let acts = LayerActivations(T: T, c: c, probCount: probCount, rank: adapter.rank, targets: adapter.targets, inputOnly: keepOnlyInputs)
            acts.h0.p.update(from: h.p, count: T * E)
            if keepOnlyInputs {
                let full = LayerActivations(T: T, c: c, probCount: probCount, rank: adapter.rank, targets: adapter.targets, inputOnly: false)
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
            model.outputNorm.withUnsafeBufferPointer { Ops.rmsNorm(hs.p, $0.baseAddress!, xf.p, rows: n, n: E, eps: c.eps) }
            lossSum = lossHead(xf.p, targets: positions.map { batch.targets[$0] }, scale: lossScale, dx: dxf.p)
            let dhs = Buffer(n * E)
            model.outputNorm.withUnsafeBufferPointer {
                OpsBackward.rmsNorm(x: hs.p, weight: $0.baseAddress!, dy: dxf.p, dx: dhs.p, rows: n, n: E, eps: c.eps, accumulate: false)
            }
            for (i, t) in positions.enumerated() { (dh.p + t * E).update(from: dhs.p + i * E, count: E) }
        }
        guard backward else { return (lossSum, positions.count) }

        // Backward, last layer first; dh carries ∂L/∂(layer output) down the residual stream.
        for il in stride(from: c.layers - 1, through: 0, by: -1) {
            var acts = saved[il]
            if recompute {
                acts = LayerActivations(T: T, c: c, probCount: probCount, rank: adapter.rank, targets: adapter.targets, inputOnly: false)
                acts.h0.p.update(from: saved[il].h0.p, count: T * E)
                let scratchOut = Buffer(T * E)
                layerForward(il, acts, pass, out: scratchOut.p)
            }
            layerBackward(il, acts, pass, dh: dh.p)
            saved[il] = LayerActivations(T: 0, c: c, probCount: 0, rank: 0, targets: [], inputOnly: true)  // free as we go
        }
        return (lossSum, positions.count)
    }

    // MARK: One layer

    func layerForward(_ il: Int, _ a: LayerActivations, _ pass: Pass, out: UnsafeMutablePointer<Float>) {
        let c = model.config, L = model.layers[il], T = pass.T
        let E = c.embedding, H = c.heads, D = c.headDim, F = c.feedForward
        L.attnNorm.withUnsafeBufferPointer { Ops.rmsNorm(a.h0.p, $0.baseAddress!, a.x1.p, rows: T, n: E, eps: c.eps) }
        project(il, .q, a.x1.p, T, a.q0.p, a)
        project(il, .k, a.x1.p, T, a.k0.p, a)
        project(il, .v, a.x1.p, T, a.v.p, a)
        L.qNorm.withUnsafeBufferPointer { Ops.rmsNorm(a.q0.p, $0.baseAddress!, a.q2.p, rows: T * H, n: D, eps: c.eps) }
        L.kNorm.withUnsafeBufferPointer { Ops.rmsNorm(a.k0.p, $0.baseAddress!, a.k2.p, rows: T * c.kvHeads, n: D, eps: c.eps) }
        let rope = c.isSliding[il] ? pass.ropeLocal : pass.ropeGlobal
        for seg in pass.segments {
            Ops.rope(a.q2.p + seg.lowerBound * H * D, tokens: seg.count, heads: H, dim: D, table: rope)
            Ops.rope(a.k2.p + seg.lowerBound * c.kvHeads * D, tokens: seg.count, heads: c.kvHeads, dim: D, table: rope)
        }
        Ops.scale(a.q2.p, c.attentionScale, T * H * D)
        attention(il).forward(q: a.q2.p, k: a.k2.p, v: a.v.p, segments: pass.segments, probs: a.probs.p, out: a.att.p)
        project(il, .o, a.att.p, T, a.o0.p, a)
        L.postAttnNorm.withUnsafeBufferPointer { Ops.rmsNorm(a.o0.p, $0.baseAddress!, a.h1.p, rows: T, n: E, eps: c.eps) }
        Ops.add(a.h1.p, a.h0.p, T * E)
        L.ffnNorm.withUnsafeBufferPointer { Ops.rmsNorm(a.h1.p, $0.baseAddress!, a.x2.p, rows: T, n: E, eps: c.eps) }
        project(il, .gate, a.x2.p, T, a.g.p, a)
        project(il, .up, a.x2.p, T, a.u.p, a)
        let gk = Buffer(T * F)
        for i in 0..<(T * F) { let x = a.g.p[i]; gk.p[i] = 0.7978845608028654 * (x + 0.044715 * x * x * x) }
        Ops.tanhVector(gk.p, a.tg.p, T * F)
        OpsBackward.geluGateForward(g: a.g.p, u: a.u.p, tanh: a.tg.p, out: gk.p, T * F)
        project(il, .down, gk.p, T, a.d0.p, a)
        L.postFFNNorm.withUnsafeBufferPointer { Ops.rmsNorm(a.d0.p, $0.baseAddress!, out, rows: T, n: E, eps: c.eps) }
        Ops.add(out, a.h1.p, T * E)
    }

    func layerBackward(_ il: Int, _ a: LayerActivations, _ pass: Pass, dh: UnsafeMutablePointer<Float>) {
        let c = model.config, L = model.layers[il], T = pass.T
        let E = c.embedding, H = c.heads, D = c.headDim, F = c.feedForward
        // h2 = h1 + norm(d0): dh1 = dh (+ the FFN branch below), dd0 = normᵀ(dh).
        let dd0 = Buffer(T * E)
        L.postFFNNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.d0.p, weight: $0.baseAddress!, dy: dh, dx: dd0.p, rows: T, n: E, eps: c.eps, accumulate: false)
        }
        let act = Buffer(T * F), dAct = Buffer(T * F), du = Buffer(T * F)
        OpsBackward.geluGateForward(g: a.g.p, u: a.u.p, tanh: a.tg.p, out: act.p, T * F)
        projectBackward(il, .down, input: act.p, T, dy: dd0.p, dx: dAct.p, accumulate: false, a)
        OpsBackward.geluGate(g: a.g.p, u: a.u.p, tanh: a.tg.p, da: dAct.p, du: du.p, T * F)
        let dx2 = Buffer(T * E)
        projectBackward(il, .gate, input: a.x2.p, T, dy: dAct.p, dx: dx2.p, accumulate: false, a)
        projectBackward(il, .up, input: a.x2.p, T, dy: du.p, dx: dx2.p, accumulate: true, a)
        L.ffnNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.h1.p, weight: $0.baseAddress!, dy: dx2.p, dx: dh, rows: T, n: E, eps: c.eps, accumulate: true)
        }
        // h1 = h0 + norm(o0).
        let do0 = Buffer(T * E)
        L.postAttnNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.o0.p, weight: $0.baseAddress!, dy: dh, dx: do0.p, rows: T, n: E, eps: c.eps, accumulate: false)
        }
        let dAtt = Buffer(T * H * c.valueDim)
        projectBackward(il, .o, input: a.att.p, T, dy: do0.p, dx: dAtt.p, accumulate: false, a)
        let dq = Buffer(T * H * D), dk = Buffer(T * c.kvHeads * D), dv = Buffer(T * c.kvHeads * c.valueDim)
        attention(il).backward(q: a.q2.p, k: a.k2.p, v: a.v.p, segments: pass.segments, probs: a.probs.p, dOut: dAtt.p,
                               dq: dq.p, dk: dk.p, dv: dv.p)
        Ops.scale(dq.p, c.attentionScale, T * H * D)
        let rope = c.isSliding[il] ? pass.ropeLocal : pass.ropeGlobal
        for seg in pass.segments {
            OpsBackward.rope(dq.p + seg.lowerBound * H * D, tokens: seg.count, heads: H, dim: D, table: rope)
            OpsBackward.rope(dk.p + seg.lowerBound * c.kvHeads * D, tokens: seg.count, heads: c.kvHeads, dim: D, table: rope)
        }
        let dq0 = Buffer(T * H * D), dk0 = Buffer(T * c.kvHeads * D)
        L.qNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.q0.p, weight: $0.baseAddress!, dy: dq.p, dx: dq0.p, rows: T * H, n: D, eps: c.eps, accumulate: false)
        }
        L.kNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.k0.p, weight: $0.baseAddress!, dy: dk.p, dx: dk0.p, rows: T * c.kvHeads, n: D, eps: c.eps, accumulate: false)
        }
        let dx1 = Buffer(T * E)
        projectBackward(il, .q, input: a.x1.p, T, dy: dq0.p, dx: dx1.p, accumulate: false, a)
        projectBackward(il, .k, input: a.x1.p, T, dy: dk0.p, dx: dx1.p, accumulate: true, a)
        projectBackward(il, .v, input: a.x1.p, T, dy: dv.p, dx: dx1.p, accumulate: true, a)
        L.attnNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.h0.p, weight: $0.baseAddress!, dy: dx1.p, dx: dh, rows: T, n: E, eps: c.eps, accumulate: true)
        }
    }

    func attention(_ il: Int) -> TrainingAttention {
        let c = model.config
        return TrainingAttention(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim: c.valueDim,
                                 window: c.isSliding[il] && c.slidingWindow > 0 ? c.slidingWindow : nil)
    }

    // MARK: Projections (frozen base + LoRA)

    /// y = x Wᵀ + scale · (drop(x) Aᵀ) Bᵀ, saving z = drop(x) Aᵀ.
    func project(_ il: Int, _ t: LoRATarget, _ x: UnsafePointer<Float>, _ T: Int, _ y: UnsafeMutablePointer<Float>, _ a: LayerActivations) {
        let w = model.layers[il].matrix(t)
        gemm(false, true, T, w.rows, w.columns, 1, x, w.columns, dequantized(w), w.columns, 0, y, w.rows)
        guard let s = adapter.slots[il][t], let z = a.z[t] else { return }
        let r = adapter.rank
        withDropped(x, count: T * s.input, layer: il, t) { xd in
            gemm(false, true, T, r, s.input, 1, xd, s.input, adapter.parameters + s.a, s.input, 0, z.p, r)
        }
        gemm(false, true, T, s.output, r, adapter.scale, z.p, r, adapter.parameters + s.b, r, 1, y, s.output)
    }

    /// dx (+)= dy W + mask ⊙ (scale · dy B) A; dB += scale · dyᵀ z; dA += (scale · dy B)ᵀ drop(x).
    func projectBackward(_ il: Int, _ t: LoRATarget, input x: UnsafePointer<Float>, _ T: Int, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>, accumulate: Bool, _ a: LayerActivations) {
        let w = model.layers[il].matrix(t)
        gemm(false, false, T, w.columns, w.rows, 1, dy, w.rows, dequantized(w), w.columns, accumulate ? 1 : 0, dx, w.columns)
        guard let s = adapter.slots[il][t], let z = a.z[t] else { return }
        let r = adapter.rank
        gemm(true, false, s.output, r, T, adapter.scale, dy, s.output, z.p, r, 1, gradients + s.b, r)
        let dz = Buffer(T * r)
        gemm(false, false, T, r, s.output, adapter.scale, dy, s.output, adapter.parameters + s.b, r, 0, dz.p, r)
        withDropped(x, count: T * s.input, layer: il, t) { xd in
            gemm(true, false, r, s.input, T, 1, dz.p, r, xd, s.input, 1, gradients + s.a, s.input)
        }
        if dropout > 0 {
            let tmp = Buffer(T * s.input)
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

    private var passSeed: UInt64 = 0

    func withDropped(_ x: UnsafePointer<Float>, count: Int, layer: Int, _ t: LoRATarget, _ body: (UnsafePointer<Float>) -> Void) {
        guard dropout > 0 else { body(x); return }
        let xd = Buffer(count)
        xd.p.update(from: x, count: count)
        applyDropout(xd.p, count: count, layer: layer, t)
        body(xd.p)
    }

    /// Multiplies by the (layer, target) dropout mask ÷ (1 − p): four 16-bit draws per random word.
    func applyDropout(_ x: UnsafeMutablePointer<Float>, count: Int, layer: Int, _ t: LoRATarget) {
        var rng = SplitMix64(seed: passSeed ^ (UInt64(layer * 8 + LoRATarget.allCases.firstIndex(of: t)! + 1) &* 0x9E37_79B9_7F4A_7C15))
        let threshold = UInt64(dropout * 65536), keep = 1 / (1 - dropout)
        var i = 0
        while i < count {
            let word = rng.next()
            for lane in 0..<4 where i + lane < count {
                x[i + lane] *= ((word >> (16 * UInt64(lane))) & 0xFFFF) < threshold ? 0 : keep
            }
            i += 4
        }
    }

    // MARK: LM head and cross-entropy

    /// Σ CE over rows of xf [n × E] against `targets`, writing dx = scale · ∂ΣCE/∂xf. The tied
    /// embedding is dequantized one tile at a time; a running max and sum (online softmax) let one
    /// pass produce both the loss and Σ softmax(l)_v · e_v.
    func lossHead(_ xf: UnsafePointer<Float>, targets: [Int32], scale: Float, dx: UnsafeMutablePointer<Float>) -> Double {
        let out = model.output, E = out.columns, V = out.rows, n = targets.count
        let softcap = model.config.finalSoftcap
        var m = [Float](repeating: -.infinity, count: n), z = [Float](repeating: 0, count: n)
        var targetLogit = [Float](repeating: 0, count: n), targetSlope = [Float](repeating: 1, count: n)
        let acc = Buffer(n * E)
        let tile = min(vocabularyTile, V)
        let w = Buffer(tile * E), logits = Buffer(n * tile)
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
            for i in 0..<n {
                let l = logits.p + i * rows
                var slope: [Float] = []
                if softcap > 0 {
                    slope = [Float](repeating: 0, count: rows)
                    for j in 0..<rows { let t = tanhf(l[j] / softcap); l[j] = t * softcap; slope[j] = 1 - t * t }
                }
                let target = Int(targets[i])
                if target >= start && target < start + rows {
                    targetLogit[i] = l[target - start]
                    targetSlope[i] = softcap > 0 ? slope[target - start] : 1
                }
                var tileMax = -Float.infinity
                for j in 0..<rows where l[j] > tileMax { tileMax = l[j] }
                let newMax = max(m[i], tileMax)
                let rescale = m[i] == -.infinity ? 0 : expf(m[i] - newMax)
                if rescale != 1 { Ops.scale(acc.p + i * E, rescale, E) }
                var sum: Float = 0
                for j in 0..<rows { let e = expf(l[j] - newMax); sum += e; l[j] = softcap > 0 ? e * slope[j] : e }
                z[i] = z[i] * rescale + sum
                m[i] = newMax
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
