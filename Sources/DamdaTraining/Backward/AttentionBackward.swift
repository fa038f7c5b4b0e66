import DamdaCore
import DamdaEngine
import Foundation

/// Causal grouped-query attention over packed sequences, forward (keeping the probabilities) and
/// backward. Each segment attends only within itself; `window` masks keys `window` or more
/// positions back (Gemma 3's sliding layers). Q is already normed, rotated and scaled.
public struct TrainingAttention {
    public var heads: Int, kvHeads: Int, headDim: Int, valueDim: Int
    public var window: Int?

    public init(heads: Int, kvHeads: Int, headDim: Int, valueDim: Int, window: Int?) {
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.valueDim = valueDim; self.window = window
    }

    /// Floats of saved probabilities for these segments.
    public func probabilityCount(_ segments: [Range<Int>]) -> Int { heads * segments.reduce(0) { $0 + $1.count * $1.count } }

    /// out[T × heads·valueDim]; probs receives each segment's heads × n × n softmax rows.
    public func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, segments: [Range<Int>],
                        probs: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let qDim = heads * headDim, kDim = kvHeads * headDim, vDim = kvHeads * valueDim, oDim = heads * valueDim
        let group = heads / kvHeads
        var pOffset = 0
        for seg in segments {
            let n = seg.count, s0 = seg.lowerBound
            for h in 0..<heads {
                let kv = h / group
                let P = probs + pOffset
                pOffset += n * n
                gemm(false, true, n, n, headDim, 1, q + s0 * qDim + h * headDim, qDim, k + s0 * kDim + kv * headDim, kDim, 0, P, n)
                for i in 0..<n {
                    let row = P + i * n
                    for j in 0..<n where j > i || (window.map { i - j >= $0 } ?? false) { row[j] = -.infinity }
                    Ops.softmaxVector(row, n)
                }
                gemm(false, false, n, valueDim, n, 1, P, n, v + s0 * vDim + kv * valueDim, vDim, 0, out + s0 * oDim + h * valueDim, oDim)
            }
        }
    }

    /// From dOut, writes dq and accumulates into dk, dv (which the caller zeroes).
    public func backward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, segments: [Range<Int>],
                         probs: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>) {
        let qDim = heads * headDim, kDim = kvHeads * headDim, vDim = kvHeads * valueDim, oDim = heads * valueDim
        let group = heads / kvHeads
        let longest = segments.map(\.count).max() ?? 0
        let dP = UnsafeMutablePointer<Float>.allocate(capacity: max(longest * longest, 1))
        defer { dP.deallocate() }
        var pOffset = 0
        for seg in segments {
            let n = seg.count, s0 = seg.lowerBound
            for h in 0..<heads {
                let kv = h / group
                let P = probs + pOffset
                pOffset += n * n
                let dO = dOut + s0 * oDim + h * valueDim
                // dP = dO Vᵀ; dV += Pᵀ dO
                gemm(false, true, n, n, valueDim, 1, dO, oDim, v + s0 * vDim + kv * valueDim, vDim, 0, dP, n)
                gemm(true, false, n, valueDim, n, 1, P, n, dO, oDim, 1, dv + s0 * vDim + kv * valueDim, vDim)
                // Row i sees keys 0...i; later keys are masked, so their dS is zero.
                for i in 0..<n {
                    OpsBackward.softmax(p: P + i * n, dp: dP + i * n, i + 1)
                    if i + 1 < n { (dP + i * n + i + 1).update(repeating: 0, count: n - i - 1) }
                }
                // dQ = dS K; dK += dSᵀ Q
                gemm(false, false, n, headDim, n, 1, dP, n, k + s0 * kDim + kv * headDim, kDim, 0, dq + s0 * qDim + h * headDim, qDim)
                gemm(true, false, n, headDim, n, 1, dP, n, q + s0 * qDim + h * headDim, qDim, 1, dk + s0 * kDim + kv * headDim, kDim)
            }
        }
    }
}
