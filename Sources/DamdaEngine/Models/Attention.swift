import DamdaCore
import Foundation

/// Causal grouped-query attention over the KV cache, in fp32 with `BLAS` products.
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
    // Queries go in blocks of `attentionQueryBlock` rows, each against only the keys its rows can see
    // (up to its last query, from its first query's window): a 512-token prompt computes about
    // 56% of the square of scores a whole-prompt product would, and masks and exponentiates no
    // entry that is zero anyway. (head, block) pairs run in parallel, head-major, so each thread
    // takes whole heads while there are at least as many heads as threads.
    let blocks = (tokens + attentionQueryBlock - 1) / attentionQueryBlock
    parallelRanges(heads * blocks, threads: tokens >= 16 ? threads : 1) { units in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: min(attentionQueryBlock, tokens) * span)
        defer { scores.deallocate() }
        for unit in units {
            let h = unit / blocks, t0 = (unit % blocks) * attentionQueryBlock, t1 = min(tokens, t0 + attentionQueryBlock)
            let kv = h / group
            // Keys [blockFirst, blockEnd) relative to the cache; rows see a subrange of them.
            let blockFirst = window.map { max(first, start + t0 - $0 + 1) } ?? first
            let blockEnd = start + t1, blockSpan = blockEnd - blockFirst
            let rows = t1 - t0
            BLAS.serial(false, true, rows, blockSpan, headDim, 1, q + t0 * heads * headDim + h * headDim, heads * headDim,
                        K + (blockFirst - first) * kDim + kv * headDim, kDim, 0, scores, blockSpan)
            for i in 0..<rows {
                let pos = start + t0 + i
                let lo = window.map { max(0, pos - $0 + 1) } ?? 0
                let row = scores + i * blockSpan
                let visible = row + (lo - blockFirst), count = pos - lo + 1
                if softcap > 0 { for j in 0..<count { visible[j] = tanhf(visible[j] / softcap) * softcap } }
                Ops.softmaxVector(visible, count)
                row.update(repeating: 0, count: lo - blockFirst)
                (visible + count).update(repeating: 0, count: blockEnd - pos - 1)
            }
            BLAS.serial(false, false, rows, valueDim, blockSpan, 1, scores, blockSpan,
                        V + (blockFirst - first) * vDim + kv * valueDim, vDim, 0,
                        out + t0 * heads * valueDim + h * valueDim, heads * valueDim)
        }
    }
}

/// Query rows per block of prefill attention: small enough that the blocks on the diagonal skip
/// most masked keys, large enough for the matrix products to run near their peak.
public let attentionQueryBlock = 64

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
