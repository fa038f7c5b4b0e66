import Foundation
import CIntrinsics
import DamdaCore

/// Yᵢ[b] = Wᵢ x[b] for `count` activation rows that each stand for a different sequence (batched
/// decoding): every weight row is read from memory once and dotted with all of them while it sits
/// in L1, so a step of B sequences streams the weights once instead of B times.
///
/// Each product is the very function `matvec` runs for one vector (same kernel, same summation
/// order, same block sums), so row b of the result is bit for bit `matvec(W, x[b])`: a sequence
/// decodes the same tokens alone or in a batch. Only the loop around the kernel changes.
///
/// `xs`: [count × columns]; `ys[i]`: [count × Wᵢ.rows].
public func matvecBatch(_ ws: [WeightMatrix], _ xs: UnsafePointer<Float>, count: Int, _ ys: [UnsafeMutablePointer<Float>],
                        threads: Int) {
    precondition(ws.count == ys.count && !ws.isEmpty, "one output per matrix")
    guard count > 0 else { return }
    if count == 1 { matvec(ws, xs, ys, threads: threads); return }
    let columns = ws[0].columns
    precondition(ws.allSatisfy { $0.columns == columns }, "matrices that share x have as many columns")
    let total = ws.reduce(0) { $0 + $1.rows }
    let bytes = ws.reduce(0) { $0 + $1.rows * $1.rowBytes }
    // The same threshold `matvec` uses, scaled by the work: B vectors make a small matrix worth a thread.
    let t = bytes * count < 64 * 1024 ? 1 : threads
    let needsSums = ws.contains { $0.decodeRows?.needsBlockSums ?? false }
    let blocks = columns / 32
    let paired = PairedVectors.useful(for: ws) ? PairedVectors(xs, count: count, columns: columns) : nil
    defer { paired?.deallocate() }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: needsSums ? count * blocks : 1) { sums in
        if needsSums {
            for b in 0..<count { DecodeRows.blockSums(xs + b * columns, blocks: blocks, into: sums.baseAddress! + b * blocks) }
        }
        let blockSums = needsSums ? UnsafePointer(sums.baseAddress!) : nil
        parallelRanges(total, threads: t, granule: 16) { range in
            var first = 0
            for (w, y) in zip(ws, ys) {
                let lo = max(range.lowerBound - first, 0), hi = min(range.upperBound - first, w.rows)
                if lo < hi { multiplyRowsBatch(w, lo..<hi, xs, count: count, y, blockSums: blockSums, paired: paired) }
                first += w.rows
            }
        }
    }
}

/// The vectors of a batch laid out for `damda_decode_rows_x8_avx512`: groups of up to eight, each
/// group's vectors interleaved in pairs, eight values of one then the same eight of the other (an
/// odd group padded with zeros). A copy of the activations, small beside the weights it saves
/// widening: on AVX-512 one 16-lane instruction then does two vectors' work, bit for bit each
/// one's (see DecodeRowsAVX512.h).
struct PairedVectors {
    /// Each group's first float and vector count.
    let groups: [(values: UnsafePointer<Float>, vectors: Int)]
    /// Vectors in all groups.
    let count: Int
    private let storage: UnsafeMutablePointer<Float>

    /// Whether the AVX-512 kernel runs here and one of `ws` is in a decode layout, Q8_0 or Q5_0.
    /// `DAMDA_AVX512_ROWS=0` turns the kernel off and `DAMDA_AVX512=0` every AVX-512 kernel, for comparing.
    static func useful(for ws: [WeightMatrix]) -> Bool {
        available && ws.contains { $0.decodeRows != nil || fusedFileLayout($0) != nil }
    }

    /// The kernel's layout for a file-layout matrix whose batched pass repeats its one-vector
    /// kernel's arithmetic block for block: Q8_0 where that kernel is `dotQ8_0Wide` (full-width
    /// cores), Q5_0 (`dotQ5_0`) everywhere; nil for the rest.
    static func fusedFileLayout(_ w: WeightMatrix) -> Int32? {
        guard w.decodeRows == nil, w.columns % 32 == 0 else { return nil }
        switch w.type {
        case .q8_0 where CPUFeatures.fullWidth256: return Int32(damda_rows_q8_0)
        case .q5_0: return Int32(damda_rows_q5_0)
        default: return nil
        }
    }

    static let available: Bool = {
        let environment = ProcessInfo.processInfo.environment
        return environment["DAMDA_AVX512_ROWS"] != "0" && environment["DAMDA_AVX512"] != "0" && damda_has_avx512() != 0
    }()

