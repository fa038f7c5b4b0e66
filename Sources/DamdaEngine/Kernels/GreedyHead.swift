#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif
import CIntrinsics
import DamdaCore
import DamdaModelIO
import Foundation

/// Greedy decoding's next token, argmaxᵢ (W x)ᵢ over a Q8_0 output matrix, found without computing
/// every logit in fp32, yet always the token the full fp32 product would pick.
///
/// A screening pass multiplies W by x rounded to int8 per 32-value block (llama.cpp's arithmetic,
/// about half the work of the fp32 kernel). Rounding moves each screened logit by wᵢ·e, where
/// e = x − x̂ is known exactly, so |wᵢ·e| ≤ ‖wᵢ‖‖e‖ (Cauchy–Schwarz) is a certified bound Bᵢ.
/// With L = maxⱼ (screenedⱼ − Bⱼ), a lower bound of the best true logit, only rows with
/// screenedᵢ + Bᵢ ≥ L can win. Those few (2 to 121 of 262,144 on Gemma 3 270M's prompts: ‖e‖ is
/// about 1% of ‖x‖, so Bᵢ is about 1.7 logits) are recomputed with the fp32 kernel the full
/// product uses, so the winner and its tie-breaking are bit for bit the full product's.
/// Bᵢ also carries a margin of 10⁻⁴‖wᵢ‖‖x‖ for fp32 rounding in both passes, far above it.
///
/// Decode batches of two vectors or more on AVX-512 VNNI take a 16-bit screen instead
/// (`damda_screen16_q8_avx512vnni`): each x rounded to int16 with one scale (x̂ = d·a), each row's
/// weights to ŵ = q·f_b·max|d|/255 with f_b = round(255·d_b/max|d|), so ŵ·x̂ is one exact int32
/// sum per row and vector (one VPDPWSSD per 32 weights, no per-block conversion or scaling). Its
/// bound adds the weights' part: |w·x − ŵ·x̂| ≤ ‖w‖‖x − x̂‖ + ‖w − ŵ‖‖x̂‖, both factors known
/// exactly (‖w − ŵ‖ per row from the scales, computed once). It is the tighter one: over the 105
/// positions of a Korean RAG prompt (the reference's hidden states, the same arithmetic in numpy),
/// median Bᵢ 0.72 logits against the int8 screen's 1.61, sampling's top-1,024 candidates 1,745
/// rows against 3,156, greedy's 2 against 9.
///
/// The matrix's bytes are still read once per token: this saves arithmetic, which is what one
/// core runs short of; two cores are held back by memory and gain less. Sampling's candidates
/// come from the same screen (`topLogits`, in GreedyHead+TopLogits.swift).
public final class GreedyHead: @unchecked Sendable {
    public let matrix: WeightMatrix
    private let lock = NSLock()
    /// ‖wᵢ‖₂ per row, rounded up; computed on first use (a pass over the matrix).
    private var rowNorms: [Float] = []
    /// The 16-bit screen's weights ŵ (`damda_screen16_row_factors`), formed on the first batch:
    /// ‖wᵢ − ŵᵢ‖₂ per row (rounded up), and the factors the screen multiplies, so that it reads
    /// them instead of forming them from the scales on every step (`Screen16Weights`).
    private var screen16: Screen16Weights?
    /// Rows the last call recomputed in fp32 (for benchmarks and tests).
    public var lastCandidates = 0

    /// Only Q8_0 matrices whose rows are whole 32-value blocks, on x86_64 (AVX2).
    public init?(_ w: WeightMatrix) {
        #if arch(x86_64)
        guard w.type == .q8_0, w.columns % 32 == 0, w.rows > 0 else { return nil }
        matrix = w
        #else
        return nil
        #endif
    }

