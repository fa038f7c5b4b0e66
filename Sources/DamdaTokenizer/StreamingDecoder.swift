/// Turns token ids into text while streaming: a Korean syllable is 3 UTF-8 bytes and may span
/// byte-fallback tokens, so incomplete sequences are held back until the rest arrives.
public struct StreamingDecoder {
    private var pending: [UInt8] = []
    public let showSpecial: Bool

    public init(showSpecial: Bool = false) { self.showSpecial = showSpecial }

    /// Feeds one token; returns the text that is now complete (possibly empty).
    public mutating func push(_ id: Int32, tokenizer: any Tokenizer) -> String {
        push(bytes: tokenizer.pieceBytes(id, showSpecial: showSpecial))
    }

    public mutating func push(bytes: [UInt8]) -> String {
        pending += bytes
        // Find the longest prefix that does not end inside a UTF-8 sequence.
        var cut = pending.count
        var i = pending.count - 1
        var back = 0
        while i >= 0 && back < 4 {
            let b = pending[i]
            if b & 0xC0 == 0x80 { i -= 1; back += 1; continue }
            let need = b < 0x80 ? 1 : b >> 5 == 0x6 ? 2 : b >> 4 == 0xE ? 3 : b >> 3 == 0x1E ? 4 : 1
            if pending.count - i < need { cut = i }
            break
        }
        let out = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return out
    }

    /// Whatever is left (an incomplete sequence becomes U+FFFD).
    public mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}