    init(_ xs: UnsafePointer<Float>, count: Int, columns: Int) {
        self.count = count
        let groupCount = (count + 7) / 8
        storage = .allocate(capacity: groupCount * 8 * columns)
        var groups: [(values: UnsafePointer<Float>, vectors: Int)] = []
        for g in 0..<groupCount {
            let vectors = min(8, count - 8 * g), pairs = (vectors + 1) / 2
            let out = storage + g * 8 * columns
            for p in 0..<pairs {
                for half in 0..<2 {
                    let v = 8 * g + 2 * p + half
                    for k in 0..<(columns / 8) {
                        let to = out + (k * pairs + p) * 16 + half * 8
                        if 2 * p + half < vectors {
                            to.update(from: xs + v * columns + 8 * k, count: 8)
                        } else {
                            to.update(repeating: 0, count: 8)
                        }
                    }
                }
            }
            groups.append((UnsafePointer(out), vectors))
        }
        self.groups = groups
    }

    /// y[v·rows + r] = row r · x_v for r in `range` and every vector, through the kernel, one call per group.
    func multiply(_ matrix: UnsafePointer<UInt8>, rowBytes: Int, blocks: Int, layout: Int32, _ range: Range<Int>,
                  _ y: UnsafeMutablePointer<Float>, rows: Int) {
        for (g, group) in groups.enumerated() {
            damda_decode_rows_x8_avx512(matrix, rowBytes, Int32(blocks), layout, range.lowerBound, range.upperBound,
                                        group.values, Int32(group.vectors), y + 8 * g * rows, rows)
        }
    }

    func deallocate() { storage.deallocate() }
}

/// y[b][r] = W[r] · x[b] for r in `range` and every b, weights prefetched as `multiplyRows` does.
@inline(__always)
func multiplyRowsBatch(_ w: WeightMatrix, _ range: Range<Int>, _ xs: UnsafePointer<Float>, count: Int,
                       _ y: UnsafeMutablePointer<Float>, blockSums: UnsafePointer<Float>?, paired: PairedVectors? = nil) {
    if let rows = w.decodeRows {
        if let paired { rows.multiplyRowsBatch(range, paired, y, blockSums: blockSums) } else {
            rows.multiplyRowsBatch(range, xs, count: count, y, blockSums: blockSums)
        }
        return
    }
    let dot = w.kernels.dot
    let cols = w.columns, outRows = w.rows
    // Q8_0 on full-width cores (the output matrix when every logit is wanted, Q8_0 attn_v) and
    // Q5_0 (the layers' 5-bit matrices under `--weights file`): four vectors per pass of the
    // one-vector kernel's arithmetic (`q8BlockWide`, `q5Block`); on AVX-512 eight, two to a register.
    let fused = PairedVectors.fusedFileLayout(w)
    if let fused, let paired {
        paired.multiply(w.row(0).assumingMemoryBound(to: UInt8.self), rowBytes: w.rowBytes, blocks: cols / 32,
                        layout: fused, range, y, rows: outRows)
        return
    }
    // Without the AVX-512 kernel: four vectors per unpacking of a row, for the types whose
    // one-vector kernel has a four-vector twin (the K-quants of `--weights file` too).
    let fourVectors: ((UnsafeRawPointer, UnsafePointer<Float>) -> SIMD4<Float>)? = switch w.type {
    case .q8_0 where fused != nil:
        { DecodeRows.scaledBlocks4($0, $1, stride: cols, blocks: cols / 32, blockBytes: 34, DecodeRows.q8Block, DecodeRows.f16Scale) }
    case .q5_0 where fused != nil:
        { DecodeRows.scaledBlocks4($0, $1, stride: cols, blocks: cols / 32, blockBytes: 22, DecodeRows.q5Block, DecodeRows.f16Scale) }
    case .q4_K: { KQuants.dotQ4_K4($0, $1, stride: cols, cols) }
    case .q6_K: { KQuants.dotQ6_K4($0, $1, stride: cols, cols) }
    default: nil
    }
    var prefetch = RowPrefetcher(from: w.row(range.lowerBound), to: w.row(range.upperBound))
    for r in range {
        prefetch.ahead(ofRowEnding: w.row(r + 1))
        let row = w.row(r)
        var b = 0
        if let fourVectors {
            while b + 4 <= count {
                let d = fourVectors(row, xs + b * cols)
                y[b * outRows + r] = d[0]; y[(b + 1) * outRows + r] = d[1]; y[(b + 2) * outRows + r] = d[2]; y[(b + 3) * outRows + r] = d[3]
                b += 4
            }
        }
        while b < count { y[b * outRows + r] = dot(row, xs + b * cols, cols); b += 1 }
    }
}

