import CIntrinsics
import DamdaCore

/// An fp32 weight matrix packed once, at load, into panels of 16 outputs: panel p holds outputs
/// 16p..<16p+16 as [input][16], so a product streams each panel once and reuses it across a tile
/// of six tokens kept in twelve AVX registers (llm.c's / BLIS's register-blocked micro-kernel).
///
/// Why not sgemm: OpenBLAS re-packs the whole weight matrix on every call. For a search query's
/// ~20 tokens through e5 that packing was a quarter of the time; packing once removes it.
public final class PanelMatrix: @unchecked Sendable {
    public static let width = 16
    /// Tokens per micro-tile: 6 × 2 accumulators + 2 weight vectors + 1 broadcast = 15 of 16 registers.
    static let tileTokens = 6
    /// Inputs per block: a 16 × 384 panel slice (24 KB) stays in L1 across a block of tokens.
    static let blockInputs = 384
    /// Tokens per block: 48 tokens × 384 inputs (72 KB) of activations stay in L2 across panels.
    static let blockTokens = 48

    public let rows: Int, columns: Int
    let panelCount: Int
    let panels: UnsafeMutablePointer<Float>

    /// Packs a row-major `rows × columns` matrix; outputs past `rows` in the last panel are zero.
    public init(rows: Int, columns: Int, rowMajor w: UnsafePointer<Float>) {
        self.rows = rows
        self.columns = columns
        panelCount = (rows + Self.width - 1) / Self.width
        let count = panelCount * Self.width * columns
        panels = .allocate(capacity: count)
        panels.initialize(repeating: 0, count: count)
        for r in 0..<rows {
            let p = r / Self.width, j = r % Self.width
            let dst = panels + p * columns * Self.width + j
            for k in 0..<columns { dst[k * Self.width] = w[r * columns + k] }
        }
    }

    /// Dequantizes `w` (any tensor type) and packs it.
    public convenience init(_ w: WeightMatrix) {
        let dense = UnsafeMutablePointer<Float>.allocate(capacity: w.rows * w.columns)
        defer { dense.deallocate() }
        w.dequantizeRows(0..<w.rows, into: dense)
        self.init(rows: w.rows, columns: w.columns, rowMajor: dense)
    }

    deinit { panels.deallocate() }

