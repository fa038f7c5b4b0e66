import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

/// Llama / Qwen 2 layer forward and backward: pre-norm attention and FFN, optional Q/K/V biases
/// (Qwen 2, frozen), adjacent-pair (Llama) or NEOX (Qwen 2) RoPE, SiLU-gated FFN, separate or tied output.
/// What a Llama / Qwen 2 layer's backward reads, named as in its forward (each [tokens × width]).
struct LlamaActivations: LayerActivations {
    let input: Buffer
    /// attention-normed input; Q and K after bias, RoPE (and Q's scale); V
    let x1, q2, k2, v: Buffer
    /// attention output and its softmax probabilities
    let att, probs: Buffer
    /// residual after attention, its FFN norm, gate and up projections
    let h1, x2, g, u: Buffer
    let lora = LoRAIntermediates()
}

extension LlamaModel: TrainableArchitecture {
    func backpropLayers(adapter: LoRAAdapter, dropout: Float, threads: Int) throws -> any ArchitectureBackprop {
        try LlamaBackprop(model: self, adapter: adapter, dropout: dropout, threads: threads)
    }
}

final class LlamaBackprop: ArchitectureBackprop {
    let llama: LlamaModel
    let projections: LoRAProjections

    init(model: LlamaModel, adapter: LoRAAdapter, dropout: Float, threads: Int) throws {
        llama = model
        projections = LoRAProjections(model: model, adapter: adapter, dropout: dropout, eps: model.config.eps, threads: threads)
    }

    var embeddingWidth: Int { llama.config.embedding }
    var output: WeightMatrix { llama.output }
    var outputNorm: [Float] { llama.outputNorm }
    var finalSoftcap: Float { 0 }

    func makeActivations(tokens T: Int, probabilities: Int) -> LlamaActivations {
        let c = llama.config, E = c.embedding, F = c.feedForward
        let qDim = c.heads * c.headDim, kDim = c.kvHeads * c.headDim
        func b(_ width: Int) -> Buffer { Buffer(uninitialized: T * width) }
        return LlamaActivations(input: b(E), x1: b(E), q2: b(qDim), k2: b(kDim), v: b(kDim), att: b(qDim),
                                probs: Buffer(uninitialized: probabilities), h1: b(E), x2: b(E), g: b(F), u: b(F))
    }

    func embed(_ tokens: [Int32], into h: UnsafeMutablePointer<Float>) {
        for (t, id) in tokens.enumerated() { llama.embeddings.dequantizeRow(Int(id), into: h + t * llama.config.embedding) }
    }

    func ropeTables(_ longest: Int) -> [RopeTable] {
        let c = llama.config
        return [RopeTable(positions: 0..<longest, nRot: c.ropeDims, base: c.ropeBase, freqScale: c.ropeScale)]
    }

    func attentionShape(_ il: Int) -> TrainingAttention {
        let c = llama.config
        var shape = TrainingAttention(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim: c.headDim, window: nil)
        shape.threads = threads
        return shape
    }


