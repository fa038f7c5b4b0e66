/// Vectorized transcendental functions for activations (fp32, ~1 ulp of the libm result over the
/// ranges used: |x| ≤ 88 for exp). Scalar libm calls were a tenth of prefill time.
import Foundation

/// Sixteen lanes as two 8-lane registers, every operation applied to both halves side by side.
/// Each function below is one long chain of dependent multiply-adds; written on one register, the
/// core waited on FMA latency (the compiler emits two calls' chains one after the other, not
/// interleaved). Two chains in lockstep keep the pipes busy: GELU and softmax 2× faster in e5.
/// A plain `SIMD16<Float>` is no substitute: its comparisons and blends compile to per-lane code.
struct F8x2 {
    var lo: F8, hi: F8

    typealias Mask = (lo: SIMDMask<SIMD8<Int32>>, hi: SIMDMask<SIMD8<Int32>>)

    @inline(__always) init(_ lo: F8, _ hi: F8) { self.lo = lo; self.hi = hi }
    @inline(__always) init(repeating v: Float) { lo = F8(repeating: v); hi = lo }
    @inline(__always) init(_ p: UnsafePointer<Float>) { lo = loadF8(p); hi = loadF8(p + 8) }

    /// The first `n` (< 16) values, the other lanes `fill`.
    @inline(__always) init(_ p: UnsafePointer<Float>, count n: Int, fill: Float) {
        var v = SIMD16<Float>(repeating: fill)
        for k in 0..<n { v[k] = p[k] }
        lo = v.lowHalf; hi = v.highHalf
    }

    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) { storeF8(lo, p); storeF8(hi, p + 8) }

    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>, count n: Int) {
        let v = SIMD16<Float>(lowHalf: lo, highHalf: hi)
        for k in 0..<n { p[k] = v[k] }
    }

    @inline(__always) static func + (a: F8x2, b: F8x2) -> F8x2 { F8x2(a.lo + b.lo, a.hi + b.hi) }
    @inline(__always) static func - (a: F8x2, b: F8x2) -> F8x2 { F8x2(a.lo - b.lo, a.hi - b.hi) }
    @inline(__always) static func * (a: F8x2, b: F8x2) -> F8x2 { F8x2(a.lo * b.lo, a.hi * b.hi) }
    @inline(__always) static func / (a: F8x2, b: F8x2) -> F8x2 { F8x2(a.lo / b.lo, a.hi / b.hi) }
    @inline(__always) static func .< (a: F8x2, b: F8x2) -> Mask { (a.lo .< b.lo, a.hi .< b.hi) }
    @inline(__always) static func .> (a: F8x2, b: F8x2) -> Mask { (a.lo .> b.lo, a.hi .> b.hi) }
    @inline(__always) static func .>= (a: F8x2, b: F8x2) -> Mask { (a.lo .>= b.lo, a.hi .>= b.hi) }

    /// self + a·b, fused.
    @inline(__always) func addingProduct(_ a: F8x2, _ b: F8x2) -> F8x2 {
        F8x2(lo.addingProduct(a.lo, b.lo), hi.addingProduct(a.hi, b.hi))
    }

    @inline(__always) func replacing(with other: F8x2, where m: Mask) -> F8x2 {
        F8x2(lo.replacing(with: other.lo, where: m.lo), hi.replacing(with: other.hi, where: m.hi))
    }

    @inline(__always) func sum() -> Float { (lo + hi).sum() }
    @inline(__always) func max() -> Float { lo.replacing(with: hi, where: hi .> lo).max() }

    /// 2^n for integer-valued lanes n (|n| ≤ 127) built in the exponent bits, where `biased` holds
    /// n + 1.5·2²³ (the rounding trick's result).
    @inline(__always) static func powerOfTwo(biased: F8x2) -> F8x2 {
        let magic = unsafeBitCast(F8(repeating: 12_582_912), to: SIMD8<Int32>.self)
        let lo = (unsafeBitCast(biased.lo, to: SIMD8<Int32>.self) &- magic &+ 127) &<< 23
        let hi = (unsafeBitCast(biased.hi, to: SIMD8<Int32>.self) &- magic &+ 127) &<< 23
        return F8x2(unsafeBitCast(lo, to: F8.self), unsafeBitCast(hi, to: F8.self))
    }
}

