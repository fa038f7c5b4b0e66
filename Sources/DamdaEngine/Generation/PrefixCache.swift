import Foundation

/// Keys and values of prompts already run, so a prompt that starts the same way (the same RAG
/// prompt again, a chat whose earlier turns were sent before, a long shared system text) skips
/// prefill for the shared part. A token's keys and values depend only on the tokens before it, but
/// prefill's matrix products round differently for different batch sizes; so prefill runs in
/// fixed slices from the prompt's start and a restored prefix is a whole number of slices: a hit
/// runs exactly the slices a miss runs, and its logits are bit for bit those of an uncached run
/// (tested). A prompt sent again whole (a client retrying, several clients with one system text
/// and question, a page reloaded) also keeps what its last position produced, the next token's
/// logits or greedy's pick, so it skips prefill entirely: those are the very values its own run
/// computed. Bound in bytes; least recently used prompts go first. One cache per model (and
/// adapter): another model's keys mean nothing here.
public final class PrefixCache: @unchecked Sendable {
    struct Entry {
        var tokens: [Int32]
        /// Per layer, `tokens.count` rows of keys (then values), fp32 like the KV cache.
        var keys: [[Float]]
        var values: [[Float]]
        /// What the last of `tokens` produced, for a prompt equal to `tokens`.
        var output: PromptOutput?
        var lastUse: UInt64
        var bytes: Int {
            (keys.reduce(0) { $0 + $1.count } + values.reduce(0) { $0 + $1.count } + (output?.logits?.count ?? 0) + (output?.state?.count ?? 0)) * 4 + tokens.count * 4
        }
    }

    /// What a prompt's last position produced: the next token's logits (sampling, the first-token
    /// gate), greedy's pick, and the residual stream after `stateLayer` (a refusal probe's
    /// input), whichever its run computed.
    public struct PromptOutput: Sendable {
        public var logits: [Float]?
        public var greedy: Int32?
        public var state: [Float]?
        public var stateLayer: Int?
        public init(logits: [Float]? = nil, greedy: Int32? = nil, state: [Float]? = nil, stateLayer: Int? = nil) {
            self.logits = logits; self.greedy = greedy; self.state = state; self.stateLayer = stateLayer
        }
    }

    public let maxBytes: Int
    /// Shared prefixes shorter than this are not worth a copy.
    public let minTokens: Int
    /// Prefill slice with a prefix cache: restored prefixes are multiples of it.
    public static let slice = 128
    let lock = NSLock()
    var entries: [Entry] = []
    var tick: UInt64 = 0
    public private(set) var hits = 0
    public private(set) var misses = 0
    /// Hits that restored a whole prompt and its last position's output: no prefill at all.
    public private(set) var wholeHits = 0
    /// Prompt tokens not run because their keys and values were copied.
    public private(set) var reusedTokens = 0

    public init(maxBytes: Int = 128 << 20, minTokens: Int = 16) {
        self.maxBytes = maxBytes
        self.minTokens = minTokens
    }

    public var bytes: Int { lock.withLock { entries.reduce(0) { $0 + $1.bytes } } }
    public var count: Int { lock.withLock { entries.count } }

    /// Copies the longest stored prefix of `prompt`, cut to a multiple of `slice` tokens, into the
    /// empty `cache` and returns its length (0 on a miss). At least the prompt's last token is left
    /// to run: its logits start decoding.
    public func restore(_ prompt: [Int32], into cache: KVCache, slice: Int) -> Int {
        precondition(cache.count == 0, "restore into an empty cache")
        return lock.withLock {
            var best = 0, bestIndex = -1
            for (i, e) in entries.enumerated() {
                let n = Self.commonPrefix(e.tokens, prompt)
                if n > best { best = n; bestIndex = i }
            }
            let n = min(best, prompt.count - 1, cache.capacity) / max(slice, 1) * max(slice, 1)
            guard bestIndex >= 0, n >= minTokens, n > 0, Self.fits(entries[bestIndex], cache) else {
                misses += 1
                return 0
            }
            copy(bestIndex, rows: n, into: cache)
            return n
        }
    }