    /// y[t, r] = Σₖ x[t, k] · W[r, k] for `tokens` rows of x (row-major, `columns` wide) into
    /// y (row-major, `rows` wide). Threads split the panels; fp32 throughout.
    public func multiply(_ x: UnsafePointer<Float>, tokens: Int, _ y: UnsafeMutablePointer<Float>, threads: Int) {
        guard tokens > 0, rows > 0 else { return }
        let K = columns, N = rows
        // Few tokens are bound by streaming the weights, which two cores do faster than one.
        let parallel = tokens * N * K >= BLAS.parallelThreshold || N * K >= 1 << 16 ? threads : 1
        parallelRanges(panelCount, threads: parallel) { panelRange in
            // The last panel may be partly padding: its tiles go through a 6 × 16 scratch tile.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.tileTokens * Self.width) { edge in
                multiply(panels: panelRange, x, tokens: tokens, y, edge: edge.baseAddress!)
            }
        }
    }

    /// One thread's share: the panels in `panelRange`, blocked by inputs and tokens.
    private func multiply(panels panelRange: Range<Int>, _ x: UnsafePointer<Float>, tokens: Int, _ y: UnsafeMutablePointer<Float>,
                          edge: UnsafeMutablePointer<Float>) {
        let K = columns, N = rows, W = Self.width
        for k0 in stride(from: 0, to: K, by: Self.blockInputs) {
            let kn = min(Self.blockInputs, K - k0)
            for t0 in stride(from: 0, to: tokens, by: Self.blockTokens) {
                let tEnd = min(tokens, t0 + Self.blockTokens)
                for p in panelRange {
                    let w = UnsafePointer(panels + (p * K + k0) * W)
                    let valid = min(W, N - p * W)
                    // The first tile asks for the next panel's slice while it computes, so
                    // memory streams under arithmetic instead of stalling the next panel.
                    let ahead = p + 1 < panelRange.upperBound ? K * W : 0
                    forEachEvenTile(t0..<tEnd, maxSize: Self.tileTokens) { t, r in
                        let a = x + t * K + k0
                        let c = y + t * N + p * W
                        let prefetch = t == t0 ? ahead : 0
                        if valid == W {
                            Self.tile(r, a, K, w, kn, c, N, accumulate: k0 > 0, prefetch: prefetch)
                        } else {
                            if k0 > 0 { for i in 0..<r { for j in 0..<valid { edge[i * W + j] = c[i * N + j] } } }
                            Self.tile(r, a, K, w, kn, edge, W, accumulate: k0 > 0, prefetch: prefetch)
                            for i in 0..<r { for j in 0..<valid { c[i * N + j] = edge[i * W + j] } }
                        }
                    }
                }
            }
        }
    }

    /// One tile: `r` (1…6) tokens × 16 outputs over `kn` inputs, with `r` a constant after inlining.
    /// A nonzero `prefetch` (in floats) asks for the line that far past each weight line read.
    static func tile(_ r: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ w: UnsafePointer<Float>, _ kn: Int,
                     _ c: UnsafeMutablePointer<Float>, _ ldc: Int, accumulate: Bool, prefetch: Int) {
        switch r {
        case 6: micro(6, a, lda, w, kn, c, ldc, accumulate, prefetch)
        case 5: micro(5, a, lda, w, kn, c, ldc, accumulate, prefetch)
        case 4: micro(4, a, lda, w, kn, c, ldc, accumulate, prefetch)
        case 3: micro(3, a, lda, w, kn, c, ldc, accumulate, prefetch)
        case 2: micro(2, a, lda, w, kn, c, ldc, accumulate, prefetch)
        default: micro(1, a, lda, w, kn, c, ldc, accumulate, prefetch)
        }
    }

    @inline(__always)
    static func micro(_ R: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ w: UnsafePointer<Float>, _ kn: Int,
                      _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ accumulate: Bool, _ prefetch: Int) {
        var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8(), c20 = F8(), c21 = F8()
        var c30 = F8(), c31 = F8(), c40 = F8(), c41 = F8(), c50 = F8(), c51 = F8()
        if accumulate {
            c00 = loadF8(c); c01 = loadF8(c + 8)
            if R > 1 { c10 = loadF8(c + ldc); c11 = loadF8(c + ldc + 8) }
            if R > 2 { c20 = loadF8(c + 2 * ldc); c21 = loadF8(c + 2 * ldc + 8) }
            if R > 3 { c30 = loadF8(c + 3 * ldc); c31 = loadF8(c + 3 * ldc + 8) }
            if R > 4 { c40 = loadF8(c + 4 * ldc); c41 = loadF8(c + 4 * ldc + 8) }
            if R > 5 { c50 = loadF8(c + 5 * ldc); c51 = loadF8(c + 5 * ldc + 8) }
        }
        let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda
        var wp = w
        for k in 0..<kn {
            let w0 = loadF8(wp), w1 = loadF8(wp + 8)
            if prefetch != 0 { damda_prefetch(wp + prefetch) }
            wp += 16
            let b0 = F8(repeating: a0[k]); c00 = c00.addingProduct(b0, w0); c01 = c01.addingProduct(b0, w1)
            if R > 1 { let b = F8(repeating: a1[k]); c10 = c10.addingProduct(b, w0); c11 = c11.addingProduct(b, w1) }
            if R > 2 { let b = F8(repeating: a2[k]); c20 = c20.addingProduct(b, w0); c21 = c21.addingProduct(b, w1) }
            if R > 3 { let b = F8(repeating: a3[k]); c30 = c30.addingProduct(b, w0); c31 = c31.addingProduct(b, w1) }
            if R > 4 { let b = F8(repeating: a4[k]); c40 = c40.addingProduct(b, w0); c41 = c41.addingProduct(b, w1) }
            if R > 5 { let b = F8(repeating: a5[k]); c50 = c50.addingProduct(b, w0); c51 = c51.addingProduct(b, w1) }
        }
        storeF8(c00, c); storeF8(c01, c + 8)
        if R > 1 { storeF8(c10, c + ldc); storeF8(c11, c + ldc + 8) }
        if R > 2 { storeF8(c20, c + 2 * ldc); storeF8(c21, c + 2 * ldc + 8) }
        if R > 3 { storeF8(c30, c + 3 * ldc); storeF8(c31, c + 3 * ldc + 8) }
        if R > 4 { storeF8(c40, c + 4 * ldc); storeF8(c41, c + 4 * ldc + 8) }
        if R > 5 { storeF8(c50, c + 5 * ldc); storeF8(c51, c + 5 * ldc + 8) }
    }
}

/// Splits `range` (a block of tokens) into consecutive tiles of at most `maxSize`, as even as
/// possible: 20 tokens with tiles of up to 6 run as 5+5+5+5, not 6+6+6+2, because a tile of one
/// or two tokens waits on multiply latency as long as a tile of three.
@inline(__always)
func forEachEvenTile(_ range: Range<Int>, maxSize: Int, _ body: (_ start: Int, _ size: Int) -> Void) {
    var start = range.lowerBound
    while start < range.upperBound {
        let left = range.upperBound - start, tiles = (left + maxSize - 1) / maxSize
        let size = (left + tiles - 1) / tiles
        body(start, size)
        start += size
    }
}
