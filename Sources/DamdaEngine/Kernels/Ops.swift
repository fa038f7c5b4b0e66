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
    public static func rope(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, dim: Int, nRot: Int,
                            positions: Range<Int>, base: Double, freqScale: Double) {
        let half = nRot / 2
        var cosT = [Float](repeating: 0, count: half), sinT = [Float](repeating: 0, count: half)
        for t in 0..<tokens {
            let pos = Double(positions.lowerBound + t) * freqScale
            for i in 0..<half {
                let a = pos * pow(base, -2.0 * Double(i) / Double(nRot))
                cosT[i] = Float(cos(a)); sinT[i] = Float(sin(a))
            }
            for h in 0..<heads {
                let p = x + (t * heads + h) * dim
                for i in 0..<half {
                    let x0 = p[i], x1 = p[i + half]
                    p[i] = x0 * cosT[i] - x1 * sinT[i]
                    p[i + half] = x0 * sinT[i] + x1 * cosT[i]
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

    /// Softmax of each row of `scores` over its first `valid(row)` entries; later entries become 0.
    /// Rows with a validity mask use -infinity for masked entries before calling.
    public static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows {
            let p = s + r * cols
            var m = -Float.infinity
            for j in 0..<cols where p[j] > m { m = p[j] }
            var sum: Float = 0
            for j in 0..<cols {
                let e = p[j] == -.infinity ? 0 : expf(p[j] - m)
                p[j] = e
                sum += e
            }
            let inv = 1 / sum
            for j in 0..<cols { p[j] *= inv }
        }
    }
}

extension Ops {
    /// Original (GPT-J / llama "NORM") rotary embedding: adjacent pairs (2i, 2i+1).
    public static func ropeInterleaved(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, dim: Int, nRot: Int,
                                       positions: Range<Int>, base: Double, freqScale: Double) {
        let half = nRot / 2
        for t in 0..<tokens {
            let pos = Double(positions.lowerBound + t) * freqScale
            for i in 0..<half {
                let a = pos * pow(base, -2.0 * Double(i) / Double(nRot))
                let cs = Float(cos(a)), sn = Float(sin(a))
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
