import Foundation

/// How the next token is picked. `temperature == 0` is greedy (argmax, ties to the lowest id).
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float = 0
    /// The k most likely tokens are the candidates; 0 means no top-k filter, but sampling still
    /// draws from the 1,024 most likely tokens (past that rank a 262k vocabulary's tail holds a
    /// negligible share at usual temperatures, and 1,024 candidates stay cheap to sort each step).
    public var topK: Int = 0
    public var topP: Float = 1
    public var minP: Float = 0
    public var repetitionPenalty: Float = 1
    /// How many recent tokens the repetition penalty looks at.
    public var repetitionWindow: Int = 64
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                repetitionPenalty: Float = 1, repetitionWindow: Int = 64, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.minP = minP
        self.repetitionPenalty = repetitionPenalty; self.repetitionWindow = repetitionWindow; self.seed = seed
    }

    public static let greedy = SamplingParameters()
}

/// xoshiro256** seeded by SplitMix64: reproducible across platforms for a given seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)
    public init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3; s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
}

public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: SeededGenerator

    public init(_ p: SamplingParameters) {
        parameters = p
        rng = SeededGenerator(seed: p.seed)
    }

    /// How many of the largest logits sampling draws from: `topK`, or 1,024 without it.
    public func candidateCount(vocabulary: Int) -> Int {
        let p = parameters
        return p.temperature <= 0 ? min(1, vocabulary) : p.topK > 0 ? min(p.topK, vocabulary) : min(vocabulary, 1024)
    }

    /// The tokens the repetition penalty changes, given the tokens so far (none without a penalty).
    public func penalized(history: [Int32]) -> Set<Int32> {
        parameters.repetitionPenalty == 1 ? [] : Set(history.suffix(parameters.repetitionWindow))
    }

    /// What a decode step must hand back for `sample(_ top:history:)` to draw the token that
    /// `sample(_ logits:history:)` draws from every logit: the exact logits of a set that holds the
    /// candidates after the penalty. A penalty lowers (or, below 1, raises) at most h = |penalized|
    /// of the k + h largest, so the k largest after it are among those and the penalized tokens.
    public func output(vocabulary: Int, history: [Int32]) -> DecodeOutput {
        let penalized = penalized(history: history).sorted()
        return .top(count: min(candidateCount(vocabulary: vocabulary) + penalized.count, vocabulary), including: penalized)
    }

    /// Picks the next token from `logits`, given the tokens so far (for the repetition penalty).
    public mutating func sample(_ logits: [Float], history: [Int32]) -> Int32 {
        var l = logits  // copied only if the penalty writes to it
        for t in penalized(history: history) where Int(t) < l.count { l[Int(t)] = penalize(l[Int(t)]) }
        if parameters.temperature <= 0 {
            return Int32(Ops.argmax(l))
        }
        let idx = l.withUnsafeBufferPointer { Self.topIndices($0, candidateCount(vocabulary: l.count)) }
        return draw(idx.map { Int32($0) }, idx.map { l[$0] })
    }

    /// Picks the next token from the logits a decode step gave for `output(vocabulary:history:)`:
    /// the same token `sample(_ logits:history:)` picks from every logit, drawing the same random number.
    public mutating func sample(_ top: TopLogits, history: [Int32]) -> Int32 {
        var values = top.values
        let penalized = penalized(history: history)
        if !penalized.isEmpty {
            for i in values.indices where penalized.contains(top.tokens[i]) { values[i] = penalize(values[i]) }
        }
        // Largest first, ties to the lower token (the tokens ascend, so the lower index): the order
        // `topIndices` gives over the whole vocabulary.
        let k = min(candidateCount(vocabulary: top.vocabulary), values.count)
        let order = values.withUnsafeBufferPointer { Self.topIndices($0, k) }
        if parameters.temperature <= 0 { return top.tokens[order[0]] }
        return draw(order.map { top.tokens[$0] }, order.map { values[$0] })
    }

    /// CTRL-style penalty as in llama.cpp: shrink positive logits, grow negative ones.
    private func penalize(_ l: Float) -> Float {
        l > 0 ? l / parameters.repetitionPenalty : l * parameters.repetitionPenalty
    }

    /// Temperature, softmax, min-p and top-p over the candidates (largest first), then one draw.
    private mutating func draw(_ tokens: [Int32], _ logits: [Float]) -> Int32 {
        let p = parameters
        let maxL = logits[0]
        var probs = logits.map { expf(($0 - maxL) / p.temperature) }
        var sum = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= sum }
        var n = probs.count
        if p.minP > 0 {
            let cut = probs[0] * p.minP
            n = max(1, probs.prefix(n).firstIndex(where: { $0 < cut }) ?? n)
        }
        if p.topP < 1 {
            var c: Float = 0
            for i in 0..<n {
                c += probs[i]
                if c >= p.topP { n = i + 1; break }
            }
        }
        sum = probs.prefix(n).reduce(0, +)
        var r = Float(Double(rng.next() >> 11) / Double(1 << 53)) * sum
        for i in 0..<n {
            r -= probs[i]
            if r <= 0 { return tokens[i] }
        }
        return tokens[n - 1]
    }

    /// The indices of the `k` largest values, largest first, ties to the lower index.
    ///
    /// Over a 262k vocabulary a bounded insertion list took milliseconds per token; here one pass
    /// histograms order-preserving keys of the values (sign, exponent and 3 mantissa bits), the
    /// buckets from the top down give a threshold that keeps at least `k`, and only the values at or
    /// above it (k plus part of one bucket) are sorted.
    public static func topIndices(_ values: UnsafeBufferPointer<Float>, _ k: Int) -> [Int] {
        let n = values.count, k = min(k, n)
        guard k > 0 else { return [] }
        func before(_ a: Int, _ b: Int) -> Bool { values[a] > values[b] || (values[a] == values[b] && a < b) }
        guard n > 4 * k, n > 4096 else { return Array((0..<n).sorted(by: before).prefix(k)) }
        // Unsigned keys that sort as the floats do: flip every bit of negatives, the sign bit of the rest.
        @inline(__always) func bucket(_ v: Float) -> Int {
            let b = v.bitPattern
            return Int((b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000) >> 20)
        }
        var counts = [Int](repeating: 0, count: 4096)
        for v in values { counts[bucket(v)] += 1 }
        var threshold = 4095, kept = counts[4095]
        while kept < k { threshold -= 1; kept += counts[threshold] }
        var chosen: [Int] = []
        chosen.reserveCapacity(kept)
        for i in 0..<n where bucket(values[i]) >= threshold { chosen.append(i) }
        chosen.sort(by: before)
        return Array(chosen.prefix(k))
    }
}
