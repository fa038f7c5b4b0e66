import CIntrinsics
import DamdaCore
import DamdaModelIO
import Foundation

/// A matrix in one of the sub-byte formats (Q5_0, Q4_0, Q4_K, Q5_K, Q6_K) laid out again, once at
/// load, for decoding: int8 values with an fp32 scale per 32 inputs (per 16 for Q6_K), or, for the
/// 4-bit formats, plain nibbles with an fp32 scale, plus an fp32 min per 32 where the format has
/// one (Q4_0's −8 offset becomes a min of 8·d). Every weight stays exactly the file's dequantized
/// value: integers and scales (an f16 times a 6- or 8-bit integer) are exact in fp32, and
/// `scale · q − min` is computed as the file-layout dequantizer computes it. Only the layout
/// changes, so products stay fp32-exact.
///
/// Why: decoding one token uses each weight once, and unpacking 5-, 4- and 6-bit fields spread
/// over the file's blocks cost more than the bytes they save. On an AMD EPYC (Zen 3), Gemma 3 270M's
/// Q5_0 matrices ran at 3.5 GB/s of file bytes (5.9 G weights/s) and as int8 blocks at 9.6 GB/s
/// (8.5 G weights/s); Q4_K and Q6_K gained alike. The price is more bytes for the 5- and 6-bit
/// matrices (about 100 MB instead of 66 MB for the default model when every one is re-laid; see
/// `relays` for Q5_0 on AVX-512); the file's pages are handed back to the page cache after each copy.
public final class DecodeRows: @unchecked Sendable {
    public let rows: Int, columns: Int
    /// How one 32-value block is stored.
    public enum Layout: Sendable {
        /// 32 int8 values, then one fp32 scale (36 bytes).
        case bytes
        /// 32 int8 values, then one fp32 scale per 16 (40 bytes): Q6_K's groups.
        case bytesHalves
        /// 16 bytes of 4-bit values (byte k holds value k low and value k + 16 high), then one
        /// fp32 scale (20 bytes): the 4-bit formats, where int8 would cost 2.2× the file's bytes
        /// for about the same arithmetic.
        case nibbles

        var blockBytes: Int {
            switch self {
            case .bytes: 36
            case .bytesHalves: 40
            case .nibbles: 20
            }
        }
    }

    public let layout: Layout
    /// 32-value blocks per row.
    let blocks: Int
    let blockBytes: Int
    let rowBytes: Int
    let data: UnsafeMutableRawPointer
    /// [row][block] mins, subtracted after scaling (Q4_K, Q5_K); nil for the symmetric formats.
    let mins: UnsafeMutablePointer<Float>?


    /// Types with this layout; every other type keeps the file's.
    public static func supports(_ type: TensorType) -> Bool {
        [.q5_0, .q4_0, .q4_K, .q5_K, .q6_K].contains(type)
    }

    /// The types a model's loader re-lays (`WeightMatrix(file, name, arena:)`): all of `supports`,
    /// except Q5_0 where the AVX-512 kernels run. Those unpack its fifth bits with one lane mask
    /// per eight values and carry two eight-lane groups per register (`damda_q5_0_rows_avx512`,
    /// `damda_decode_rows_x8_avx512`), so the file's 22-byte blocks, copied as they are, decode
    /// about as fast as 36-byte int8 blocks and the default model needs 26 MB less. AMD EPYC (Zen 5),
    /// `bench generate --prompt 16`, interleaved rounds (a process's rate varies by up to 20% from
    /// the next one's): one sequence 150.5 / 176.7 / 154.8 tokens/s against 152.6 / 189.1 / 162.6,
    /// eight greedy 374 / 435 / 406 / 430 against 407 / 409 / 418 / 427.
    public static func relays(_ type: TensorType) -> Bool {
        supports(type) && !(type == .q5_0 && PairedVectors.available)
    }

    /// Where `data` and `mins` live: an arena shared with the model's other decode weights, or the heap (nil).
    let arena: WeightArena?

