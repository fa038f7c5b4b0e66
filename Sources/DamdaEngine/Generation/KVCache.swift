/// fp32 key/value cache, one [capacity × kvDim] buffer per layer for keys and one for values.
/// Exactness rule: the cache keeps full fp32, like the reference.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let layers: Int
    public let keyDim: Int
    public let valueDim: Int
    /// Tokens stored so far (the next token's position).
    public internal(set) var count = 0
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    public init(layers: Int, capacity: Int, keyDim: Int, valueDim: Int) {
        self.capacity = capacity
        self.layers = layers
        self.keyDim = keyDim
        self.valueDim = valueDim
        keys = (0..<layers).map { _ in .allocate(capacity: capacity * keyDim) }
        values = (0..<layers).map { _ in .allocate(capacity: capacity * valueDim) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Forgets everything after `n` tokens (e.g. to reuse a shared prompt prefix).
    public func truncate(to n: Int) { count = min(count, max(0, n)) }
    public func reset() { count = 0 }
}