extension DecodeRows {
    /// `multiplyRowsBatch` through the AVX-512 kernel: the scaled sums for every group of paired
    /// vectors, then each product's min term as `dot(row:)` subtracts it.
    func multiplyRowsBatch(_ range: Range<Int>, _ paired: PairedVectors, _ y: UnsafeMutablePointer<Float>,
                           blockSums: UnsafePointer<Float>?) {
        let kind: Int32 = switch layout {
        case .bytes: Int32(damda_rows_bytes)
        case .nibbles: Int32(damda_rows_nibbles)
        case .bytesHalves: Int32(damda_rows_bytes_halves)
        }
        paired.multiply(UnsafePointer(data.assumingMemoryBound(to: UInt8.self)), rowBytes: rowBytes, blocks: blocks, layout: kind,
                        range, y, rows: rows)
        guard let mins, let blockSums else { return }
        for r in range {
            for b in 0..<paired.count { y[b * rows + r] = y[b * rows + r] - dotF32(mins + r * blocks, blockSums + b * blocks, blocks) }
        }
    }

    /// `multiplyRows` for `count` vectors: y[b·rows + r] = row r · x[b], each with its own block sums
    /// (`blockSums`: [count × blocks], where the format has mins). Vectors go four at a time through
    /// `dot4Vectors`, which unpacks each weight block once for all four; a remainder takes `dot`.
    func multiplyRowsBatch(_ range: Range<Int>, _ xs: UnsafePointer<Float>, count: Int, _ y: UnsafeMutablePointer<Float>,
                           blockSums: UnsafePointer<Float>?) {
        let base = UnsafeRawPointer(data), rowBytes = rowBytes
        var prefetch = RowPrefetcher(from: base + range.lowerBound * rowBytes, to: base + range.upperBound * rowBytes)
        for r in range {
            prefetch.ahead(ofRowEnding: base + (r + 1) * rowBytes)
            var b = 0
            while b + 4 <= count {
                let d = dot4Vectors(row: r, xs + b * columns, stride: columns, blockSums: blockSums.map { $0 + b * blocks })
                y[b * rows + r] = d[0]; y[(b + 1) * rows + r] = d[1]; y[(b + 2) * rows + r] = d[2]; y[(b + 3) * rows + r] = d[3]
                b += 4
            }
            while b < count {
                y[b * rows + r] = dot(row: r, xs + b * columns, blockSums: blockSums.map { $0 + b * blocks })
                b += 1
            }
        }
    }

    /// Row r · x_j for four vectors x_j = x + j·stride (block sums likewise `blocks` apart): each
    /// block's weights are converted to fp32 once and used for all four, and every product then
    /// takes exactly the operations, in the order, of `dot(row:)` on that vector alone.
    @inline(__always)
    func dot4Vectors(row r: Int, _ x: UnsafePointer<Float>, stride: Int, blockSums: UnsafePointer<Float>?) -> SIMD4<Float> {
        let p = UnsafeRawPointer(data + r * rowBytes)
        var scaled: SIMD4<Float>
        switch layout {
        case .bytes: scaled = Self.scaledBlocks4(p, x, stride: stride, blocks: blocks, blockBytes: 36, Self.bytesBlock, Self.scaleAt32)
        case .nibbles: scaled = Self.scaledBlocks4(p, x, stride: stride, blocks: blocks, blockBytes: 20, Self.nibblesBlock, Self.scaleAt16)
        case .bytesHalves: scaled = Self.halves4(p, x, stride: stride, blocks: blocks)
        }
        guard let mins, let blockSums else { return scaled }
        let m = mins + r * blocks
        for j in 0..<4 { scaled[j] = scaled[j] - dotF32(m, blockSums + j * blocks, blocks) }
        return scaled
    }

    /// A block's 32 values as four fp32 vectors (values 0–7, 8–15, 16–23, 24–31).
    typealias Block = (F8, F8, F8, F8)

    @inline(__always) static func bytesBlock(_ p: UnsafeRawPointer) -> Block {
        @inline(__always) func q(_ o: Int) -> F8 { toFloat(p.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) }
        return (q(0), q(8), q(16), q(24))
    }

    @inline(__always) static func scaleAt32(_ p: UnsafeRawPointer) -> F8 { F8(repeating: p.loadUnaligned(fromByteOffset: 32, as: Float.self)) }
    @inline(__always) static func scaleAt16(_ p: UnsafeRawPointer) -> F8 { F8(repeating: p.loadUnaligned(fromByteOffset: 16, as: Float.self)) }

    /// A file-layout Q8_0 block (f16 scale, then 32 int8 values), as `LegacyQuants.q8BlockWide` reads it.
    @inline(__always) static func q8Block(_ p: UnsafeRawPointer) -> Block {
        @inline(__always) func q(_ o: Int) -> F8 { toFloat(p.loadUnaligned(fromByteOffset: 2 + o, as: SIMD8<Int8>.self)) }
        return (q(0), q(8), q(16), q(24))
    }
    /// A file-layout Q5_0 block's values, as `LegacyQuants.q5Block` forms them.
    @inline(__always) static func q5Block(_ p: UnsafeRawPointer) -> Block { LegacyQuants.q5Values(p, LegacyQuants.q5HighTable) }
    /// The f16 scale that leads Q8_0 and Q5_0 blocks.
    @inline(__always) static func f16Scale(_ p: UnsafeRawPointer) -> F8 { F8(repeating: f16(p)) }

