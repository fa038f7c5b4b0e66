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
    if tokens == 1 {
        decodeAttention(q: q, keys: K, values: V, span: span, heads: heads, kvHeads: kvHeads, headDim: headDim,
                        valueDim: valueDim, softcap: softcap, out: out)
        return
    }
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

/// One query token: every position in `span` is visible (older ones were cut by `first`), so
/// there is nothing to mask. Direct loops instead of OpenBLAS, whose packing copies cost more than
/// these 1-row products (7% of single-thread decode); each key and value row is read once for all
/// the query heads that share it.
private func decodeAttention(q: UnsafePointer<Float>, keys K: UnsafePointer<Float>, values V: UnsafePointer<Float>,
                             span: Int, heads: Int, kvHeads: Int, headDim: Int, valueDim: Int, softcap: Float,
                             out: UnsafeMutablePointer<Float>) {
    let group = heads / kvHeads
    let kDim = kvHeads * headDim, vDim = kvHeads * valueDim
    let scores = UnsafeMutablePointer<Float>.allocate(capacity: group * span)
    defer { scores.deallocate() }
    for kv in 0..<kvHeads {
        let firstHead = kv * group
        for j in 0..<span {
            let key = K + j * kDim + kv * headDim
            for g in 0..<group {
                var s = dotF32(q + (firstHead + g) * headDim, key, headDim)
                if softcap > 0 { s = tanhf(s / softcap) * softcap }
                scores[g * span + j] = s
            }
        }
        // Normalize once at the end: Σ p·v / Σ p.
        var inverse = [Float](repeating: 0, count: group)
        for g in 0..<group { inverse[g] = 1 / Ops.softmaxNumerators(scores + g * span, span) }
        for g in 0..<group { (out + (firstHead + g) * valueDim).initialize(repeating: 0, count: valueDim) }
        for j in 0..<span {
            let v = V + j * vDim + kv * valueDim
            for g in 0..<group {
                let o = out + (firstHead + g) * valueDim, p = scores[g * span + j]
                let pv = F8(repeating: p)
                var d = 0
                while d + 8 <= valueDim { storeF8(loadF8(o + d).addingProduct(pv, loadF8(v + d)), o + d); d += 8 }
                while d < valueDim { o[d] += p * v[d]; d += 1 }
            }
        }
        for g in 0..<group {
            let o = out + (firstHead + g) * valueDim
            for d in 0..<valueDim { o[d] *= inverse[g] }
        }
    }
}
