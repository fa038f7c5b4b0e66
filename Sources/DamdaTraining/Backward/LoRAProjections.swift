import DamdaCore
import DamdaEngine
import Foundation

/// The frozen projections with their LoRA adapters, forward and backward, plus the parallel
/// building blocks every architecture's layers use (GEMM, RMSNorm, elementwise work). The base
/// weights stay quantized in the GGUF and are dequantized one projection at a time (QLoRA).
final class LoRAProjections {
    let model: any AdaptableModel
    let adapter: LoRAAdapter
    let gradients: UnsafeMutablePointer<Float>
    var dropout: Float
    var threads: Int
    let eps: Float
    /// Seeds this pass's dropout masks (set per batch, so backward regenerates forward's masks).
    var passSeed: UInt64 = 0
    private var weightBuffer: UnsafeMutablePointer<Float>
    private var weightCapacity = 1

    init(model: any AdaptableModel, adapter: LoRAAdapter, dropout: Float, eps: Float, threads: Int) {
        self.model = model; self.adapter = adapter; self.dropout = dropout; self.eps = eps; self.threads = threads
        gradients = .allocate(capacity: max(adapter.count, 1))
        gradients.initialize(repeating: 0, count: max(adapter.count, 1))
        weightBuffer = .allocate(capacity: 1)
    }

    deinit { gradients.deallocate(); weightBuffer.deallocate() }

    /// y = x Wᵀ + scale · (drop(x) Aᵀ) Bᵀ, saving z = drop(x) Aᵀ.
    func project(_ il: Int, _ t: LoRATarget, _ x: UnsafePointer<Float>, _ T: Int, _ y: UnsafeMutablePointer<Float>, _ lora: LoRAIntermediates) {
        let w = model.matrix(layer: il, t)
        gemm(false, true, T, w.rows, w.columns, 1, x, w.columns, dequantized(w), w.columns, 0, y, w.rows)
        guard let s = adapter.slots[il][t] else { return }
        let r = adapter.rank
        let z = Buffer(uninitialized: T * r)
        lora.z[t] = z
        withDropped(x, count: T * s.input, layer: il, t) { xd in
            gemm(false, true, T, r, s.input, 1, xd, s.input, adapter.parameters + s.a, s.input, 0, z.p, r)
        }
        gemm(false, true, T, s.output, r, adapter.scale, z.p, r, adapter.parameters + s.b, r, 1, y, s.output)
    }

    /// dx (+)= dy W + mask ⊙ (scale · dy B) A; dB += scale · dyᵀ z; dA += (scale · dy B)ᵀ drop(x).
    func projectBackward(_ il: Int, _ t: LoRATarget, input x: UnsafePointer<Float>, _ T: Int, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>, accumulate: Bool, _ lora: LoRAIntermediates) {
        let w = model.matrix(layer: il, t)
        gemm(false, false, T, w.columns, w.rows, 1, dy, w.rows, dequantized(w), w.columns, accumulate ? 1 : 0, dx, w.columns)
        guard let s = adapter.slots[il][t], let z = lora.z[t] else { return }
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
}
