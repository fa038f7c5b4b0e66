/// ggml's 256-value "K" super-block formats: Q4_K, Q5_K, Q6_K (layouts from ggml-quants.c).
/// Dot products dequantize one super-block at a time into an L1-resident buffer, then run an fp32 dot.
enum KQuants {
    @inline(__always) static func scaleMin(_ j: Int, _ s: UnsafeRawPointer) -> (Float, Float) {
        let q = { (i: Int) -> UInt8 in s.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (Float(q(j) & 63), Float(q(j + 4) & 63)) }
        let sc = (q(j + 4) & 0xF) | ((q(j - 4) >> 6) << 4)
        let m = (q(j + 4) >> 4) | ((q(j) >> 6) << 4)
        return (Float(sc), Float(m))
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
                let b = SIMD8<Int32>(truncatingIfNeeded: q.loadUnaligned(fromByteOffset: 8 * g, as: SIMD8<UInt8>.self))
                storeF8(d1 * F8(b & 0xF) - mm1, y + chunk * 64 + 8 * g)
                storeF8(d2 * F8(b &>> 4) - mm2, y + chunk * 64 + 32 + 8 * g)
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

    // MARK: dots through a per-block buffer

    @inline(__always) static func dotVia(_ block: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void, bytes: Int,
                                         _ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { buf in
            let y = buf.baseAddress!
            var s: Float = 0
            for b in 0..<(n / 256) {
                block(src + b * bytes, y)
                s += dotF32(y, x + b * 256, 256)
            }
            return s
        }
    }

    static func dotQ4_K(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float { dotVia(q4KBlock, bytes: 144, src, x, n) }
    static func dotQ5_K(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float { dotVia(q5KBlock, bytes: 176, src, x, n) }
    static func dotQ6_K(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float { dotVia(q6KBlock, bytes: 210, src, x, n) }
}
