import DamdaCore
import Foundation

/// Elementwise and row-wise operations of the forward pass (fp32 in and out).
public enum Ops {
    /// out[r] = x[r] / sqrt(mean(x[r]²) + eps) * w   for each of `rows` rows of length `n` (in place allowed).
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                               rows: Int, n: Int, eps: Float) {
        for r in 0..<rows {
            let xr = x + r * n, o = out + r * n
            let ss = dotF32(xr, xr, n)
            let scale = 1 / (ss / Float(n) + eps).squareRoot()
            var i = 0
            while i + 8 <= n { storeF8(loadF8(xr + i) * F8(repeating: scale) * loadF8(w + i), o + i); i += 8 }
            while i < n { o[i] = xr[i] * scale * w[i]; i += 1 }
        }
    }

    /// NEOX-style rotary embedding over `heads` heads of `dim` values per token: pairs (i, i + nRot/2).
    /// `inverse` rotates by −θ, the transpose the backward pass applies to gradients.
    /// Rotates tokens `first ..< tokens` (so `tokens` is one past the last; the ones before `first`
    /// are left alone), for splitting a prompt over threads.
    public static func rope(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, dim: Int, table: RopeTable,
                            inverse: Bool = false, first: Int = 0) {
        let half = table.half
        let sign: Float = inverse ? -1 : 1
        table.cos.withUnsafeBufferPointer { cp in
            table.sin.withUnsafeBufferPointer { sp in
                for t in first..<tokens {
                    let c = cp.baseAddress! + t * half, s = sp.baseAddress! + t * half
                    for h in 0..<heads {
                        let p = x + (t * heads + h) * dim
                        var i = 0
                        while i + 8 <= half {
                            let x0 = loadF8(p + i), x1 = loadF8(p + i + half)
                            let cv = loadF8(c + i), sv = loadF8(s + i) * F8(repeating: sign)
                            storeF8(x0 * cv - x1 * sv, p + i)
                            storeF8(x0 * sv + x1 * cv, p + i + half)
                            i += 8
                        }
                        while i < half {
                            let x0 = p[i], x1 = p[i + half], si = s[i] * sign
                            p[i] = x0 * c[i] - x1 * si
                            p[i + half] = x0 * si + x1 * c[i]
                            i += 1
                        }
                    }
                }
            }
        }
    }

    /// gate = gelu_tanh(gate) * up, elementwise.
    public static func geluGate(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        let c: Float = 0.7978845608028654  // sqrt(2/pi)
        for i in 0..<n {
            let x = gate[i]
            gate[i] = 0.5 * x * (1 + tanhf(c * (x + 0.044715 * x * x * x))) * up[i]
        }
    }

    /// gate = silu(gate) * up, elementwise (Llama family).
    public static func siluGate(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let x = gate[i]
            gate[i] = x / (1 + expf(-x)) * up[i]
        }
    }

    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n { storeF8(loadF8(a + i) + loadF8(b + i), a + i); i += 8 }
        while i < n { a[i] += b[i]; i += 1 }
    }

    public static func scale(_ a: UnsafeMutablePointer<Float>, _ s: Float, _ n: Int) {
        for i in 0..<n { a[i] *= s }
    }

    /// Index of the largest value, the lowest index among ties: greedy decoding's pick over a
    /// 262k vocabulary, eight lanes at a time (a scalar loop took a few hundred µs per token).
    public static func argmax(_ values: [Float]) -> Int {
        values.withUnsafeBufferPointer { argmax($0.baseAddress!, $0.count) }
    }

    public static func argmax(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
        guard n >= 8 else {
            var at = 0
            for i in 1..<max(n, 1) where p[i] > p[at] { at = i }
            return at
        }
        var best = loadF8(p), bestIndex = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
        var index = bestIndex &+ 8
        var i = 8
        while i + 8 <= n {
            let v = loadF8(p + i)
            // Strictly greater: each lane keeps its first (lowest) index of a tie.
            let better = v .> best
            best.replace(with: v, where: better)
            bestIndex.replace(with: index, where: better)
            index &+= 8
            i += 8
        }
        var top = best[0], at = Int(bestIndex[0])
        for l in 1..<8 where best[l] > top || (best[l] == top && Int(bestIndex[l]) < at) {
            top = best[l]; at = Int(bestIndex[l])
        }
        while i < n {
            if p[i] > top { top = p[i]; at = i }
            i += 1
        }
        return at
    }

}

extension Ops {
    /// Original (GPT-J / llama "NORM") rotary embedding: adjacent pairs (2i, 2i+1).
    public static func ropeInterleaved(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, dim: Int, table: RopeTable,
                                       inverse: Bool = false) {
        let half = table.half
        let sign: Float = inverse ? -1 : 1
        for t in 0..<tokens {
            for i in 0..<half {
                let cs = table.cos[t * half + i], sn = table.sin[t * half + i] * sign
                for h in 0..<heads {
                    let p = x + (t * heads + h) * dim + 2 * i
                    let x0 = p[0], x1 = p[1]
                    p[0] = x0 * cs - x1 * sn
                    p[1] = x0 * sn + x1 * cs
                }
            }
        }
    }

    /// Adds a bias vector to each of `rows` rows.
    public static func addBias(_ x: UnsafeMutablePointer<Float>, _ b: [Float], rows: Int) {
        let n = b.count
        b.withUnsafeBufferPointer { bp in for r in 0..<rows { add(x + r * n, bp.baseAddress!, n) } }
    }
}

/// cos/sin of every (position, frequency) pair for one forward pass, computed once in float64
/// and shared by all layers with the same base.
public struct RopeTable {
    public let half: Int
    public let cos: [Float]
    public let sin: [Float]

    public init(positions: Range<Int>, nRot: Int, base: Double, freqScale: Double) {
        self.init(positions: Array(positions), nRot: nRot, base: base, freqScale: freqScale)
    }

    /// Rows for arbitrary positions: one per sequence of a decode batch, each at its own length.
    public init(positions: [Int], nRot: Int, base: Double, freqScale: Double) {
        half = nRot / 2
        let inv = (0..<half).map { Foundation.pow(base, -2.0 * Double($0) / Double(nRot)) }
        var c = [Float](repeating: 0, count: positions.count * half), s = c
        for (t, pos) in positions.enumerated() {
            let p = Double(pos) * freqScale
            for i in 0..<half {
                c[t * half + i] = Float(Foundation.cos(p * inv[i]))
                s[t * half + i] = Float(Foundation.sin(p * inv[i]))
            }
        }
        cos = c
        sin = s
    }
}
