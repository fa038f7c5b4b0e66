/// ggml's 32-value block formats: Q8_0, Q5_0, Q4_0. Dot products dequantize in registers and
/// accumulate in fp32 against fp32 activations (no int8 activation rounding, unlike llama.cpp).
enum LegacyQuants {
    // MARK: Q8_0 — d: f16, qs: int8[32]; x = d * q

    static func dequantizeQ8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<(n / 32) {
            let blk = src + b * 34
            let d = F8(repeating: f16(blk))
            for j in 0..<4 {
                let q = toFloat(blk.loadUnaligned(fromByteOffset: 2 + 8 * j, as: SIMD8<Int8>.self))
                storeF8(q * d, dst + b * 32 + 8 * j)
            }
        }
    }

    // 128-bit lanes for Zen 1, which splits 256-bit operations in two, and the narrower loads widen
    // in one micro-op (measured 29 ms vs 37 ms for the 262k-row LM head on one core).

    @inline(__always) static func q8Block(_ blk: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> F4 {
        @inline(__always) func q(_ o: Int) -> F4 { toFloat(blk.loadUnaligned(fromByteOffset: 2 + o, as: SIMD4<Int8>.self)) }
        var s0 = q(0) * loadF4(x), s1 = q(4) * loadF4(x + 4)
        s0 = s0.addingProduct(q(8), loadF4(x + 8)); s1 = s1.addingProduct(q(12), loadF4(x + 12))
        s0 = s0.addingProduct(q(16), loadF4(x + 16)); s1 = s1.addingProduct(q(20), loadF4(x + 20))
        s0 = s0.addingProduct(q(24), loadF4(x + 24)); s1 = s1.addingProduct(q(28), loadF4(x + 28))
        return s0 + s1
    }

    /// Σ d·q·x over Q8_0 blocks on whichever lane width `blockSum` works in, two blocks at a time
    /// into two accumulators. (Block sums are passed as named functions: a closure literal here
    /// stayed an out-of-line call per block.)
    @inline(__always) static func q8Blocks<V: SIMD>(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int,
                                                   _ blockSum: (UnsafeRawPointer, UnsafePointer<Float>) -> V) -> Float
    where V.Scalar == Float {
        var acc0 = V(), acc1 = V()
        let nb = n / 32
        var b = 0
        while b + 2 <= nb {
            let p = src + b * 34
            acc0 = acc0.addingProduct(blockSum(p, x + b * 32), V(repeating: f16(p)))
            acc1 = acc1.addingProduct(blockSum(p + 34, x + b * 32 + 32), V(repeating: f16(p + 34)))
            b += 2
        }
        if b < nb { acc0 = acc0.addingProduct(blockSum(src + b * 34, x + b * 32), V(repeating: f16(src + b * 34))) }
        return (acc0 + acc1).sum()
    }

    static func dotQ8_0(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        q8Blocks(src, x, n, q8Block)
    }

    /// The same sum on 256-bit vectors, for cores that run them at full width (`CPUFeatures`):
    /// a block is four widen-convert-multiply-adds of eight weights.
    @inline(__always) static func q8BlockWide(_ blk: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> F8 {
        @inline(__always) func q(_ o: Int) -> F8 { toFloat(blk.loadUnaligned(fromByteOffset: 2 + o, as: SIMD8<Int8>.self)) }
        let s0 = (q(0) * loadF8(x)).addingProduct(q(8), loadF8(x + 8))
        let s1 = (q(16) * loadF8(x + 16)).addingProduct(q(24), loadF8(x + 24))
        return s0 + s1
    }

    static func dotQ8_0Wide(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        q8Blocks(src, x, n, q8BlockWide)
    }

    // MARK: Q5_0 — d: f16, qh: u32 (fifth bits), qs: u8[16] (low nibbles: values 0-15, high: 16-31); x = d * (q - 16)

    /// For each byte of `qh`, eight lanes of (fifth bit · 16 − 16): the high bits and the −16 offset
    /// become one vector add (an 8 KB table that stays in L1). Q5_0 stays on 256-bit lanes: the
    /// 128-bit form of this kernel was scalarized by LLVM and ran 2× slower.
    static let q5HighTable: UnsafeMutablePointer<F8> = {
        let t = UnsafeMutablePointer<F8>.allocate(capacity: 256)
        for b in 0..<256 {
            var v = F8()
            for i in 0..<8 { v[i] = (b >> i) & 1 == 1 ? 0 : -16 }
            t[b] = v
        }
        return t
    }()

    /// A block's 32 values as four fp32 vectors (values 0–7, 8–15, 16–23, 24–31): each low nibble
    /// plus its fifth bit's table entry, exact integers from −16 to 15.
    @inline(__always) static func q5Values(_ blk: UnsafeRawPointer, _ table: UnsafeMutablePointer<F8>) -> (F8, F8, F8, F8) {
        let h0 = table[Int(blk.load(fromByteOffset: 2, as: UInt8.self))]
        let h1 = table[Int(blk.load(fromByteOffset: 3, as: UInt8.self))]
        let h2 = table[Int(blk.load(fromByteOffset: 4, as: UInt8.self))]
        let h3 = table[Int(blk.load(fromByteOffset: 5, as: UInt8.self))]
        let lo0 = widen(blk.loadUnaligned(fromByteOffset: 6, as: SIMD8<UInt8>.self))
        let lo1 = widen(blk.loadUnaligned(fromByteOffset: 14, as: SIMD8<UInt8>.self))
        return (toFloat(lo0 & 0xF) + h0, toFloat(lo1 & 0xF) + h1, toFloat(lo0 &>> 4) + h2, toFloat(lo1 &>> 4) + h3)
    }

    @inline(__always) static func q5Block(_ blk: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ table: UnsafeMutablePointer<F8>) -> F8 {
        let (v0, v1, v2, v3) = q5Values(blk, table)
        let a = (v0 * loadF8(x)).addingProduct(v1, loadF8(x + 8))
        let b = (v2 * loadF8(x + 16)).addingProduct(v3, loadF8(x + 24))
        return a + b
    }

    /// d · q for every value, as the block's product uses them (prefill's sgemm reads these).
    static func dequantizeQ5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        let table = q5HighTable
        for b in 0..<(n / 32) {
            let p = src + b * 22
            let d = F8(repeating: f16(p))
            let (v0, v1, v2, v3) = q5Values(p, table)
            let out = dst + b * 32
            storeF8(v0 * d, out); storeF8(v1 * d, out + 8); storeF8(v2 * d, out + 16); storeF8(v3 * d, out + 24)
        }
    }

    static func dotQ5_0(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = F8(), acc1 = F8()
        let nb = n / 32
        let table = q5HighTable
        var b = 0
        while b + 2 <= nb {
            let p = src + b * 22
            acc0 = acc0.addingProduct(q5Block(p, x + b * 32, table), F8(repeating: f16(p)))
            acc1 = acc1.addingProduct(q5Block(p + 22, x + b * 32 + 32, table), F8(repeating: f16(p + 22)))
            b += 2
        }
        if b < nb { acc0 = acc0.addingProduct(q5Block(src + b * 22, x + b * 32, table), F8(repeating: f16(src + b * 22))) }
        return (acc0 + acc1).sum()
    }

    // MARK: Q4_0 — d: f16, qs: u8[16]; x = d * (q - 8), low nibbles first

    static func dequantizeQ4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<(n / 32) {
            let p = src + b * 18
            let d = f16(p)
            for j in 0..<16 {
                let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                dst[b * 32 + j] = Float(Int32(q & 0xF) - 8) * d
                dst[b * 32 + j + 16] = Float(Int32(q >> 4) - 8) * d
            }
        }
    }

    static func dotQ4_0(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = F8()
        let eight = SIMD8<Int32>(repeating: 8)
        for b in 0..<(n / 32) {
            let p = src + b * 18
            let lo0 = widen(p.loadUnaligned(fromByteOffset: 2, as: SIMD8<UInt8>.self))
            let lo1 = widen(p.loadUnaligned(fromByteOffset: 10, as: SIMD8<UInt8>.self))
            let xb = x + b * 32
            var s = toFloat(((lo0 & 0xF) &- eight)) * loadF8(xb)
            s = s.addingProduct(toFloat((lo1 & 0xF) &- eight), loadF8(xb + 8))
            s = s.addingProduct(toFloat((lo0 &>> 4) &- eight), loadF8(xb + 16))
            s = s.addingProduct(toFloat((lo1 &>> 4) &- eight), loadF8(xb + 24))
            acc = acc.addingProduct(s, F8(repeating: f16(p)))
        }
        return acc.sum()
    }
}
