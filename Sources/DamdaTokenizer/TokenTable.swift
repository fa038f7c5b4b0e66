/// Token ids by their UTF-8 bytes: every token's bytes in one buffer and an open-addressing table
/// of ids, about 5 MB for Gemma 3's 262,144 tokens where a `[[UInt8]: Int32]` dictionary took
/// about 20 (a heap array per key). Lookups take any byte collection without copying it.
/// Keyed by bytes, not `String`: Swift's String equality is canonical equivalence, which would
/// merge distinct tokens such as ";" (U+003B) and the Greek question mark (U+037E). A later
/// duplicate wins, as in llama.cpp.
public struct TokenTable: Sendable {
    private let bytes: [UInt8]
    /// Token i's bytes are bytes[offsets[i]..<offsets[i + 1]].
    private let offsets: [Int32]
    /// Token ids, -1 for an empty slot; a power of two at least twice the vocabulary.
    private let slots: [Int32]

    public init<S: Sequence>(_ tokens: S) where S.Element == String {
        self.init(utf8: tokens.lazy.map(\.utf8))
    }

    /// From each token's UTF-8 bytes.
    public init<S: Sequence>(utf8 tokens: S) where S.Element: Collection, S.Element.Element == UInt8 {
        var bytes: [UInt8] = [], offsets: [Int32] = [0]
        for t in tokens {
            bytes.append(contentsOf: t)
            offsets.append(Int32(bytes.count))
        }
        let count = offsets.count - 1
        var capacity = 16
        while capacity < 2 * count { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        let mask = capacity - 1
        for id in 0..<count {
            let key = bytes[Int(offsets[id])..<Int(offsets[id + 1])]
            var i = Self.hash(key) & mask
            while slots[i] >= 0 {
                let other = Int(slots[i])
                if bytes[Int(offsets[other])..<Int(offsets[other + 1])].elementsEqual(key) { break }
                i = (i + 1) & mask
            }
            slots[i] = Int32(id)
        }
        self.bytes = bytes; self.offsets = offsets; self.slots = slots
    }

    /// How many tokens (ids 0..<count).
    public var count: Int { offsets.count - 1 }

    /// Token `id`'s bytes.
    public func bytes(of id: Int32) -> ArraySlice<UInt8> {
        bytes[Int(offsets[Int(id)])..<Int(offsets[Int(id) + 1])]
    }

    /// Token `id`'s text.
    public func text(of id: Int32) -> String { String(decoding: bytes(of: id), as: UTF8.self) }

    /// FNV-1a over the bytes.
    static func hash<C: Collection>(_ key: C) -> Int where C.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 32))
    }

    public func id<C: Collection>(of key: C) -> Int32? where C.Element == UInt8 {
        let mask = slots.count - 1
        var i = Self.hash(key) & mask
        while slots[i] >= 0 {
            let id = Int(slots[i])
            let start = Int(offsets[id]), end = Int(offsets[id + 1])
            if end - start == key.count && bytes[start..<end].elementsEqual(key) { return Int32(id) }
            i = (i + 1) & mask
        }
        return nil
    }
}