    @inline(__always) static func nibblesBlock(_ p: UnsafeRawPointer) -> Block {
        let lo = widen(p.loadUnaligned(as: SIMD8<UInt8>.self)), hi = widen(p.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
        return (toFloat(lo & 0xF), toFloat(hi & 0xF), toFloat(lo &>> 4), toFloat(hi &>> 4))
    }

    /// `blockSum` / `nibbleBlockSum` on already converted values: the same two products, two fused
    /// multiply-adds and the final add.
    @inline(__always) static func sum(_ q: Block, _ x: UnsafePointer<Float>) -> F8 {
        let s0 = (q.0 * loadF8(x)).addingProduct(q.1, loadF8(x + 8))
        let s1 = (q.2 * loadF8(x + 16)).addingProduct(q.3, loadF8(x + 24))
        return s0 + s1
    }

    /// `scaledBlocks` for four vectors.
    @inline(__always)
    static func scaledBlocks4(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, stride: Int, blocks nb: Int, blockBytes: Int,
                              _ decode: (UnsafeRawPointer) -> Block, _ scale: (UnsafeRawPointer) -> F8) -> SIMD4<Float> {
        let x0 = x, x1 = x + stride, x2 = x + 2 * stride, x3 = x + 3 * stride
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var c0 = F8(), c1 = F8(), c2 = F8(), c3 = F8()
        var b = 0
        while b + 2 <= nb {
            let p = row + b * blockBytes, o = b * 32
            let q = decode(p), s = scale(p)
            a0 = a0.addingProduct(sum(q, x0 + o), s); a1 = a1.addingProduct(sum(q, x1 + o), s)
            a2 = a2.addingProduct(sum(q, x2 + o), s); a3 = a3.addingProduct(sum(q, x3 + o), s)
            let q2 = decode(p + blockBytes), s2 = scale(p + blockBytes)
            c0 = c0.addingProduct(sum(q2, x0 + o + 32), s2); c1 = c1.addingProduct(sum(q2, x1 + o + 32), s2)
            c2 = c2.addingProduct(sum(q2, x2 + o + 32), s2); c3 = c3.addingProduct(sum(q2, x3 + o + 32), s2)
            b += 2
        }
        if b < nb {
            let p = row + b * blockBytes, o = b * 32
            let q = decode(p), s = scale(p)
            a0 = a0.addingProduct(sum(q, x0 + o), s); a1 = a1.addingProduct(sum(q, x1 + o), s)
            a2 = a2.addingProduct(sum(q, x2 + o), s); a3 = a3.addingProduct(sum(q, x3 + o), s)
        }
        return SIMD4((a0 + c0).sum(), (a1 + c1).sum(), (a2 + c2).sum(), (a3 + c3).sum())
    }

    /// `dot16` (two scales per block) for four vectors.
    @inline(__always)
    static func halves4(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, stride: Int, blocks nb: Int) -> SIMD4<Float> {
        var a = (F8(), F8(), F8(), F8()), c = (F8(), F8(), F8(), F8())
        @inline(__always) func halves(_ q: Block, _ xb: UnsafePointer<Float>) -> (F8, F8) {
            ((q.0 * loadF8(xb)).addingProduct(q.1, loadF8(xb + 8)), (q.2 * loadF8(xb + 16)).addingProduct(q.3, loadF8(xb + 24)))
        }
        for b in 0..<nb {
            let p = row + b * 40, o = b * 32
            let q = bytesBlock(p)
            let s0 = F8(repeating: p.loadUnaligned(fromByteOffset: 32, as: Float.self))
            let s1 = F8(repeating: p.loadUnaligned(fromByteOffset: 36, as: Float.self))
            var h = halves(q, x + o); a.0 = a.0.addingProduct(h.0, s0); c.0 = c.0.addingProduct(h.1, s1)
            h = halves(q, x + stride + o); a.1 = a.1.addingProduct(h.0, s0); c.1 = c.1.addingProduct(h.1, s1)
            h = halves(q, x + 2 * stride + o); a.2 = a.2.addingProduct(h.0, s0); c.2 = c.2.addingProduct(h.1, s1)
            h = halves(q, x + 3 * stride + o); a.3 = a.3.addingProduct(h.0, s0); c.3 = c.3.addingProduct(h.1, s1)
        }
        return SIMD4((a.0 + c.0).sum(), (a.1 + c.1).sum(), (a.2 + c.2).sum(), (a.3 + c.3).sum())
    }
}
