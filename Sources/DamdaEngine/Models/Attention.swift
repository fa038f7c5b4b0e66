import DamdaCore
import Foundation

/// Causal grouped-query attention over the KV cache, in fp32 with OpenBLAS products.
/// `q`: [tokens × heads·headDim] already normed/rotated/scaled; the new tokens' keys and values are
/// already in the cache at positions `start ..< start + tokens`. Writes [tokens × heads·valueDim].
func attention(q: UnsafePointer<Float>, cache: KVCache, layer: Int, start: Int, tokens: Int,
               heads: Int, kvHeads: Int, headDim: Int, valueDim: Int, window: Int?, softcap: Float,
               out: UnsafeMutablePointer<Float>, threads: Int) {
    let end = start + tokens
    // Keys older than the window are masked for every query of this batch: skip them.
    let first = window.map { max(0, start - $0 + 1) } ?? 0
    let span = end - first
    let group = heads / kvHeads
    let kDim = kvHeads * headDim, vDim = kvHeads * valueDim
    let K = cache.keys[layer] + first * kDim
    let V = cache.values[layer] + first * vDim
    // Heads run in parallel (each with its own scores); a single decode token is not worth a wake-up.
    parallelRanges(heads, threads: tokens >= 16 ? threads : 1) { headRange in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: tokens * span)
        defer { scores.deallocate() }
        for h in headRange {
            let kv = h / group
            BLAS.serial(false, true, tokens, span, headDim, 1, q + h * headDim, heads * headDim, K + kv * headDim, kDim, 0, scores, span)
            for t in 0..<tokens {
                let pos = start + t
                let row = scores + t * span
                for j in 0..<span {
                    let kpos = first + j
                    if kpos > pos || (window.map { pos - kpos >= $0 } ?? false) {
                        row[j] = -.infinity
                    } else if softcap > 0 {
                        row[j] = tanhf(row[j] / softcap) * softcap
                    }
                }
                Ops.softmaxVector(row, span)
            }
            BLAS.serial(false, false, tokens, valueDim, span, 1, scores, span, V + kv * valueDim, vDim, 0, out + h * valueDim, heads * valueDim)
        }
    }
}