    /// For a prompt stored whole with its last position's output: copies all its keys and values
    /// into the empty `cache` and returns that output, or nil (nothing copied) when no entry is
    /// this exact prompt or its entry lacks the logits a sampled or gated request needs, or the
    /// state after `stateLayer` a refusal probe reads.
    public func restoreWhole(_ prompt: [Int32], into cache: KVCache, needsLogits: Bool, stateLayer: Int? = nil) -> PromptOutput? {
        precondition(cache.count == 0, "restore into an empty cache")
        return lock.withLock {
            guard prompt.count <= cache.capacity,
                  let i = entries.firstIndex(where: { $0.tokens == prompt && Self.fits($0, cache) }),
                  let output = entries[i].output, output.logits != nil || (!needsLogits && output.greedy != nil),
                  stateLayer == nil || (output.stateLayer == stateLayer && output.state != nil) else { return nil }
            copy(i, rows: prompt.count, into: cache)
            wholeHits += 1
            return output
        }
    }

    /// Keeps the keys and values of `prompt` (the first `prompt.count` rows of `cache`) and, when
    /// given, what its last position produced. A stored prompt that this one extends is replaced;
    /// one that extends this one makes storing pointless.
    public func store(_ prompt: [Int32], from cache: KVCache, output: PromptOutput? = nil) {
        let n = min(prompt.count, cache.count)
        guard n >= minTokens else { return }
        let tokens = Array(prompt.prefix(n))
        let output = n == prompt.count ? output : nil
        let entrySize = (cache.layers * n * (cache.keyDim + cache.valueDim) + n + (output?.logits?.count ?? 0) + (output?.state?.count ?? 0)) * 4
        guard entrySize <= maxBytes else { return }
        lock.withLock {
            tick += 1
            if let i = entries.firstIndex(where: { $0.tokens.count >= n && Self.commonPrefix($0.tokens, tokens) == n }) {
                entries[i].lastUse = tick
                // The same prompt again: keep whichever outputs either run computed.
                if let output, entries[i].tokens.count == n {
                    var merged = entries[i].output ?? PromptOutput()
                    merged.logits = merged.logits ?? output.logits
                    merged.greedy = merged.greedy ?? output.greedy
                    if merged.state == nil, let state = output.state { (merged.state, merged.stateLayer) = (state, output.stateLayer) }
                    entries[i].output = merged
                    evictOverBound()
                }
                return
            }
            entries.removeAll { $0.tokens.count < n && Self.commonPrefix($0.tokens, tokens) == $0.tokens.count }
            let keys = (0..<cache.layers).map { Array(UnsafeBufferPointer(start: cache.keys[$0], count: n * cache.keyDim)) }
            let values = (0..<cache.layers).map { Array(UnsafeBufferPointer(start: cache.values[$0], count: n * cache.valueDim)) }
            entries.append(Entry(tokens: tokens, keys: keys, values: values, output: output, lastUse: tick))
            evictOverBound()
        }
    }

    /// Whether `e` holds keys and values of `cache`'s shape (another model's mean nothing here).
    static func fits(_ e: Entry, _ cache: KVCache) -> Bool {
        e.keys.count == cache.layers && e.keys.first.map { $0.count / max(e.tokens.count, 1) } == cache.keyDim
    }

    /// Copies the first `n` rows of entry `i` into the empty `cache` and counts the hit (the lock is held).
    private func copy(_ i: Int, rows n: Int, into cache: KVCache) {
        tick += 1
        entries[i].lastUse = tick
        let e = entries[i]
        for l in 0..<cache.layers {
            e.keys[l].withUnsafeBufferPointer { cache.keys[l].update(from: $0.baseAddress!, count: n * cache.keyDim) }
            e.values[l].withUnsafeBufferPointer { cache.values[l].update(from: $0.baseAddress!, count: n * cache.valueDim) }
        }
        cache.count = n
        hits += 1
        reusedTokens += n
    }

    /// Drops least recently used entries until the bound holds (the lock is held).
    private func evictOverBound() {
        var total = entries.reduce(0) { $0 + $1.bytes }
        while total > maxBytes, let oldest = entries.indices.min(by: { entries[$0].lastUse < entries[$1].lastUse }) {
            total -= entries[oldest].bytes
            entries.remove(at: oldest)
        }
    }

    public func clear() { lock.withLock { entries = [] } }

    /// How many leading tokens `a` and `b` share.
    public static func commonPrefix(_ a: [Int32], _ b: [Int32]) -> Int {
        var i = 0
        let n = min(a.count, b.count)
        while i < n && a[i] == b[i] { i += 1 }
        return i
    }
}