    func norms(threads: Int) -> [Float] {
        perRow(\.rowNorms, threads: threads) { w, range, set in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: w.columns)
            defer { row.deallocate() }
            for r in range {
                w.dequantizeRow(r, into: row)
                var s = 0.0
                for j in 0..<w.columns { s += Double(row[j]) * Double(row[j]) }
                set(r, s.squareRoot())
            }
        }
    }

    /// A per-row value kept in `storage`, computed on first use: `fill` runs once per range of
    /// rows, in parallel, and hands each row's value (in double) to `set`, which rounds it up
    /// (a bound must never be too small).
    private func perRow(_ storage: ReferenceWritableKeyPath<GreedyHead, [Float]>, threads: Int,
                        _ fill: (WeightMatrix, Range<Int>, (Int, Double) -> Void) -> Void) -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        if self[keyPath: storage].isEmpty {
            let w = matrix
            var values = [Float](repeating: 0, count: w.rows)
            values.withUnsafeMutableBufferPointer { out in
                let o = out.baseAddress!
                parallelRanges(w.rows, threads: threads, granule: 256) { range in
                    fill(w, range) { r, value in o[r] = Self.roundedUp(value) }
                }
            }
            self[keyPath: storage] = values
        }
        return self[keyPath: storage]
    }

    /// A bound computed in double, as a float never below it.
    private static func roundedUp(_ value: Double) -> Float { Float(value * (1 + 1e-6)).nextUp }

    /// The 16-bit screen's weights for the whole matrix, formed once (under the lock, in parallel).
    /// How far each row's ŵ (block b's q·f_b, times max|d|/255) lies from its true weights (q·d_b):
    /// ‖w − ŵ‖ = √(Σ_b (d_b − f_b·max|d|/255)²·Σ q²), in double, rounded up.
    func screen16Weights(threads: Int) -> Screen16Weights {
        lock.lock()
        defer { lock.unlock() }
        if let screen16 { return screen16 }
        let w = matrix
        let rows = w.rows, blocks = w.columns / 32
        var errors = [Float](repeating: 0, count: rows)
        let rowScales = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: rows * blocks)
        let negative = UnsafeMutablePointer<Bool>.allocate(capacity: rows)
        negative.initialize(repeating: false, count: rows)
        defer { negative.deallocate() }
        errors.withUnsafeMutableBufferPointer { out in
            let errorOut = out.baseAddress!
            parallelRanges(rows, threads: threads, granule: 256) { range in
                let factors = UnsafeMutablePointer<Int16>.allocate(capacity: blocks)
                defer { factors.deallocate() }
                for r in range {
                    let row = w.row(r)
                    let dmax = damda_screen16_row_factors(row.assumingMemoryBound(to: UInt8.self), Int32(blocks), factors)
                    var s = 0.0
                    for b in 0..<blocks {
                        let p = row + b * 34
                        var q2 = 0.0
                        for j in 0..<32 { let q = Double(p.load(fromByteOffset: 2 + j, as: Int8.self)); q2 += q * q }
                        let e = Double(f16(p)) - Double(factors[b]) * Double(dmax) / 255
                        s += e * e * q2
                        if factors[b] < 0 { negative[r] = true }
                        table[r * blocks + b] = UInt8(truncatingIfNeeded: factors[b])
                    }
                    errorOut[r] = Self.roundedUp(s.squareRoot())
                    rowScales[r] = dmax
                }
            }
        }
        // A negative scale's factor would not fit a byte: such a matrix keeps the per-row path.
        let usable = !UnsafeBufferPointer(start: negative, count: rows).contains(true)
        if !usable { table.deallocate(); rowScales.deallocate() }
        let made = Screen16Weights(errors: errors, rowScales: usable ? rowScales : nil, factors: usable ? table : nil)
        screen16 = made
        return made
    }

    /// The index of the largest (W x)ᵢ as the fp32 product computes it, the lowest index among ties.
    public func argmax(_ x: UnsafePointer<Float>, threads: Int) -> Int {
        #if arch(x86_64)
        let w = matrix
        let n = w.columns, blocks = n / 32, rows = w.rows
        let norms = norms(threads: threads)
        // The int8 copies of x that the screen multiplies.
        let values = UnsafeMutablePointer<Int8>.allocate(capacity: n)
        let scales = UnsafeMutablePointer<Float>.allocate(capacity: blocks)
        defer { values.deallocate(); scales.deallocate() }
        let reach = Self.quantize(x, values, scales, blocks: blocks)

        // Each part keeps the rows that could still win against its own running lower bound
        // (a superset of the final candidates, usually a few dozen), so nothing is rescanned.
        let kept = UnsafeMutablePointer<(row: Int32, upper: Float)>.allocate(capacity: rows)
        defer { kept.deallocate() }
        let parts = max(1, min(threads, rows / 1024))
        var lowerBounds = [Float](repeating: -.infinity, count: parts), keptCounts = [Int](repeating: 0, count: parts)
        norms.withUnsafeBufferPointer { normBuffer in
            let norm = normBuffer.baseAddress!
            lowerBounds.withUnsafeMutableBufferPointer { lows in
                keptCounts.withUnsafeMutableBufferPointer { counts in
                    let lowOut = lows.baseAddress!, countOut = counts.baseAddress!
                    parallelFor(parts) { part in
                        let range = (rows * part / parts)..<(rows * (part + 1) / parts)
                        let mine = kept + range.lowerBound
                        var low = -Float.infinity, count = 0
                        var prefetch = RowPrefetcher(from: w.row(range.lowerBound), to: w.row(range.upperBound))
                        for r in range {
                            prefetch.ahead(ofRowEnding: w.row(r + 1))
                            let s = Self.screenedDot(w.row(r), values, scales, blocks: blocks)
                            let bound = norm[r] * reach
                            low = max(low, s - bound)
                            if s + bound >= low { mine[count] = (Int32(r), s + bound); count += 1 }
                        }
                        lowOut[part] = low
                        countOut[part] = count
                    }
                }
            }
        }
        let floor = lowerBounds.max()!
        // Candidates, in row order, recomputed with the full product's own kernel.
        let dot = w.kernels.dot
        var best = -Float.infinity, at = -1, candidates = 0
        for part in 0..<parts {
            let mine = kept + rows * part / parts
            for k in 0..<keptCounts[part] where mine[k].upper >= floor {
                let r = Int(mine[k].row)
                candidates += 1
                let v = dot(w.row(r), x, n)
                if v > best || at < 0 { best = v; at = r }
            }
        }
        lastCandidates = candidates
        return max(at, 0)
        #else
        preconditionFailure("GreedyHead needs x86_64")
        #endif
    }

    /// `argmax` for `count` vectors [count × columns] (one per sequence of a decode batch): one
    /// screening pass reads each row of W once for all of them. Vector b's screen, bound and
    /// candidates are exactly those a lone call computes, so its answer is the lone call's.
    public func argmax(batch xs: UnsafePointer<Float>, count: Int, threads: Int) -> [Int] {
        #if arch(x86_64)
        guard count > 1 else { return count == 1 ? [argmax(xs, threads: threads)] : [] }
        let w = matrix
        let n = w.columns, blocks = n / 32, rows = w.rows
        let norms = norms(threads: threads)
        if screen == .avx512VNNI && count >= Self.screen16MinimumBatch {
            var picks: [Int] = []
            var v = 0
            while v < count {
                let m = min(8, count - v)
                picks += screen16Argmax(xs + v * n, count: m, norms: norms, threads: threads)
                v += m
            }
            return picks
        }
        // The int8 copies of x that the screen multiplies.
        let values = UnsafeMutablePointer<Int8>.allocate(capacity: count * n)
        let scales = UnsafeMutablePointer<Float>.allocate(capacity: count * blocks)
        defer { values.deallocate(); scales.deallocate() }
        let reaches = (0..<count).map { v in Self.quantize(xs + v * n, values + v * n, scales + v * blocks, blocks: blocks) }

        // Each part keeps, per vector, the rows that could still win against that vector's running
        // lower bound (a superset of its final candidates, usually a few dozen), so nothing is rescanned.
        let kept = UnsafeMutablePointer<damda_kept_row>.allocate(capacity: rows * count)
        defer { kept.deallocate() }
        let parts = max(1, min(threads, rows / 1024))
        var lowerBounds = [Float](repeating: -.infinity, count: parts * count), keptCounts = [Int](repeating: 0, count: parts * count)
        norms.withUnsafeBufferPointer { normBuffer in
            reaches.withUnsafeBufferPointer { reachBuffer in
                lowerBounds.withUnsafeMutableBufferPointer { lows in
                    keptCounts.withUnsafeMutableBufferPointer { counts in
                        let norm = normBuffer.baseAddress!, reach = reachBuffer.baseAddress!
                        let lowOut = lows.baseAddress!, countOut = counts.baseAddress!
                        parallelFor(parts) { part in
                            let range = (rows * part / parts)..<(rows * (part + 1) / parts)
                            // Vector v's kept rows of this part start at (v · rows + range.lowerBound).
                            let low = lowOut + part * count, kc = countOut + part * count
                            var prefetch = RowPrefetcher(from: w.row(range.lowerBound), to: w.row(range.upperBound))
                            for r in range {
                                prefetch.ahead(ofRowEnding: w.row(r + 1))
                                let row = w.row(r)
                                @inline(__always) func keep(_ v: Int, _ s: Float) {
                                    let bound = norm[r] * reach[v]
                                    low[v] = max(low[v], s - bound)
                                    if s + bound >= low[v] {
                                        kept[v * rows + range.lowerBound + kc[v]] = damda_kept_row(row: Int32(r), upper: s + bound)
                                        kc[v] += 1
                                    }
                                }
                                Self.screenRow(row, values, scales, count: count, blocks: blocks, keep)
                            }
                        }
                    }
                }
            }
        }
        let picks = lowerBounds.withUnsafeBufferPointer { lows in
            keptCounts.withUnsafeBufferPointer { counts in
                recomputeCandidates(xs, count: count, parts: parts, kept: kept, keptCounts: counts.baseAddress!, lowerBounds: lows.baseAddress!)
            }
        }
        return picks
        #else
        preconditionFailure("GreedyHead needs x86_64")
        #endif
    }

    /// The instructions the screen runs on. Every screen's bound is certified, so the picks do not
    /// depend on it.
    public enum Screen: Sendable {
        case avx2
        /// The AVX2 int8 screen for a lone vector, the 16-bit screen for batches
        /// (`damda_screen16_q8_avx512vnni`).
        case avx512VNNI
    }

    /// The best screen this processor runs; `DAMDA_AVX512=0` keeps the AVX2 one, for comparing both.
    public static let bestScreen: Screen = {
        #if arch(x86_64)
        ProcessInfo.processInfo.environment["DAMDA_AVX512"] != "0" && damda_has_avx512vnni() != 0 ? .avx512VNNI : .avx2
        #else
        .avx2
        #endif
    }()

    /// The smallest batch the 16-bit screen takes (with `.avx512VNNI`). Measured on an Intel Xeon
    /// (Emerald Rapids), 2 threads, `damda bench generate --batch 1,2,4`: greedy batches of 2 and 4
    /// ran 119–128 and 184–189 tokens/s through it against 53–57 and 106–127 through the int8
    /// screen; a lone vector gains nothing (its step waits on memory) and keeps `argmax(_:threads:)`.
    static let screen16MinimumBatch = 2
    /// The screen this head runs (tests set it to check each one the machine has).
    public var screen = GreedyHead.bestScreen

    /// The 16-bit screen for up to eight vectors on AVX-512 VNNI (`damda_screen16_q8_avx512vnni`),
    /// then each vector's candidates recomputed in fp32 as `argmax` does: the same picks, since
    /// every row that can win passes either screen.
    private func screen16Argmax(_ xs: UnsafePointer<Float>, count: Int, norms: [Float], threads: Int) -> [Int] {
        let w = matrix
        let n = w.columns, rows = w.rows
        let weights = screen16Weights(threads: threads)
        let errors = weights.errors
        let x = Screen16Vectors(xs, count: count, columns: n)
        defer { x.values.deallocate() }
        let kept = UnsafeMutablePointer<damda_kept_row>.allocate(capacity: rows * count)
        defer { kept.deallocate() }
        let parts = max(1, min(threads, rows / 1024))
        let lows = UnsafeMutablePointer<Float>.allocate(capacity: parts * count)
        let keptCounts = UnsafeMutablePointer<Int>.allocate(capacity: parts * count)
        defer { lows.deallocate(); keptCounts.deallocate() }
        lows.initialize(repeating: -.infinity, count: parts * count)
        keptCounts.initialize(repeating: 0, count: parts * count)
        let base = w.row(0).assumingMemoryBound(to: UInt8.self)
        let rowBytes = w.rowBytes
        norms.withUnsafeBufferPointer { norm in
            errors.withUnsafeBufferPointer { error in
                parallelFor(parts) { part in
                    let lo = rows * part / parts, hi = rows * (part + 1) / parts
                    damda_screen16_q8_avx512vnni(base, rowBytes, Int32(n / 32), lo, hi, weights.factors, weights.rowScales, x.values, x.scales, Int32(count),
                                                 norm.baseAddress!, error.baseAddress!, x.reaches, x.norms,
                                                 lows + part * count, kept + lo, rows, keptCounts + part * count)
                }
            }
        }
        return recomputeCandidates(xs, count: count, parts: parts, kept: kept, keptCounts: keptCounts, lowerBounds: lows)
    }

    /// The screen's survivors, in row order, recomputed with the full product's own kernel: per
    /// vector v, the rows kept by any part (part p's at kept + v·rows + rows·p/parts) whose upper
    /// bound reaches the best lower bound over all parts; the largest, the lowest index among ties.
    private func recomputeCandidates(_ xs: UnsafePointer<Float>, count: Int, parts: Int, kept: UnsafePointer<damda_kept_row>,
                                     keptCounts: UnsafePointer<Int>, lowerBounds: UnsafePointer<Float>) -> [Int] {
        let w = matrix
        let n = w.columns, rows = w.rows
        let dot = w.kernels.dot
        var picks = [Int](repeating: 0, count: count)
        var candidates = 0
        for v in 0..<count {
            let floor = (0..<parts).map { lowerBounds[$0 * count + v] }.max()!
            var best = -Float.infinity, at = -1
            for part in 0..<parts {
                let mine = kept + v * rows + rows * part / parts
                for k in 0..<keptCounts[part * count + v] where mine[k].upper >= floor {
                    let r = Int(mine[k].row)
                    candidates += 1
                    let value = dot(w.row(r), xs + v * n, n)
                    if value > best || at < 0 { best = value; at = r }
                }
            }
            picks[v] = max(at, 0)
        }
        lastCandidates = candidates
        return picks
    }

    /// Rounds x to int8 per 32-value block (x̂ = d·a) into `values` / `scales` and returns the
    /// bound's factor for it: ‖x − x̂‖ (in double) plus the fp32 rounding margin 10⁻⁴‖x‖, rounded up.
    static func quantize(_ x: UnsafePointer<Float>, _ values: UnsafeMutablePointer<Int8>, _ scales: UnsafeMutablePointer<Float>,
                         blocks: Int) -> Float {
        var errorSquared = 0.0, normSquared = 0.0
        for b in 0..<blocks {
            var sum: Int32 = 0
            Q8Activations.quantizeBlock(x + b * 32, values + b * 32, &scales[b], &sum)
            for j in 0..<32 {
                let v = Double(x[b * 32 + j])
                let e = v - Double(scales[b]) * Double(values[b * 32 + j])
                errorSquared += e * e
                normSquared += v * v
            }
        }
        return Float((errorSquared.squareRoot() + 1e-4 * normSquared.squareRoot()) * (1 + 1e-6)).nextUp
    }

    #if arch(x86_64)
    /// One row's screened products with `count` quantized vectors (`values` [count × blocks·32],
    /// `scales` [count × blocks]), four at a time through `screenedDot4`, each handed to `body(v, s)`.
    @inline(__always)
    static func screenRow(_ row: UnsafeRawPointer, _ values: UnsafePointer<Int8>, _ scales: UnsafePointer<Float>, count: Int, blocks: Int,
                          _ body: (Int, Float) -> Void) {
        let n = blocks * 32
        var v = 0
        while v + 4 <= count {
            let s = screenedDot4(row, values + v * n, stride: n, scales + v * blocks, blocks: blocks)
            body(v, s[0]); body(v + 1, s[1]); body(v + 2, s[2]); body(v + 3, s[3])
            v += 4
        }
        while v < count {
            body(v, screenedDot(row, values + v * n, scales + v * blocks, blocks: blocks))
            v += 1
        }
    }

    /// Σ over blocks of d_w·d_x·Σ q·a: int8 × int8 products summed exactly in 32-bit lanes, then
    /// one fp32 multiply-add per block (ggml's Q8_0 × Q8_0 dot).
    @inline(__always)
    static func screenedDot(_ row: UnsafeRawPointer, _ a: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, blocks: Int) -> Float {
        let ones = _mm256_set1_epi16(1)
        var acc0 = _mm256_setzero_ps(), acc1 = acc0
        var b = 0
        @inline(__always) func block(_ b: Int, _ acc: __m256) -> __m256 {
            let p = row + b * 34
            let q = p.loadUnaligned(fromByteOffset: 2, as: __m256i.self)
            let x = UnsafeRawPointer(a + b * 32).loadUnaligned(as: __m256i.self)
            // |q| (as unsigned) × (x with q's sign): vpmaddubsw's unsigned × signed form.
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q))
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones))
            return _mm256_fmadd_ps(sums, _mm256_set1_ps(f16(p) * d[b]), acc)
        }
        while b + 2 <= blocks {
            acc0 = block(b, acc0)
            acc1 = block(b + 1, acc1)
            b += 2
        }
        if b < blocks { acc0 = block(b, acc0) }
        return unsafeBitCast(_mm256_add_ps(acc0, acc1), to: F8.self).sum()
    }

    /// `screenedDot` for four quantized vectors (a + j·stride, scales d + j·blocks): each weight
    /// block is loaded, made absolute and its scale read once for all four; each vector's sum
    /// takes `screenedDot`'s operations in its order, so each result is that call's.
    @inline(__always)
    static func screenedDot4(_ row: UnsafeRawPointer, _ a: UnsafePointer<Int8>, stride: Int, _ d: UnsafePointer<Float>,
                             blocks: Int) -> SIMD4<Float> {
        let ones = _mm256_set1_epi16(1)
        let z = _mm256_setzero_ps()
        var acc = (z, z, z, z), alt = (z, z, z, z)
        @inline(__always) func term(_ q: __m256i, _ absolute: __m256i, _ b: Int, _ j: Int, _ scale: Float, _ into: __m256) -> __m256 {
            let x = UnsafeRawPointer(a + j * stride + b * 32).loadUnaligned(as: __m256i.self)
            let pairs = _mm256_maddubs_epi16(absolute, _mm256_sign_epi8(x, q))
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones))
            return _mm256_fmadd_ps(sums, _mm256_set1_ps(scale * d[j * blocks + b]), into)
        }
        @inline(__always) func block(_ b: Int, _ into: inout (__m256, __m256, __m256, __m256)) {
            let p = row + b * 34
            let q = p.loadUnaligned(fromByteOffset: 2, as: __m256i.self)
            let absolute = _mm256_sign_epi8(q, q)
            let scale = f16(p)
            into.0 = term(q, absolute, b, 0, scale, into.0)
            into.1 = term(q, absolute, b, 1, scale, into.1)
            into.2 = term(q, absolute, b, 2, scale, into.2)
            into.3 = term(q, absolute, b, 3, scale, into.3)
        }
        var b = 0
        while b + 2 <= blocks {
            block(b, &acc)
            block(b + 1, &alt)
            b += 2
        }
        if b < blocks { block(b, &acc) }
        @inline(__always) func total(_ x: __m256, _ y: __m256) -> Float { unsafeBitCast(_mm256_add_ps(x, y), to: F8.self).sum() }
        return SIMD4(total(acc.0, alt.0), total(acc.1, alt.1), total(acc.2, alt.2), total(acc.3, alt.3))
    }
    #endif
}

