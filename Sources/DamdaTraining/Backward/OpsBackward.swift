import DamdaCore
import DamdaEngine
import Foundation

/// Backward passes of the elementwise and row-wise operations (fp32). Each is checked against
/// finite differences in `OpGradientTests`.
public enum OpsBackward {
    /// RMSNorm y = x · s · w with s = 1/√(mean(x²) + eps): dx (+)= s·(dy⊙w) − x · s³/n · Σ(dy⊙w⊙x).
    public static func rmsNorm(x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                               dx: UnsafeMutablePointer<Float>, rows: Int, n: Int, eps: Float, accumulate: Bool) {
        for r in 0..<rows {
            let xr = x + r * n, g = dy + r * n, o = dx + r * n
            var ss: Float = 0, dot: Float = 0
            for i in 0..<n { ss += xr[i] * xr[i]; dot += g[i] * w[i] * xr[i] }
            let s = 1 / (ss / Float(n) + eps).squareRoot()
            let c = s * s * s / Float(n) * dot
            if accumulate {
                for i in 0..<n { o[i] += s * g[i] * w[i] - xr[i] * c }
            } else {
                for i in 0..<n { o[i] = s * g[i] * w[i] - xr[i] * c }
            }
        }
    }

    /// The transpose of NEOX RoPE (rotation by −θ), in place: token t uses the table's row t.
    public static func rope(_ dx: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, dim: Int, table: RopeTable) {
        Ops.rope(dx, tokens: tokens, heads: heads, dim: dim, table: table, inverse: true)
    }

    /// The transpose of adjacent-pair (Llama "NORM") RoPE, in place.
    public static func ropeInterleaved(_ dx: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, dim: Int, table: RopeTable) {
        Ops.ropeInterleaved(dx, tokens: tokens, heads: heads, dim: dim, table: table, inverse: true)
    }

    /// a = silu(g) · u: dg = da · u · σ(g)(1 + g(1 − σ(g))), du = da · silu(g). `da` becomes dg.
    public static func siluGate(g: UnsafePointer<Float>, u: UnsafePointer<Float>, da: UnsafeMutablePointer<Float>,
                                du: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let x = g[i], sig = 1 / (1 + expf(-x)), d = da[i]
            du[i] = d * x * sig
            da[i] = d * u[i] * sig * (1 + x * (1 - sig))
        }
    }

    /// a = gelu_tanh(g) · u with t = tanh(√(2/π)(g + 0.044715 g³)) saved from the forward pass:
    /// dg = da · u · gelu′(g), du = da · gelu(g). `da` is overwritten by dg, `du` written.
    public static func geluGate(g: UnsafePointer<Float>, u: UnsafePointer<Float>, tanh t: UnsafePointer<Float>,
                                da: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>, _ n: Int) {
        let c: Float = 0.7978845608028654, k: Float = 0.044715
        for i in 0..<n {
            let x = g[i], ti = t[i], d = da[i]
            let gelu = 0.5 * x * (1 + ti)
            let dgelu = 0.5 * (1 + ti) + 0.5 * x * (1 - ti * ti) * c * (1 + 3 * k * x * x)
            du[i] = d * gelu
            da[i] = d * u[i] * dgelu
        }
    }

    /// gate = gelu_tanh(g) · u from the saved pre-activations (what the engine's forward computes).
    public static func geluGateForward(g: UnsafePointer<Float>, u: UnsafePointer<Float>, tanh t: UnsafePointer<Float>,
                                       out: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { out[i] = 0.5 * g[i] * (1 + t[i]) * u[i] }
    }

    /// Softmax backward for one row: dS = P ⊙ (dP − Σ dP⊙P), in place over dP.
    public static func softmax(p: UnsafePointer<Float>, dp: UnsafeMutablePointer<Float>, _ n: Int) {
        var dot: Float = 0
        for j in 0..<n { dot += dp[j] * p[j] }
        for j in 0..<n { dp[j] = p[j] * (dp[j] - dot) }
    }
}
