import CIntrinsics
import DamdaCore
import Foundation

/// Sampling's head: the exact logits of a small set of tokens that certainly holds the k largest,
/// found with greedy's screen instead of every fp32 logit.
///
/// The screen gives each row i a screened logit sᵢ within a certified bound Bᵢ of the true one
/// (see `GreedyHead`). Let L be a value that at least k lower bounds sᵢ − Bᵢ reach: then at least
/// k true logits are ≥ L, so the k-th largest is ≥ L, and a row whose upper bound sᵢ + Bᵢ is below
/// L is smaller than each of the k largest. Every other row is recomputed with the full product's
/// own fp32 kernel, so each value handed back is the full product's, bit for bit. L comes from a
/// histogram of the lower bounds' order-preserving keys (the top of the bucket where the count
/// reaches k), which may let in a few more rows than the exact k-th lower bound, never fewer.
extension GreedyHead {
    /// Whether `topLogits` beats every fp32 logit for `count` vectors: with the 16-bit screen, from
    /// two vectors on. On an Intel Xeon (Emerald Rapids, 2 threads, `damda bench generate --batch`)
    /// four sequences ran 149–170 tokens/s through it against 142–154 with every logit, two the
    /// same (108–113 against 110–112); with the int8 screen, on a Zen 4, one to four ran no faster
    /// (its candidates, a few thousand rows per vector read out of order, cost what it saved), and
    /// without AVX-512 VNNI it was not measured ahead.
    public func screensTopLogits(count: Int) -> Bool {
        screen == .avx512VNNI && count >= Self.screen16MinimumBatch
    }

    /// For each of `count` vectors [count × columns]: the exact logits of a set holding the
    /// `wanted[v]` largest, plus the tokens `including[v]`.
    public func topLogits(batch xs: UnsafePointer<Float>, count: Int, wanted: [Int], including: [[Int32]], threads: Int) -> [TopLogits] {
        guard count > 0 else { return [] }
        // A row's candidate vectors are the bits of one UInt64: larger batches go 64 at a time.
        guard count <= 64 else {
            let n = matrix.columns
            return stride(from: 0, to: count, by: 64).flatMap { v in
                let m = min(64, count - v)
                return topLogits(batch: xs + v * n, count: m, wanted: Array(wanted[v..<(v + m)]), including: Array(including[v..<(v + m)]),
                                 threads: threads)
            }
        }
        let w = matrix
        let n = w.columns, rows = w.rows
        let norms = norms(threads: threads)
        // Eight floats more, so a row's scores load as 8-lane vectors even at the end.
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: count * rows + 8)
        defer { scores.deallocate() }
        // Row r's bound for vector v: norm[r]·reach[v] + error[r]·size[v] (the int8 screen has no second term).
        let (histograms, reaches, errors, sizes) = screenScores(xs, norms: norms, count: count, into: scores, threads: threads)
        let cuts = (0..<count).map { v in Self.cut(histogram: histograms + v * 4096, wanted: wanted[v], rows: rows) }
        histograms.deallocate()
        // Tokens asked for by name, in row order, each with a mask of the vectors that asked for it.
        var masks: [Int32: UInt64] = [:]
        for (v, tokens) in including.enumerated() { for t in tokens where t >= 0 && Int(t) < rows { masks[t, default: 0] |= 1 << UInt64(v) } }
        let named = masks.sorted { $0.key < $1.key }