/// Up to eight vectors as the 16-bit screen takes them: each rounded to int16 with one scale,
/// x̂ = d·a, |a| ≤ X where X keeps every int32 lane of the screen exact (2·blocks products of at
/// most 32,640·X each below 2³¹), with the bound's factors per vector: `reaches` ‖x − x̂‖ plus the
/// fp32 rounding margin 10⁻⁴‖x‖, and `norms` ‖x̂‖, each in double, rounded up. A row's screened
/// logit ŵ·x̂ then lies within ‖w‖·reach + ‖w − ŵ‖·‖x̂‖ of w·x. The caller releases `values`.
struct Screen16Vectors {
    let values: UnsafeMutablePointer<Int16>
    var scales = [Float](repeating: 0, count: 8), reaches = [Float](repeating: 0, count: 8), norms = [Float](repeating: 0, count: 8)

    init(_ xs: UnsafePointer<Float>, count: Int, columns n: Int) {
        precondition((1...8).contains(count), "the 16-bit screen takes one to eight vectors")
        values = .allocate(capacity: count * n)
        let limit = Float(min(32767, Int(Int32.max) / (2 * (n / 32) * 32640)))
        for v in 0..<count {
            let x = xs + v * n, a = values + v * n
            var largest: Float = 0
            for j in 0..<n { largest = max(largest, abs(x[j])) }
            let d = largest > 0 ? largest / limit : 1
            var errorSquared = 0.0, normSquared = 0.0, roundedSquared = 0.0
            for j in 0..<n {
                let q = min(max((x[j] / d).rounded(), -limit), limit)
                a[j] = q.isNaN ? 0 : Int16(q)  // a NaN activation must not trap here (its bound is NaN: no row passes)
                let value = Double(x[j]), rounded = Double(d) * Double(q)
                errorSquared += (value - rounded) * (value - rounded)
                normSquared += value * value
                roundedSquared += rounded * rounded
            }
            scales[v] = d
            reaches[v] = Float((errorSquared.squareRoot() + 1e-4 * normSquared.squareRoot()) * (1 + 1e-6)).nextUp
            norms[v] = Float(roundedSquared.squareRoot() * (1 + 1e-6)).nextUp
        }
    }
}

