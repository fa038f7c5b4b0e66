import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

/// Gemma 3's layer forward (keeping what backward needs) and backward: pre- and post-norms around
/// attention and FFN, per-head Q/K RMSNorm, NEOX RoPE (local/global bases), sliding-window layers,
/// GELU(tanh)-gated FFN, embeddings scaled by √E, tied output.
/// What a Gemma 3 layer's backward reads, named as in its forward (each [tokens × width]).
struct Gemma3Activations: LayerActivations {
    let input: Buffer
    /// attention-normed input; Q/K before and after their head norms (q2 also roped and scaled); V
    let x1, q0, k0, q2, k2, v: Buffer
    /// attention output, its softmax probabilities, the output projection
    let att, probs, o0: Buffer
    /// residual after attention, its FFN norm, gate and up projections, tanh of the GELU argument, down projection
    let h1, x2, g, u, tg, d0: Buffer
    let lora = LoRAIntermediates()
}

extension Gemma3Model: TrainableArchitecture {
    func backpropLayers(adapter: LoRAAdapter, dropout: Float, threads: Int) throws -> any ArchitectureBackprop {
        try Gemma3Backprop(model: self, adapter: adapter, dropout: dropout, threads: threads)
    }
}

final class Gemma3Backprop: ArchitectureBackprop {
    let gemma: Gemma3Model
    let projections: LoRAProjections

    init(model: Gemma3Model, adapter: LoRAAdapter, dropout: Float, threads: Int) throws {
        guard model.config.attentionSoftcap == 0 else { throw TrainingError.unsupported("attention logit soft-capping (Gemma 2) is not supported") }
        gemma = model
        projections = LoRAProjections(model: model, adapter: adapter, dropout: dropout, eps: model.config.eps, threads: threads)
    }

    var embeddingWidth: Int { gemma.config.embedding }
    var output: WeightMatrix { gemma.output }
    var outputNorm: [Float] { gemma.outputNorm }
    var finalSoftcap: Float { gemma.config.finalSoftcap }

    func makeActivations(tokens T: Int, probabilities: Int) -> Gemma3Activations {
        let c = gemma.config, E = c.embedding, F = c.feedForward
        let qDim = c.heads * c.headDim, kDim = c.kvHeads * c.headDim
        func b(_ width: Int) -> Buffer { Buffer(uninitialized: T * width) }
        return Gemma3Activations(input: b(E), x1: b(E), q0: b(qDim), k0: b(kDim), q2: b(qDim), k2: b(kDim), v: b(c.kvHeads * c.valueDim),
                                 att: b(c.heads * c.valueDim), probs: Buffer(uninitialized: probabilities),  // only each row's visible part is used
                                 o0: b(E), h1: b(E), x2: b(E), g: b(F), u: b(F), tg: b(F), d0: b(E))
    }

    func embed(_ tokens: [Int32], into h: UnsafeMutablePointer<Float>) {
        let E = gemma.config.embedding
        for (t, id) in tokens.enumerated() {
            gemma.embeddings.dequantizeRow(Int(id), into: h + t * E)
            Ops.scale(h + t * E, gemma.config.embeddingScale, E)
        }
    }

    func ropeTables(_ longest: Int) -> [RopeTable] {
        let c = gemma.config
        return [RopeTable(positions: 0..<longest, nRot: c.ropeDims, base: c.ropeBaseLocal, freqScale: 1),
                RopeTable(positions: 0..<longest, nRot: c.ropeDims, base: c.ropeBaseGlobal, freqScale: c.ropeScaleGlobal)]
    }

    func attentionShape(_ il: Int) -> TrainingAttention {
        let c = gemma.config
        var shape = TrainingAttention(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim: c.valueDim,
                                      window: c.isSliding[il] && c.slidingWindow > 0 ? c.slidingWindow : nil)
        shape.threads = threads
        return shape
    }


    func layerForward(_ il: Int, _ a: Gemma3Activations, _ pass: BackpropPass, out: UnsafeMutablePointer<Float>) {
        let c = gemma.config, L = gemma.layers[il], T = pass.T
        let E = c.embedding, H = c.heads, D = c.headDim, F = c.feedForward
        let x1 = a.x1.p, q0 = a.q0.p, k0 = a.k0.p, q2 = a.q2.p, k2 = a.k2.p, v = a.v.p
        norm(a.input.p, L.attnNorm, x1, rows: T, n: E)
        project(il, .q, x1, T, q0, a.lora)
        project(il, .k, x1, T, k0, a.lora)
        project(il, .v, x1, T, v, a.lora)
        norm(q0, L.qNorm, q2, rows: T * H, n: D)
        norm(k0, L.kNorm, k2, rows: T * c.kvHeads, n: D)
        let rope = pass.rope[c.isSliding[il] ? 0 : 1]
        for seg in pass.segments {
            Ops.rope(q2 + seg.lowerBound * H * D, tokens: seg.count, heads: H, dim: D, table: rope)
            Ops.rope(k2 + seg.lowerBound * c.kvHeads * D, tokens: seg.count, heads: c.kvHeads, dim: D, table: rope)
        }
        Ops.scale(q2, c.attentionScale, T * H * D)
        attentionShape(il).forward(q: q2, k: k2, v: v, segments: pass.segments, probs: a.probs.p, out: a.att.p)
        project(il, .o, a.att.p, T, a.o0.p, a.lora)
        let h1 = a.h1.p
        norm(a.o0.p, L.postAttnNorm, h1, rows: T, n: E)
        Ops.add(h1, a.input.p, T * E)
        norm(h1, L.ffnNorm, a.x2.p, rows: T, n: E)
        let g = a.g.p, u = a.u.p, tg = a.tg.p
        project(il, .gate, a.x2.p, T, g, a.lora)
        project(il, .up, a.x2.p, T, u, a.lora)
        let gk = Buffer(uninitialized: T * F), gkp = gk.p
        elements(T * F) { r in
            for i in r { let x = g[i]; gkp[i] = 0.7978845608028654 * (x + 0.044715 * x * x * x) }
            let o = r.lowerBound
            Ops.tanhVector(gkp + o, tg + o, r.count)
            OpsBackward.geluGateForward(g: g + o, u: u + o, tanh: tg + o, out: gkp + o, r.count)
        }
        project(il, .down, gk.p, T, a.d0.p, a.lora)
        norm(a.d0.p, L.postFFNNorm, out, rows: T, n: E)
        Ops.add(out, h1, T * E)
    }