enum VectorMath {
    /// e^x: x = n·ln2 + r with |r| ≤ ln2/2, degree-6 polynomial for e^r, 2^n by exponent bits.
    @_transparent static func exp(_ x: F8x2) -> F8x2 {
        // Compare-and-blend rather than `clamped(lowerBound:upperBound:)`, whose generic
        // pointwiseMin/Max were left as out-of-line calls (4% of e5 ingest).
        let lo = F8x2(repeating: -87.3), hi = F8x2(repeating: 88.3)
        let clamped = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        // Round to nearest with the 1.5·2^23 trick: the integer lands in the low mantissa bits.
        let magic = F8x2(repeating: 12_582_912)
        let shifted = clamped * F8x2(repeating: 1.442695040888963) + magic
        let n = shifted - magic
        // Cody-Waite: ln2 split into a high part with trailing zeros and a small correction.
        let r = clamped.addingProduct(n, F8x2(repeating: -0.693359375)).addingProduct(n, F8x2(repeating: 2.12194440e-4))
        var p = F8x2(repeating: 1.9875691500e-4)
        p = F8x2(repeating: 1.3981999507e-3).addingProduct(p, r)
        p = F8x2(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = F8x2(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = F8x2(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = F8x2(repeating: 5.0000001201e-1).addingProduct(p, r)
        let er = (r + F8x2(repeating: 1)).addingProduct(p, r * r)
        let result = er * F8x2.powerOfTwo(biased: shifted)
        return result.replacing(with: F8x2(repeating: 0), where: x .< lo)
    }

    /// erfc(z) for z ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7 everywhere).
    @inline(__always) static func erfc(_ z: F8x2) -> F8x2 {
        let one = F8x2(repeating: 1)
        let t = one / (one + F8x2(repeating: 0.5) * z)
        var p = F8x2(repeating: 0.17087277)
        for c: Float in [-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223] {
            p = F8x2(repeating: c).addingProduct(p, t)
        }
        return t * exp(p - z * z)
    }

    /// gelu(v) = v/2 · (1 + erf(v/√2)), through erfc of |v|/√2 so that negative inputs keep their precision.
    @inline(__always) static func geluErf(_ v: F8x2) -> F8x2 {
        let zero = F8x2(repeating: 0), positive = v .>= zero
        let scaled = v * F8x2(repeating: 0.70710678118654752)
        let e = erfc(scaled.replacing(with: zero - scaled, where: v .< zero))
        // v ≥ 0: v/2 · (2 − erfc(v/√2)); v < 0: v/2 · erfc(|v|/√2).
        return F8x2(repeating: 0.5) * v * e.replacing(with: F8x2(repeating: 2) - e, where: positive)
    }

    /// tanh via e^(2y): 1 − 2/(e^(2y)+1); exact enough away from 0 and symmetric near it.
    @inline(__always) static func tanh(_ y: F8x2) -> F8x2 {
        let one = F8x2(repeating: 1)
        let t = one - F8x2(repeating: 2) / (exp(y + y) + one)
        // Near 0 the subtraction loses bits: use the odd series y − y³/3 + 2y⁵/15.
        let y2 = y * y
        let series = y * (one + y2 * (F8x2(repeating: -1.0 / 3) + y2 * F8x2(repeating: 2.0 / 15)))
        return t.replacing(with: series, where: y2 .< F8x2(repeating: 0.0004))
    }

    /// gelu_tanh(x) · up.
    @inline(__always) static func geluTanhGate(_ x: F8x2, _ up: F8x2) -> F8x2 {
        let t = tanh(F8x2(repeating: 0.7978845608028654) * (x + F8x2(repeating: 0.044715) * x * x * x))
        return F8x2(repeating: 0.5) * x * (F8x2(repeating: 1) + t) * up
    }
}

extension Ops {
    /// Applies `f` to `x[0..<n]` 16 lanes at a time, the last partial vector padded with `fill`.
    @inline(__always) static func map16(_ x: UnsafeMutablePointer<Float>, _ n: Int, fill: Float = 0, _ f: (F8x2) -> F8x2) {
        var i = 0
        while i + 16 <= n { f(F8x2(x + i)).store(x + i); i += 16 }
        if i < n { f(F8x2(x + i, count: n - i, fill: fill)).store(x + i, count: n - i) }
    }

    /// gate = gelu_tanh(gate) · up.
    public static func geluGateVector(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n { VectorMath.geluTanhGate(F8x2(gate + i), F8x2(up + i)).store(gate + i); i += 16 }
        if i < n {
            VectorMath.geluTanhGate(F8x2(gate + i, count: n - i, fill: 0), F8x2(up + i, count: n - i, fill: 0)).store(gate + i, count: n - i)
        }
    }

    /// In-place softmax of one row; -infinity entries become 0.
    public static func softmaxVector(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        let inv = F8(repeating: 1 / softmaxNumerators(p, n))
        var j = 0
        while j + 8 <= n { storeF8(loadF8(p + j) * inv, p + j); j += 8 }
        while j < n { p[j] *= inv[0]; j += 1 }
    }

    /// p = e^(p − max p) in place; returns Σ p. Callers that multiply the row by a matrix can
    /// divide the product's row by the sum instead of normalizing every entry.
    public static func softmaxNumerators(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        var top = F8x2(repeating: -.infinity)
        var j = 0
        while j + 16 <= n { let v = F8x2(p + j); top = top.replacing(with: v, where: v .> top); j += 16 }
        var m = top.max()
        while j < n { m = Swift.max(m, p[j]); j += 1 }
        let shift = F8x2(repeating: m)
        var sums = F8x2(repeating: 0)
        // An explicit loop, not `map16`: through its closure `exp` stayed an out-of-line call
        // (8% of e5 ingest with this function).
        j = 0
        while j + 16 <= n {
            let e = VectorMath.exp(F8x2(p + j) - shift)
            e.store(p + j)
            sums = sums + e
            j += 16
        }
        if j < n {
            // Padding lanes hold −∞, whose exponential is 0.
            let e = VectorMath.exp(F8x2(p + j, count: n - j, fill: -.infinity) - shift)
            e.store(p + j, count: n - j)
            sums = sums + e
        }
        return sums.sum()
    }

    /// x = e^x in place.
    public static func expVector(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        map16(x, n) { VectorMath.exp($0) }
    }

    /// x = gelu(x) = x/2 · (1 + erf(x/√2)) in place (BERT's exact GELU).
    public static func geluErfVector(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        map16(x, n) { VectorMath.geluErf($0) }
    }

    /// out = tanh(x) (the forward pass's own tanh, for training's saved activations).
    public static func tanhVector(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n { VectorMath.tanh(F8x2(x + i)).store(out + i); i += 16 }
        if i < n { VectorMath.tanh(F8x2(x + i, count: n - i, fill: 0)).store(out + i, count: n - i) }
    }
}