    func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, _ pass: BackpropPass, backward: Bool) {
        let c = llama.config
        for seg in pass.segments {
            let p = x + seg.lowerBound * heads * c.headDim
            switch (c.neoxRope, backward) {
            case (true, false): Ops.rope(p, tokens: seg.count, heads: heads, dim: c.headDim, table: pass.rope[0])
            case (false, false): Ops.ropeInterleaved(p, tokens: seg.count, heads: heads, dim: c.headDim, table: pass.rope[0])
            case (true, true): OpsBackward.rope(p, tokens: seg.count, heads: heads, dim: c.headDim, table: pass.rope[0])
            case (false, true): OpsBackward.ropeInterleaved(p, tokens: seg.count, heads: heads, dim: c.headDim, table: pass.rope[0])
            }
        }
    }

    func layerForward(_ il: Int, _ a: LlamaActivations, _ pass: BackpropPass, out: UnsafeMutablePointer<Float>) {
        let c = llama.config, L = llama.layers[il], T = pass.T
        let E = c.embedding, H = c.heads, D = c.headDim, F = c.feedForward
        let x1 = a.x1.p, q2 = a.q2.p, k2 = a.k2.p, v = a.v.p
        L.attnNorm.withUnsafeBufferPointer { Ops.rmsNorm(a.input.p, $0.baseAddress!, x1, rows: T, n: E, eps: c.eps) }
        project(il, .q, x1, T, q2, a.lora)
        project(il, .k, x1, T, k2, a.lora)
        project(il, .v, x1, T, v, a.lora)
        if let b = L.qBias { Ops.addBias(q2, b, rows: T) }
        if let b = L.kBias { Ops.addBias(k2, b, rows: T) }
        if let b = L.vBias { Ops.addBias(v, b, rows: T) }
        rope(q2, heads: H, pass, backward: false)
        rope(k2, heads: c.kvHeads, pass, backward: false)
        Ops.scale(q2, 1 / Float(D).squareRoot(), T * H * D)
        attentionShape(il).forward(q: q2, k: k2, v: v, segments: pass.segments, probs: a.probs.p, out: a.att.p)
        let h1 = a.h1.p
        project(il, .o, a.att.p, T, h1, a.lora)
        Ops.add(h1, a.input.p, T * E)
        L.ffnNorm.withUnsafeBufferPointer { Ops.rmsNorm(h1, $0.baseAddress!, a.x2.p, rows: T, n: E, eps: c.eps) }
        let g = a.g.p, u = a.u.p
        project(il, .gate, a.x2.p, T, g, a.lora)
        project(il, .up, a.x2.p, T, u, a.lora)
        let act = Buffer(T * F)
        act.p.update(from: g, count: T * F)
        Ops.siluGate(act.p, u, T * F)
        project(il, .down, act.p, T, out, a.lora)
        Ops.add(out, h1, T * E)
    }

    func layerBackward(_ il: Int, _ a: LlamaActivations, _ pass: BackpropPass, dh: UnsafeMutablePointer<Float>) {
        let c = llama.config, L = llama.layers[il], T = pass.T
        let E = c.embedding, H = c.heads, D = c.headDim, F = c.feedForward
        let g = a.g.p, u = a.u.p
        // h2 = h1 + down(silu(g)·u).
        let act = Buffer(T * F), dAct = Buffer(T * F), du = Buffer(T * F)
        act.p.update(from: g, count: T * F)
        Ops.siluGate(act.p, u, T * F)
        projectBackward(il, .down, input: act.p, T, dy: dh, dx: dAct.p, accumulate: false, a.lora)
        OpsBackward.siluGate(g: g, u: u, da: dAct.p, du: du.p, T * F)
        let dx2 = Buffer(T * E)
        projectBackward(il, .gate, input: a.x2.p, T, dy: dAct.p, dx: dx2.p, accumulate: false, a.lora)
        projectBackward(il, .up, input: a.x2.p, T, dy: du.p, dx: dx2.p, accumulate: true, a.lora)
        L.ffnNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.h1.p, weight: $0.baseAddress!, dy: dx2.p, dx: dh, rows: T, n: E, eps: c.eps, accumulate: true)
        }
        // h1 = h0 + o(att).
        let dAtt = Buffer(T * H * D)
        projectBackward(il, .o, input: a.att.p, T, dy: dh, dx: dAtt.p, accumulate: false, a.lora)
        let dq = Buffer(T * H * D), dk = Buffer(T * c.kvHeads * D), dv = Buffer(T * c.kvHeads * D)
        attentionShape(il).backward(q: a.q2.p, k: a.k2.p, v: a.v.p, segments: pass.segments, probs: a.probs.p,
                                    dOut: dAtt.p, dq: dq.p, dk: dk.p, dv: dv.p)
        Ops.scale(dq.p, 1 / Float(D).squareRoot(), T * H * D)
        rope(dq.p, heads: H, pass, backward: true)
        rope(dk.p, heads: c.kvHeads, pass, backward: true)
        let dx1 = Buffer(T * E)
        projectBackward(il, .q, input: a.x1.p, T, dy: dq.p, dx: dx1.p, accumulate: false, a.lora)
        projectBackward(il, .k, input: a.x1.p, T, dy: dk.p, dx: dx1.p, accumulate: true, a.lora)
        projectBackward(il, .v, input: a.x1.p, T, dy: dv.p, dx: dx1.p, accumulate: true, a.lora)
        L.attnNorm.withUnsafeBufferPointer {
            OpsBackward.rmsNorm(x: a.input.p, weight: $0.baseAddress!, dy: dx1.p, dx: dh, rows: T, n: E, eps: c.eps, accumulate: true)
        }
    }
}