        // Row ranges over the threads. Each range finds its rows that are a candidate of some
        // vector, then recomputes each such row once for every vector it is a candidate of with
        // the full product's kernel (the row read once; sequences share many likely tokens), and
        // keeps per vector its (token, value) pairs in row order.
        let parts = max(1, min(threads, rows / 4096))
        var pieces = [[(tokens: [Int32], values: [Float])]](repeating: [], count: parts)
        let dot = w.kernels.dot
        pieces.withUnsafeMutableBufferPointer { out in
            norms.withUnsafeBufferPointer { normBuffer in
                let norm = normBuffer.baseAddress!
                parallelFor(parts) { part in
                    var mine = [(tokens: [Int32], values: [Float])](repeating: ([], []), count: count)
                    var found: [(row: Int32, vectors: UInt64)] = []
                    let lo = rows * part / parts, hi = rows * (part + 1) / parts
                    var nextNamed = named.firstIndex { Int($0.key) >= lo } ?? named.count
                    // The vectors compare eight at a time in 8-lane steps (lanes past `count` never
                    // pass); most rows are no vector's candidate.
                    let chunks = (count + 7) / 8
                    var reach8 = [SIMD8<Float>](repeating: SIMD8(repeating: 0), count: chunks)
                    var size8 = reach8
                    var cut8 = [SIMD8<Float>](repeating: SIMD8(repeating: .infinity), count: chunks)
                    for v in 0..<count { reach8[v / 8][v % 8] = reaches[v]; size8[v / 8][v % 8] = sizes[v]; cut8[v / 8][v % 8] = cuts[v] }
                    for r in lo..<hi {
                        var mask: UInt64 = 0
                        if nextNamed < named.count && Int(named[nextNamed].key) == r { mask = named[nextNamed].value; nextNamed += 1 }
                        let s = scores + r * count, rowNorm = SIMD8<Float>(repeating: norm[r])
                        let rowError = SIMD8<Float>(repeating: errors.isEmpty ? 0 : errors[r])
                        for c in 0..<chunks {
                            let upper = UnsafeRawPointer(s + 8 * c).loadUnaligned(as: SIMD8<Float>.self) + (rowNorm * reach8[c] + rowError * size8[c])
                            let hit = upper .>= cut8[c]
                            guard any(hit) else { continue }
                            for lane in 0..<min(8, count - 8 * c) where hit[lane] { mask |= 1 << UInt64(8 * c + lane) }
                        }
                        if mask != 0 { found.append((Int32(r), mask)) }
                    }
                    // The candidates lie scattered over the matrix: each row is asked for a few
                    // rows ahead, so the waits for memory overlap the arithmetic.
                    let ahead = 4
                    @inline(__always) func prefetch(_ i: Int) {
                        guard i < found.count else { return }
                        let p = w.row(Int(found[i].row))
                        var b = 0
                        while b < w.rowBytes { damda_prefetch(p + b); b += 64 }
                    }
                    for i in 0..<ahead { prefetch(i) }
                    for i in found.indices {
                        prefetch(i + ahead)
                        let (r, vectors) = found[i]
                        let row = w.row(Int(r))
                        var rest = vectors
                        while rest != 0 {
                            let v = rest.trailingZeroBitCount
                            rest &= rest - 1
                            mine[v].tokens.append(r)
                            mine[v].values.append(dot(row, xs + v * n, n))
                        }
                    }
                    out[part] = mine
                }
            }
        }
        lastCandidates = pieces.reduce(0) { $0 + $1.reduce(0) { $0 + $1.tokens.count } }
        return (0..<count).map { v in
            TopLogits(tokens: pieces.flatMap { $0[v].tokens }, values: pieces.flatMap { $0[v].values }, vocabulary: rows)
        }
    }

    /// Every row's screened logit for `count` vectors [count × columns], at scores[r · count + v],
    /// each vector's histogram of lower bounds (4,096 counts at v · 4096, keys as `key(_:)`), which
    /// the caller releases, and the bound's factors: row r's bound for vector v is
    /// norm[r]·reaches[v] + errors[r]·sizes[v] (`errors` empty for the int8 screen, which has no
    /// second term).
    private func screenScores(_ xs: UnsafePointer<Float>, norms norm: [Float], count: Int, into scores: UnsafeMutablePointer<Float>,
                              threads: Int, forceScreen16: Bool = false) -> (histograms: UnsafeMutablePointer<UInt32>, reaches: [Float], errors: [Float], sizes: [Float]) {
        let w = matrix
        let n = w.columns, blocks = n / 32, rows = w.rows
        let parts = max(1, min(threads, rows / 1024))
        // One set of histograms per part, summed into the first on the way out (either screen).
        let counts = UnsafeMutablePointer<UInt32>.allocate(capacity: parts * count * 4096)
        counts.initialize(repeating: 0, count: parts * count * 4096)
        defer {
            for part in 1..<parts {
                for i in 0..<(count * 4096) { counts[i] += counts[part * count * 4096 + i] }
            }
        }
        #if arch(x86_64)
        if screen == .avx512VNNI && (count >= Self.screen16MinimumBatch || forceScreen16) {
            let weights = screen16Weights(threads: threads)
            let errors = weights.errors
            let base = w.row(0).assumingMemoryBound(to: UInt8.self)
            var reaches: [Float] = [], sizes: [Float] = []
            var v = 0
            while v < count {
                let m = min(8, count - v)
                let x = Screen16Vectors(xs + v * n, count: m, columns: n)
                defer { x.values.deallocate() }
                reaches += x.reaches.prefix(m)
                sizes += x.norms.prefix(m)
                norm.withUnsafeBufferPointer { normBuffer in
                    errors.withUnsafeBufferPointer { errorBuffer in
                        parallelFor(parts) { part in
                            let lo = rows * part / parts, hi = rows * (part + 1) / parts
                            damda_screen16_q8_top_avx512vnni(base, w.rowBytes, Int32(blocks), lo, hi, weights.factors, weights.rowScales, x.values, x.scales, Int32(m),
                                                             normBuffer.baseAddress!, errorBuffer.baseAddress!, x.reaches, x.norms,
                                                             scores + v, count, counts + (part * count + v) * 4096)
                        }
                    }
                }
                v += m
            }
            return (counts, reaches, errors, sizes)
        }
        let values = UnsafeMutablePointer<Int8>.allocate(capacity: count * n)
        let scales = UnsafeMutablePointer<Float>.allocate(capacity: count * blocks)
        defer { values.deallocate(); scales.deallocate() }
        let reaches = (0..<count).map { v in Self.quantize(xs + v * n, values + v * n, scales + v * blocks, blocks: blocks) }
        parallelFor(parts) { part in
            let range = (rows * part / parts)..<(rows * (part + 1) / parts)
            let histogram = counts + part * count * 4096
            var prefetch = RowPrefetcher(from: w.row(range.lowerBound), to: w.row(range.upperBound))
            for r in range {
                prefetch.ahead(ofRowEnding: w.row(r + 1))
                let row = w.row(r)
                @inline(__always) func keep(_ v: Int, _ s: Float) {
                    scores[r * count + v] = s
                    histogram[v * 4096 + Self.key(s - norm[r] * reaches[v])] += 1
                }
                Self.screenRow(row, values, scales, count: count, blocks: blocks, keep)
            }
        }
        return (counts, reaches, [], [Float](repeating: 0, count: count))
        #else
        preconditionFailure("GreedyHead needs x86_64")
        #endif
    }

    /// The 16-bit screen's screened logit of every row for up to eight vectors [count × columns]
    /// with its certified bound (|true − screened| ≤ bound), as scores[r][v] and bounds[r][v]; for
    /// checking the bound (nil without AVX-512 VNNI).
    public func screened16(batch xs: UnsafePointer<Float>, count: Int, threads: Int) -> (scores: [[Float]], bounds: [[Float]])? {
        guard screen == .avx512VNNI, (1...8).contains(count) else { return nil }
        let w = matrix
        let rows = w.rows
        let flat = UnsafeMutablePointer<Float>.allocate(capacity: count * rows + 8)
        defer { flat.deallocate() }
        let norms = norms(threads: threads)
        let (histograms, reaches, errors, sizes) = screenScores(xs, norms: norms, count: count, into: flat, threads: threads, forceScreen16: true)
        histograms.deallocate()
        return ((0..<rows).map { r in (0..<count).map { flat[r * count + $0] } },
                (0..<rows).map { r in (0..<count).map { norms[r] * reaches[$0] + errors[r] * sizes[$0] } })
    }

    /// The float's top 12 bits made order-preserving: negatives have every bit flipped, the rest
    /// their sign bit set (as in `Sampler.topIndices`).
    @inline(__always)
    static func key(_ v: Float) -> Int {
        let b = v.bitPattern
        return Int((b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000) >> 20)
    }

    /// A value that at least `wanted` of the counted lower bounds reach: the least float of the
    /// highest bucket, counted from the top, where the count reaches `wanted` (−∞ when every row
    /// is wanted).
    static func cut(histogram: UnsafePointer<UInt32>, wanted: Int, rows: Int) -> Float {
        guard wanted < rows else { return -.infinity }
        guard wanted > 0 else { return .infinity }
        var bucket = 4095, reached = Int(histogram[4095])
        while reached < wanted && bucket > 0 { bucket -= 1; reached += Int(histogram[bucket]) }
        // The least float with this key: keys of non-negative floats carry the sign bit set.
        let high = UInt32(bucket) << 20
        return high & 0x8000_0000 != 0 ? Float(bitPattern: high & 0x7FFF_FFFF) : Float(bitPattern: ~high)
    }
}
