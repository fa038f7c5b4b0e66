/// ggml's 256-value "K" super-block formats: Q4_K, Q5_K, Q6_K (layouts from ggml-quants.c).
/// Dot products dequantize one super-block at a time into an L1-resident buffer, then run an fp32 dot.
enum KQuants {
    @inline(__always) static func scaleMin(_ j: Int, _ s: UnsafeRawPointer) -> (Float, Float) {
        if j < 4 {
            return (Float(s.load(fromByteOffset: j, as: UInt8.self) & 63), Float(s.load(fromByteOffset: j + 4, as: UInt8.self) & 63))
        }
        let a = s.load(fromByteOffset: j + 4, as: UInt8.self)
        let lo = s.load(fromByteOffset: j - 4, as: UInt8.self), hi = s.load(fromByteOffset: j, as: UInt8.self)
        return (Float((a & 0xF) | ((lo >> 6) << 4)), Float((a >> 4) | ((hi >> 6) << 4)))
    }

    // MARK: Q4_K — d, dmin: f16; scales: 12 bytes of 6-bit (scale, min) pairs; qs: 128 bytes of nibbles

    @inline(__always) static func q4KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(p), dmin = f16(p, 2)
        let scales = p + 4
        let qs = p + 16
        for chunk in 0..<4 {
            let (sc1, m1) = scaleMin(2 * chunk, scales)
            let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
            let d1 = F8(repeating: d * sc1), mm1 = F8(repeating: dmin * m1)
            let d2 = F8(repeating: d * sc2), mm2 = F8(repeating: dmin * m2)
            let q = qs + chunk * 32
            for g in 0..<4 {
                let b = widen(q.loadUnaligned(fromByteOffset: 8 * g, as: SIMD8<UInt8>.self))
                storeF8(d1 * toFloat(b & 0xF) - mm1, y + chunk * 64 + 8 * g)
                storeF8(d2 * toFloat(b &>> 4) - mm2, y + chunk * 64 + 32 + 8 * g)
            }
        }
    }

    static func dequantizeQ4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<(n / 256) { q4KBlock(src + b * 144, dst + b * 256) }
    }

    // MARK: Q5_K — d, dmin: f16; scales: 12 bytes; qh: 32 bytes of fifth bits; qs: 128 bytes of nibbles

    @inline(__always) static func q5KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(p), dmin = f16(p, 2)
        let scales = p + 4
        let qh = p + 16
        let qs = p + 48
        for chunk in 0..<4 {
            let (sc1, m1) = scaleMin(2 * chunk, scales)
            let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
            let d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2
            let u1 = UInt8(1) << (2 * chunk), u2 = UInt8(2) << (2 * chunk)
            let q = qs + chunk * 32
            for l in 0..<32 {
                let ql = q.load(fromByteOffset: l, as: UInt8.self)
                let h = qh.load(fromByteOffset: l, as: UInt8.self)
                y[chunk * 64 + l] = d1 * Float(Int32(ql & 0xF) + (h & u1 != 0 ? 16 : 0)) - mm1
                y[chunk * 64 + 32 + l] = d2 * Float(Int32(ql >> 4) + (h & u2 != 0 ? 16 : 0)) - mm2
            }
        }
    }

    static func dequantizeQ5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<(n / 256) { q5KBlock(src + b * 176, dst + b * 256) }
    }

    // MARK: Q6_K — ql: 128 bytes (low 4 bits), qh: 64 bytes (high 2 bits), scales: int8[16], d: f16

    @inline(__always) static func q6KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(p, 208)
        for half in 0..<2 {
            let ql = p + half * 64
            let qh = p + 128 + half * 32
            let sc = p + 192 + half * 8
            let yy = y + half * 128
            for l in 0..<32 {
                let a = Int32(ql.load(fromByteOffset: l, as: UInt8.self))
                let b = Int32(ql.load(fromByteOffset: l + 32, as: UInt8.self))
                let h = Int32(qh.load(fromByteOffset: l, as: UInt8.self))
                let s = l / 16
                let q1 = ((a & 0xF) | ((h & 3) << 4)) - 32
                let q2 = ((b & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = ((b >> 4) | (((h >> 6) & 3) << 4)) - 32
                yy[l] = d * Float(sc.load(fromByteOffset: s, as: Int8.self)) * Float(q1)
                yy[l + 32] = d * Float(sc.load(fromByteOffset: s + 2, as: Int8.self)) * Float(q2)
                yy[l + 64] = d * Float(sc.load(fromByteOffset: s + 4, as: Int8.self)) * Float(q3)
                yy[l + 96] = d * Float(sc.load(fromByteOffset: s + 6, as: Int8.self)) * Float(q4)
            }
        }
    }

    static func dequantizeQ6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<(n / 256) { q6KBlock(src + b * 210, dst + b * 256) }
    }

    // MARK: fused dots: dequantize in registers, accumulate in fp32

    /// Q4_K: per 32-value sub-block, (d·sc)·Σq·x − (dmin·m)·Σx.
    static func dotQ4_K(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var total = F8()
        for b in 0..<(n / 256) {
            let p = src + b * 144
            let d = f16(p), dmin = f16(p, 2)
            let scales = p + 4, qs = p + 16
            let xb = x + b * 256
            for chunk in 0..<4 {
                let (sc1, m1) = scaleMin(2 * chunk, scales)
                let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
                var a1 = F8(), a2 = F8(), s1 = F8(), s2 = F8()
                let q = qs + chunk * 32
                let x1 = xb + chunk * 64, x2 = x1 + 32
                for g in 0..<4 {
                    let v = widen(q.loadUnaligned(fromByteOffset: 8 * g, as: SIMD8<UInt8>.self))
                    let xa = loadF8(x1 + 8 * g), xc = loadF8(x2 + 8 * g)
                    a1 = a1.addingProduct(toFloat(v & 0xF), xa)
                    a2 = a2.addingProduct(toFloat(v &>> 4), xc)
                    s1 += xa
                    s2 += xc
                }
                total = total.addingProduct(a1, F8(repeating: d * sc1))
                total = total.addingProduct(s1, F8(repeating: -(dmin * m1)))
                total = total.addingProduct(a2, F8(repeating: d * sc2))
                total = total.addingProduct(s2, F8(repeating: -(dmin * m2)))
            }
        }
        return total.sum()
    }

    /// Group g (values 8g… of each quarter) of a Q6_K half-block: the values at 8g, 8g + 32,
    /// 8g + 64 and 8g + 96 as fp32, and the scale (d times the group's int8) of each.
    @inline(__always) static func q6Group(_ ql: UnsafeRawPointer, _ qh: UnsafeRawPointer, _ sc: UnsafeRawPointer, _ g: Int,
                                          _ d: Float) -> (values: (F8, F8, F8, F8), scales: (F8, F8, F8, F8)) {
        let thirtyTwo = SIMD8<Int32>(repeating: 32)
        let l = 8 * g
        let s = l / 16
        let a = widen(ql.loadUnaligned(fromByteOffset: l, as: SIMD8<UInt8>.self))
        let c = widen(ql.loadUnaligned(fromByteOffset: l + 32, as: SIMD8<UInt8>.self))
        let h = widen(qh.loadUnaligned(fromByteOffset: l, as: SIMD8<UInt8>.self))
        let q1 = ((a & 0xF) | ((h & 3) &<< 4)) &- thirtyTwo
        let q2 = ((c & 0xF) | (((h &>> 2) & 3) &<< 4)) &- thirtyTwo
        let q3 = ((a &>> 4) | (((h &>> 4) & 3) &<< 4)) &- thirtyTwo
        let q4 = ((c &>> 4) | (((h &>> 6) & 3) &<< 4)) &- thirtyTwo
        @inline(__always) func scale(_ k: Int) -> F8 { F8(repeating: d * Float(sc.load(fromByteOffset: s + 2 * k, as: Int8.self))) }
        return ((toFloat(q1), toFloat(q2), toFloat(q3), toFloat(q4)), (scale(0), scale(1), scale(2), scale(3)))
    }

    /// Σ over one Q6_K group of value · x · scale into `total`, as `dotQ6_K` adds it.
    @inline(__always) static func addQ6Group(_ q: (values: (F8, F8, F8, F8), scales: (F8, F8, F8, F8)),
                                             _ xg: UnsafePointer<Float>, _ total: inout F8) {
        total = total.addingProduct(q.values.0 * loadF8(xg), q.scales.0)
        total = total.addingProduct(q.values.1 * loadF8(xg + 32), q.scales.1)
        total = total.addingProduct(q.values.2 * loadF8(xg + 64), q.scales.2)
        total = total.addingProduct(q.values.3 * loadF8(xg + 96), q.scales.3)
    }

    /// Q6_K: 16-value groups share an int8 scale; values are 6-bit (4 low + 2 high) minus 32.
    static func dotQ6_K(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var total = F8()
        for b in 0..<(n / 256) {
            let p = src + b * 210
            let d = f16(p, 208)
            for half in 0..<2 {
                let ql = p + half * 64, qh = p + 128 + half * 32, sc = p + 192 + half * 8
                let xh = x + b * 256 + half * 128
                for g in 0..<4 { addQ6Group(q6Group(ql, qh, sc, g, d), xh + 8 * g, &total) }
            }
        }
        return total.sum()
    }

    /// `dotQ4_K` of one row with four vectors x + j·stride: each weight group is unpacked once
    /// for all four, and every vector's sums take `dotQ4_K`'s operations in its order, so each
    /// result is bit for bit that vector's `dotQ4_K` (batched decode of `--weights file`).
    static func dotQ4_K4(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, stride: Int, _ n: Int) -> SIMD4<Float> {
        var total = (F8(), F8(), F8(), F8())
        for b in 0..<(n / 256) {
            let p = src + b * 144
            let d = f16(p), dmin = f16(p, 2)
            let scales = p + 4, qs = p + 16
            for chunk in 0..<4 {
                let (sc1, m1) = scaleMin(2 * chunk, scales)
                let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
                let q = qs + chunk * 32
                let o = b * 256 + chunk * 64
                // [vector]: a1, a2, s1, s2 of `dotQ4_K`.
                var a1 = (F8(), F8(), F8(), F8()), a2 = a1, s1 = a1, s2 = a1
                @inline(__always) func step(_ lo: F8, _ hi: F8, _ x1: UnsafePointer<Float>, _ a1: inout F8, _ a2: inout F8,
                                            _ s1: inout F8, _ s2: inout F8) {
                    let xa = loadF8(x1), xc = loadF8(x1 + 32)
                    a1 = a1.addingProduct(lo, xa)
                    a2 = a2.addingProduct(hi, xc)
                    s1 += xa
                    s2 += xc
                }
                for g in 0..<4 {
                    let v = widen(q.loadUnaligned(fromByteOffset: 8 * g, as: SIMD8<UInt8>.self))
                    let lo = toFloat(v & 0xF), hi = toFloat(v &>> 4)
                    let xg = x + o + 8 * g
                    step(lo, hi, xg, &a1.0, &a2.0, &s1.0, &s2.0)
                    step(lo, hi, xg + stride, &a1.1, &a2.1, &s1.1, &s2.1)
                    step(lo, hi, xg + 2 * stride, &a1.2, &a2.2, &s1.2, &s2.2)
                    step(lo, hi, xg + 3 * stride, &a1.3, &a2.3, &s1.3, &s2.3)
                }
                @inline(__always) func finish(_ a1: F8, _ s1: F8, _ a2: F8, _ s2: F8, _ total: inout F8) {
                    total = total.addingProduct(a1, F8(repeating: d * sc1))
                    total = total.addingProduct(s1, F8(repeating: -(dmin * m1)))
                    total = total.addingProduct(a2, F8(repeating: d * sc2))
                    total = total.addingProduct(s2, F8(repeating: -(dmin * m2)))
                }
                finish(a1.0, s1.0, a2.0, s2.0, &total.0)
                finish(a1.1, s1.1, a2.1, s2.1, &total.1)
                finish(a1.2, s1.2, a2.2, s2.2, &total.2)
                finish(a1.3, s1.3, a2.3, s2.3, &total.3)
            }
        }
        return SIMD4(total.0.sum(), total.1.sum(), total.2.sum(), total.3.sum())
    }

    /// `dotQ6_K` of one row with four vectors x + j·stride: the 6-bit values are unpacked once
    /// for all four (the costly part of Q6_K), each vector's sum then takes `dotQ6_K`'s
    /// operations in its order, bit for bit.
    static func dotQ6_K4(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, stride: Int, _ n: Int) -> SIMD4<Float> {
        var total = (F8(), F8(), F8(), F8())
        for b in 0..<(n / 256) {
            let p = src + b * 210
            let d = f16(p, 208)
            for half in 0..<2 {
                let ql = p + half * 64, qh = p + 128 + half * 32, sc = p + 192 + half * 8
                for g in 0..<4 {
                    let q = q6Group(ql, qh, sc, g, d)
                    let xg = x + b * 256 + half * 128 + 8 * g
                    addQ6Group(q, xg, &total.0)
                    addQ6Group(q, xg + stride, &total.1)
                    addQ6Group(q, xg + 2 * stride, &total.2)
                    addQ6Group(q, xg + 3 * stride, &total.3)
                }
            }
        }
        return SIMD4(total.0.sum(), total.1.sum(), total.2.sum(), total.3.sum())
    }

    /// Q5_K is not in the default model: dot through a per-block buffer.
    static func dotQ5_K(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { buf in
            let y = buf.baseAddress!
            var s: Float = 0
            for b in 0..<(n / 256) {
                q5KBlock(src + b * 176, y)
                s += dotF32(y, x + b * 256, 256)
            }
            return s
        }
    }
}