    func layerBackward(_ il: Int, _ a: Gemma3Activations, _ pass: BackpropPass, dh: UnsafeMutablePointer<Float>) {
        let c = gemma.config, L = gemma.layers[il], T = pass.T
        let E = c.embedding, H = c.heads, D = c.headDim, F = c.feedForward
        let g = a.g.p, u = a.u.p, tg = a.tg.p
        // h2 = h1 + norm(d0): dh1 = dh (+ the FFN branch below), dd0 = normᵀ(dh).
        let dd0 = Buffer(uninitialized: T * E)
        normBackward(x: a.d0.p, L.postFFNNorm, dy: dh, dx: dd0.p, rows: T, n: E, accumulate: false)
        let act = Buffer(uninitialized: T * F), dAct = Buffer(uninitialized: T * F), du = Buffer(uninitialized: T * F)
        let actp = act.p, dActp = dAct.p, dup = du.p
        elements(T * F) { r in
            let o = r.lowerBound
            OpsBackward.geluGateForward(g: g + o, u: u + o, tanh: tg + o, out: actp + o, r.count)
        }
        projectBackward(il, .down, input: act.p, T, dy: dd0.p, dx: dAct.p, accumulate: false, a.lora)
        elements(T * F) { r in
            let o = r.lowerBound
            OpsBackward.geluGate(g: g + o, u: u + o, tanh: tg + o, da: dActp + o, du: dup + o, r.count)
        }
        let dx2 = Buffer(uninitialized: T * E)
        projectBackward(il, .gate, input: a.x2.p, T, dy: dAct.p, dx: dx2.p, accumulate: false, a.lora)
        projectBackward(il, .up, input: a.x2.p, T, dy: du.p, dx: dx2.p, accumulate: true, a.lora)
        normBackward(x: a.h1.p, L.ffnNorm, dy: dx2.p, dx: dh, rows: T, n: E, accumulate: true)
        // h1 = h0 + norm(o0).
        let do0 = Buffer(uninitialized: T * E)
        normBackward(x: a.o0.p, L.postAttnNorm, dy: dh, dx: do0.p, rows: T, n: E, accumulate: false)
        let dAtt = Buffer(uninitialized: T * H * c.valueDim)
        projectBackward(il, .o, input: a.att.p, T, dy: do0.p, dx: dAtt.p, accumulate: false, a.lora)
        let dq = Buffer(uninitialized: T * H * D), dk = Buffer(T * c.kvHeads * D), dv = Buffer(T * c.kvHeads * c.valueDim)
        attentionShape(il).backward(q: a.q2.p, k: a.k2.p, v: a.v.p, segments: pass.segments, probs: a.probs.p,
                                    dOut: dAtt.p, dq: dq.p, dk: dk.p, dv: dv.p)
        Ops.scale(dq.p, c.attentionScale, T * H * D)
        let rope = pass.rope[c.isSliding[il] ? 0 : 1]
        for seg in pass.segments {
            OpsBackward.rope(dq.p + seg.lowerBound * H * D, tokens: seg.count, heads: H, dim: D, table: rope)
            OpsBackward.rope(dk.p + seg.lowerBound * c.kvHeads * D, tokens: seg.count, heads: c.kvHeads, dim: D, table: rope)
        }
        let dq0 = Buffer(uninitialized: T * H * D), dk0 = Buffer(uninitialized: T * c.kvHeads * D)
        normBackward(x: a.q0.p, L.qNorm, dy: dq.p, dx: dq0.p, rows: T * H, n: D, accumulate: false)
        normBackward(x: a.k0.p, L.kNorm, dy: dk.p, dx: dk0.p, rows: T * c.kvHeads, n: D, accumulate: false)
        let dx1 = Buffer(uninitialized: T * E)
        projectBackward(il, .q, input: a.x1.p, T, dy: dq0.p, dx: dx1.p, accumulate: false, a.lora)
        projectBackward(il, .k, input: a.x1.p, T, dy: dk0.p, dx: dx1.p, accumulate: true, a.lora)
        projectBackward(il, .v, input: a.x1.p, T, dy: dv.p, dx: dx1.p, accumulate: true, a.lora)
        normBackward(x: a.input.p, L.attnNorm, dy: dx1.p, dx: dh, rows: T, n: E, accumulate: true)
    }
}
