/// Vectorized transcendental functions for activations (fp32, ~1 ulp of the libm result over the
/// ranges used: |x| ≤ 88 for exp). Scalar libm calls were a tenth of prefill time.
import Foundation

enum VectorMath {
    /// e^x for 8 lanes: x = n·ln2 + r with |r| ≤ ln2/2, degree-6 polynomial for e^r, 2^n by exponent bits.
    @inline(__always) static func exp(_ x: F8) -> F8 {
        // Compare-and-blend rather than `clamped(lowerBound:upperBound:)`, whose generic
        // pointwiseMin/Max were left as out-of-line calls (4% of e5 ingest).
        let lo = F8(repeating: -87.3), hi = F8(repeating: 88.3)
        let clamped = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        // Round to nearest with the 1.5·2^23 trick: the integer lands in the low mantissa bits.
        let magic = F8(repeating: 12_582_912)
        let shifted = clamped * F8(repeating: 1.442695040888963) + magic
        let n = shifted - magic
        // Cody-Waite: ln2 split into a high part with trailing zeros and a small correction.
        let r = clamped.addingProduct(n, F8(repeating: -0.693359375)).addingProduct(n, F8(repeating: 2.12194440e-4))
        var p = F8(repeating: 1.9875691500e-4)
        p = F8(repeating: 1.3981999507e-3).addingProduct(p, r)
        p = F8(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = F8(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = F8(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = F8(repeating: 5.0000001201e-1).addingProduct(p, r)
        let r2 = r * r
        let er = (r + F8(repeating: 1)).addingProduct(p, r2)
        let ni = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let bits = (ni &+ 127) &<< 23
        let result = er * unsafeBitCast(bits, to: F8.self)
        return result.replacing(with: 0, where: x .< -87.3)
    }

    /// erfc(z) for z ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7 everywhere).
    @inline(__always) static func erfc(_ z: F8) -> F8 {
        let one = F8(repeating: 1)
        let t = one / (one + F8(repeating: 0.5) * z)
        var p = F8(repeating: 0.17087277)
        for c: Float in [-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223] {
            p = F8(repeating: c).addingProduct(p, t)
        }
        return t * exp(p - z * z)
    }

    /// tanh via e^(2y): 1 − 2/(e^(2y)+1); exact enough away from 0 and symmetric near it.
    @inline(__always) static func tanh(_ y: F8) -> F8 {
        let e = exp(y * 2)
        var t = F8(repeating: 1) - F8(repeating: 2) / (e + 1)
        // Near 0 the subtraction loses bits: use the odd series y − y³/3 + 2y⁵/15.
        let y2 = y * y
        let series = y * (F8(repeating: 1) + y2 * (F8(repeating: -1.0 / 3) + y2 * F8(repeating: 2.0 / 15)))
        t.replace(with: series, where: y2 .< 0.0004)
        return t
    }
}

extension Ops {
    /// gate = gelu_tanh(gate) · up, 8 lanes at a time.
    public static func geluGateVector(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        let c = F8(repeating: 0.7978845608028654), k = F8(repeating: 0.044715), half = F8(repeating: 0.5), one = F8(repeating: 1)
        var i = 0
        while i + 8 <= n {
            let x = loadF8(gate + i)
            let t = VectorMath.tanh(c * (x + k * x * x * x))
            storeF8(half * x * (one + t) * loadF8(up + i), gate + i)
            i += 8
        }
        if i < n { geluGate(gate + i, up + i, n - i) }
    }

    /// In-place softmax of one row; -infinity entries become 0.
    public static func softmaxVector(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        var m = -Float.infinity
        var j = 0
        if n >= 8 {
            var mv8 = loadF8(p)
            j = 8
            while j + 8 <= n { let v = loadF8(p + j); mv8.replace(with: v, where: v .> mv8); j += 8 }
            m = mv8.max()
        }
        while j < n { if p[j] > m { m = p[j] }; j += 1 }
        let mv = F8(repeating: m)
        var acc = F8()
        j = 0
        while j + 8 <= n {
            let e = VectorMath.exp(loadF8(p + j) - mv)
            storeF8(e, p + j)
            acc += e
            j += 8
        }
        var sum = acc.sum()
        while j < n { let e = p[j] == -.infinity ? 0 : expf(p[j] - m); p[j] = e; sum += e; j += 1 }
        let inv = F8(repeating: 1 / sum)
        j = 0
        while j + 8 <= n { storeF8(loadF8(p + j) * inv, p + j); j += 8 }
        while j < n { p[j] *= 1 / sum; j += 1 }
    }
}

extension Ops {
    /// x = e^x in place, 8 lanes at a time.
    public static func expVector(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n { storeF8(VectorMath.exp(loadF8(x + i)), x + i); i += 8 }
        while i < n { x[i] = expf(x[i]); i += 1 }
    }

    /// x = gelu(x) = x/2 · (1 + erf(x/√2)) in place (BERT's exact GELU), 8 lanes at a time.
    public static func geluErfVector(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        let half = F8(repeating: 0.5), zero = F8(), invSqrt2 = F8(repeating: 0.70710678118654752)
        var i = 0
        while i + 8 <= n {
            let v = loadF8(x + i)
            let e = VectorMath.erfc((v * invSqrt2).replacing(with: zero, where: v .< zero) - (v * invSqrt2).replacing(with: zero, where: v .>= zero))
            // x ≥ 0: x/2 · (2 − erfc(x/√2)); x < 0: x/2 · erfc(|x|/√2).
            let factor = e.replacing(with: F8(repeating: 2) - e, where: v .>= zero)
            storeF8(half * v * factor, x + i)
            i += 8
        }
        while i < n { let z = x[i]; x[i] = 0.5 * z * (1 + erff(z * 0.70710678118654752)); i += 1 }
    }

    /// out = tanh(x), 8 lanes at a time (the forward pass's own tanh, for training's saved activations).
    public static func tanhVector(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n { storeF8(VectorMath.tanh(loadF8(x + i)), out + i); i += 8 }
        while i < n { out[i] = tanhf(x[i]); i += 1 }
    }
}
