import Foundation

/// AdamW (Loshchilov & Hutter) as PyTorch implements it: decoupled weight decay, bias-corrected moments.
public final class AdamW: @unchecked Sendable {
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public let count: Int
    public let m: UnsafeMutablePointer<Float>
    public let v: UnsafeMutablePointer<Float>
    /// Updates taken so far (bias correction uses it).
    public var step = 0

    public init(count: Int, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        self.count = count; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = .allocate(capacity: max(count, 1)); m.initialize(repeating: 0, count: max(count, 1))
        v = .allocate(capacity: max(count, 1)); v.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { m.deallocate(); v.deallocate() }

    public func update(_ p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>, learningRate lr: Float) {
        step += 1
        let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
        let decay = 1 - lr * weightDecay
        for i in 0..<count {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            p[i] = p[i] * decay - lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
        }
    }
}

/// Linear warmup to the peak rate, then cosine decay to zero at the last step.
public struct LearningRateSchedule: Sendable {
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Float, warmupSteps: Int, totalSteps: Int) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = max(totalSteps, 1)
    }

    /// The rate for update `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Float(step - warmupSteps) / Float(span), 1)
        return peak * 0.5 * (1 + cosf(.pi * progress))
    }
}

/// Scales `g` so its global L2 norm is at most `maxNorm`; returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
    var ss = 0.0
    for i in 0..<count { ss += Double(g[i]) * Double(g[i]) }
    let norm = Float(ss.squareRoot())
    if maxNorm > 0, norm > maxNorm {
        let s = maxNorm / (norm + 1e-6)
        for i in 0..<count { g[i] *= s }
    }
    return norm
}