    /// Copies `w` into the int8 layout, in `arena` if given; nil for types `supports` rejects.
    public init?(_ w: WeightMatrix, arena: WeightArena? = nil) {
        guard Self.supports(w.type), w.columns % 32 == 0 else { return nil }
        rows = w.rows
        columns = w.columns
        blocks = columns / 32
        switch w.type {
        case .q6_K: layout = .bytesHalves
        case .q4_K, .q4_0: layout = .nibbles
        default: layout = .bytes
        }
        blockBytes = layout.blockBytes
        rowBytes = blocks * blockBytes
        self.arena = arena
        let hasMins = [.q4_K, .q5_K, .q4_0].contains(w.type)
        if let arena {
            data = arena.allocate(byteCount: rows * rowBytes)
            mins = hasMins ? arena.allocate(byteCount: rows * blocks * 4).bindMemory(to: Float.self, capacity: rows * blocks) : nil
        } else {
            data = .allocate(byteCount: max(rows * rowBytes, 1), alignment: 64)
            data.initializeMemory(as: UInt8.self, repeating: 0, count: max(rows * rowBytes, 1))
            mins = hasMins ? .allocate(capacity: max(rows * blocks, 1)) : nil
        }
        let type = w.type
        parallelRanges(rows, threads: Threads.available, granule: 64) { range in
            for r in range {
                Self.repackRow(type, w.row(r), columns: w.columns, into: self.data + r * self.rowBytes,
                               mins: self.mins.map { $0 + r * self.blocks })
            }
        }
    }

    deinit {
        guard arena == nil else { return }
        data.deallocate()
        mins?.deallocate()
    }

    public var byteCount: Int { rows * rowBytes + (mins == nil ? 0 : rows * blocks * 4) }

    // MARK: repacking (formats as in ggml-quants.c)

    static func repackRow(_ type: TensorType, _ src: UnsafeRawPointer, columns: Int, into out: UnsafeMutableRawPointer,
                          mins: UnsafeMutablePointer<Float>?) {
        @inline(__always) func put(_ v: Int32, block b: Int, _ j: Int, stride: Int) {
            out.storeBytes(of: Int8(truncatingIfNeeded: v), toByteOffset: b * stride + j, as: Int8.self)
        }
        @inline(__always) func scale(_ s: Float, block b: Int, slot: Int = 0, stride: Int) {
            out.storeBytes(of: s, toByteOffset: b * stride + 32 + 4 * slot, as: Float.self)
        }
        // 4-bit values (0…15) into the `nibbles` layout; the block starts zeroed.
        @inline(__always) func putNibble(_ v: UInt8, block b: Int, _ j: Int) {
            let at = b * 20 + j % 16
            let old = out.load(fromByteOffset: at, as: UInt8.self)
            out.storeBytes(of: old | (j < 16 ? v & 0xF : (v & 0xF) << 4), toByteOffset: at, as: UInt8.self)
        }
        @inline(__always) func nibbleScale(_ s: Float, block b: Int) {
            out.storeBytes(of: s, toByteOffset: b * 20 + 16, as: Float.self)
        }
        switch type {
        case .q5_0:
            for b in 0..<(columns / 32) {
                let p = src + b * 22
                let qh = p.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
                for j in 0..<16 {
                    let q = UInt32(p.load(fromByteOffset: 6 + j, as: UInt8.self))
                    put(Int32((q & 0xF) | (((qh >> UInt32(j)) << 4) & 0x10)) - 16, block: b, j, stride: 36)
                    put(Int32((q >> 4) | ((qh >> UInt32(j + 12)) & 0x10)) - 16, block: b, j + 16, stride: 36)
                }
                scale(f16(p), block: b, stride: 36)
            }
        case .q4_0:
            // d·(q − 8) = d·q − 8d, both products exact: the offset becomes a min.
            for b in 0..<(columns / 32) {
                let p = src + b * 18
                for j in 0..<16 {
                    let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                    putNibble(q & 0xF, block: b, j)
                    putNibble(q >> 4, block: b, j + 16)
                }
                nibbleScale(f16(p), block: b)
                mins![b] = 8 * f16(p)
            }
        case .q4_K, .q5_K:
            let five = type == .q5_K
            let superBytes = five ? 176 : 144
            for s in 0..<(columns / 256) {
                let p = src + s * superBytes
                let d = f16(p), dmin = f16(p, 2)
                let qh = p + 16, qs = p + (five ? 48 : 16)
                for chunk in 0..<4 {
                    let (sc1, m1) = KQuants.scaleMin(2 * chunk, p + 4)
                    let (sc2, m2) = KQuants.scaleMin(2 * chunk + 1, p + 4)
                    let b1 = s * 8 + 2 * chunk, b2 = b1 + 1
                    for l in 0..<32 {
                        let q = qs.load(fromByteOffset: chunk * 32 + l, as: UInt8.self)
                        var lo = Int32(q & 0xF), hi = Int32(q >> 4)
                        if five {
                            let h = qh.load(fromByteOffset: l, as: UInt8.self)
                            if h & (UInt8(1) << (2 * chunk)) != 0 { lo += 16 }
                            if h & (UInt8(2) << (2 * chunk)) != 0 { hi += 16 }
                        }
                        if five {
                            put(lo, block: b1, l, stride: 36)
                            put(hi, block: b2, l, stride: 36)
                        } else {
                            putNibble(UInt8(lo), block: b1, l)
                            putNibble(UInt8(hi), block: b2, l)
                        }
                    }
                    if five {
                        scale(d * sc1, block: b1, stride: 36)
                        scale(d * sc2, block: b2, stride: 36)
                    } else {
                        nibbleScale(d * sc1, block: b1)
                        nibbleScale(d * sc2, block: b2)
                    }
                    mins![b1] = dmin * m1
                    mins![b2] = dmin * m2
                }
            }
        case .q6_K:
            for s in 0..<(columns / 256) {
                let p = src + s * 210
                let d = f16(p, 208)
                for half in 0..<2 {
                    let ql = p + half * 64, qh = p + 128 + half * 32, sc = p + 192 + half * 8
                    let first = s * 256 + half * 128
                    for l in 0..<32 {
                        let a = Int32(ql.load(fromByteOffset: l, as: UInt8.self))
                        let c = Int32(ql.load(fromByteOffset: l + 32, as: UInt8.self))
                        let h = Int32(qh.load(fromByteOffset: l, as: UInt8.self))
                        let values = (((a & 0xF) | ((h & 3) << 4)) - 32, ((c & 0xF) | (((h >> 2) & 3) << 4)) - 32,
                                      ((a >> 4) | (((h >> 4) & 3) << 4)) - 32, ((c >> 4) | (((h >> 6) & 3) << 4)) - 32)
                        // Value k of this column sits at position first + 32k + l of the row.
                        for (k, v) in [values.0, values.1, values.2, values.3].enumerated() {
                            let position = first + 32 * k + l
                            put(v, block: position / 32, position % 32, stride: 40)
                        }
                    }
                    // Scale g covers positions first + 16g ..< first + 16g + 16.
                    for g in 0..<8 {
                        let position = first + 16 * g
                        scale(d * Float(sc.load(fromByteOffset: g, as: Int8.self)), block: position / 32,
                              slot: (position / 16) % 2, stride: 40)
                    }
                }
            }
        default:
            preconditionFailure("DecodeRows does not take \(type)")
        }
    }