/// The 16-bit screen's weights for a Q8_0 matrix, formed once: per row, ‖w − ŵ‖ (the bound's
/// second factor) and max|d|; per block, f_b = round(255·d_b / max|d|) in one byte. The screen
/// used to form f_b and max|d| from the row's scales on every step (a gather and conversions per
/// row, 7% of a batch-8 sampling step in `damda serve`); reading them costs 21 bytes a row beside
/// the row's 680. Gemma 3 270M's output matrix: 6.3 MB, made on the first decode batch.
final class Screen16Weights: @unchecked Sendable {
    /// ‖w − ŵ‖ per row, rounded up.
    let errors: [Float]
    /// max|d| per row, and f_b (rows × blocks); both nil where a block's scale is negative (its
    /// factor would not fit a byte; Q8_0 quantizers write max|x|/127): the screen then forms them
    /// per row from the scales, as before.
    let rowScales: UnsafeMutablePointer<Float>?
    let factors: UnsafeMutablePointer<UInt8>?

    init(errors: [Float], rowScales: UnsafeMutablePointer<Float>?, factors: UnsafeMutablePointer<UInt8>?) {
        self.errors = errors; self.rowScales = rowScales; self.factors = factors
    }

    deinit { rowScales?.deallocate(); factors?.deallocate() }
}