    // MARK: dequantize

    /// The row's fp32 values: bit for bit what the file-layout dequantizer writes.
    public func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        let row = UnsafeRawPointer(data + r * rowBytes)
        let m = mins.map { UnsafePointer($0 + r * blocks) }
        for b in 0..<blocks {
            let p = row + b * blockBytes
            let out = y + b * 32
            if layout == .nibbles {
                let s = F8(repeating: p.loadUnaligned(fromByteOffset: 16, as: Float.self))
                let mm = F8(repeating: m.map { $0[b] } ?? 0)
                let lo = widen(p.loadUnaligned(as: SIMD8<UInt8>.self)), hi = widen(p.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
                storeF8(s * toFloat(lo & 0xF) - mm, out); storeF8(s * toFloat(hi & 0xF) - mm, out + 8)
                storeF8(s * toFloat(lo &>> 4) - mm, out + 16); storeF8(s * toFloat(hi &>> 4) - mm, out + 24)
                continue
            }
            @inline(__always) func q(_ o: Int) -> F8 { toFloat(p.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) }
            let s0 = F8(repeating: p.loadUnaligned(fromByteOffset: 32, as: Float.self))
            let s1 = layout == .bytesHalves ? F8(repeating: p.loadUnaligned(fromByteOffset: 36, as: Float.self)) : s0
            if let m {
                let mm = F8(repeating: m[b])
                for j in 0..<4 { storeF8(s0 * q(8 * j) - mm, out + 8 * j) }
            } else {
                storeF8(s0 * q(0), out); storeF8(s0 * q(8), out + 8)
                storeF8(s1 * q(16), out + 16); storeF8(s1 * q(24), out + 24)
            }
        }
    }

    // MARK: dot products

    /// Σ over a 32-value block of q·x, in eight lanes.
    @inline(__always) static func blockSum(_ p: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> F8 {
        @inline(__always) func q(_ o: Int) -> F8 { toFloat(p.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) }
        let s0 = (q(0) * loadF8(x)).addingProduct(q(8), loadF8(x + 8))
        let s1 = (q(16) * loadF8(x + 16)).addingProduct(q(24), loadF8(x + 24))
        return s0 + s1
    }

    /// Σ over blocks of scale · `blockSum`, for layouts with one fp32 scale per block at
    /// `scaleOffset`; two accumulators so consecutive blocks do not wait on each other.
    @inline(__always)
    static func scaledBlocks(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks nb: Int, blockBytes: Int,
                             scaleOffset: Int, _ blockSum: (UnsafeRawPointer, UnsafePointer<Float>) -> F8) -> Float {
        @inline(__always) func scale(_ p: UnsafeRawPointer) -> F8 { F8(repeating: p.loadUnaligned(fromByteOffset: scaleOffset, as: Float.self)) }
        var acc0 = F8(), acc1 = F8()
        var b = 0
        while b + 2 <= nb {
            let p = row + b * blockBytes
            acc0 = acc0.addingProduct(blockSum(p, x + b * 32), scale(p))
            acc1 = acc1.addingProduct(blockSum(p + blockBytes, x + b * 32 + 32), scale(p + blockBytes))
            b += 2
        }
        if b < nb {
            let p = row + b * blockBytes
            acc0 = acc0.addingProduct(blockSum(p, x + b * 32), scale(p))
        }
        return (acc0 + acc1).sum()
    }

    /// int8 values, one scale per block.
    static func dot32(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks nb: Int) -> Float {
        scaledBlocks(row, x, blocks: nb, blockBytes: 36, scaleOffset: 32, blockSum)
    }

    /// Σ over a 4-bit block of q·x: one widening load yields eight low nibbles and the eight
    /// values 16 further on.
    @inline(__always) static func nibbleBlockSum(_ p: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> F8 {
        let lo = widen(p.loadUnaligned(as: SIMD8<UInt8>.self)), hi = widen(p.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
        let s0 = (toFloat(lo & 0xF) * loadF8(x)).addingProduct(toFloat(hi & 0xF), loadF8(x + 8))
        let s1 = (toFloat(lo &>> 4) * loadF8(x + 16)).addingProduct(toFloat(hi &>> 4), loadF8(x + 24))
        return s0 + s1
    }

    /// 4-bit values, one scale per block. (A named function: as a trailing closure the block sum
    /// stayed an out-of-line call.)
    static func dot4(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks nb: Int) -> Float {
        scaledBlocks(row, x, blocks: nb, blockBytes: 20, scaleOffset: 16, nibbleBlockSum)
    }

    /// Two scales per block, one for each 16-value half.
    static func dot16(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks nb: Int) -> Float {
        var acc0 = F8(), acc1 = F8()
        for b in 0..<nb {
            let p = row + b * 40, xb = x + b * 32
            @inline(__always) func q(_ o: Int) -> F8 { toFloat(p.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) }
            let s0 = (q(0) * loadF8(xb)).addingProduct(q(8), loadF8(xb + 8))
            let s1 = (q(16) * loadF8(xb + 16)).addingProduct(q(24), loadF8(xb + 24))
            acc0 = acc0.addingProduct(s0, F8(repeating: p.loadUnaligned(fromByteOffset: 32, as: Float.self)))
            acc1 = acc1.addingProduct(s1, F8(repeating: p.loadUnaligned(fromByteOffset: 36, as: Float.self)))
        }
        return (acc0 + acc1).sum()
    }

    /// Row `r` · x, given x's per-block sums where the format has mins.
    @inline(__always) func dot(row r: Int, _ x: UnsafePointer<Float>, blockSums: UnsafePointer<Float>?) -> Float {
        let p = UnsafeRawPointer(data + r * rowBytes)
        let scaled: Float
        switch layout {
        case .bytes: scaled = Self.dot32(p, x, blocks: blocks)
        case .bytesHalves: scaled = Self.dot16(p, x, blocks: blocks)
        case .nibbles: scaled = Self.dot4(p, x, blocks: blocks)
        }
        guard let mins, let blockSums else { return scaled }
        // Σ (s·q − m)·x = Σ s·Σq·x − Σ m·Σx, per block.
        return scaled - dotF32(mins + r * blocks, blockSums, blocks)
    }

    /// Whether products need x's per-block sums (`blockSums`): the formats with mins.
    public var needsBlockSums: Bool { mins != nil }

    /// Σ of each 32-value block of x (`columns / 32` values).
    static func blockSums(_ x: UnsafePointer<Float>, blocks: Int, into sums: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let v = x + b * 32
            sums[b] = ((loadF8(v) + loadF8(v + 8)) + (loadF8(v + 16) + loadF8(v + 24))).sum()
        }
    }

    /// y[r] = row r · x for r in `range`, weights prefetched a fixed distance ahead.
    func multiplyRows(_ range: Range<Int>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                      blockSums: UnsafePointer<Float>?) {
        let base = UnsafeRawPointer(data), rowBytes = rowBytes
        var prefetch = RowPrefetcher(from: base + range.lowerBound * rowBytes, to: base + range.upperBound * rowBytes)
        for r in range {
            prefetch.ahead(ofRowEnding: base + (r + 1) * rowBytes)
            y[r] = dot(row: r, x, blockSums: blockSums)
        }
    }
}
