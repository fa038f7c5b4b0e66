import DamdaModelIO

/// GPT-2 style byte-level BPE (`tokenizer.ggml.model = gpt2`, Llama 3 / Qwen 2): text is split by the
/// model's pre-tokenizer pattern, each piece's bytes are mapped to printable characters and merged
/// by rank from `tokenizer.ggml.merges`.
public struct BytePairTokenizer: Tokenizer {
    let vocab: Vocabulary
    /// Keyed by bytes for the same reason as the vocabulary.
    let mergeRank: [[UInt8]: Int]
    let pattern: String

    public var vocabularySize: Int { vocab.count }
    public var bosID: Int32? { vocab.bos }
    public var eosID: Int32? { vocab.eos }
    public var endOfGeneration: Set<Int32> { vocab.endOfGeneration }

    /// Pre-tokenizer patterns, as llama.cpp's `llm_tokenizer_bpe` chooses them by `tokenizer.ggml.pre`.
    static let patterns: [String: String] = [
        "gpt2": #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#,
        "llama3": #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
        "qwen2": #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
    ]

    public init(_ file: GGUFFile) throws {
        vocab = try Vocabulary(file, defaultAddBOS: false)
        guard let merges = file.metadata["tokenizer.ggml.merges"]?.array else { throw TokenizerError.missing("tokenizer.ggml.merges") }
        var ranks: [[UInt8]: Int] = [:]
        ranks.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() { if let s = m.string, ranks[Array(s.utf8)] == nil { ranks[Array(s.utf8)] = i } }
        mergeRank = ranks
        let pre = file.metadata["tokenizer.ggml.pre"]?.string ?? "gpt2"
        pattern = Self.patterns[pre] ?? Self.patterns[pre.hasPrefix("qwen") ? "qwen2" : pre.hasPrefix("llama") ? "llama3" : "gpt2"]!
    }

    public func tokenText(_ id: Int32) -> String { vocab.text(of: id) }
    public func tokenID(_ text: String) -> Int32? { vocab.id(of: text) }

    /// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards.
    static let byteToChar: [Character] = {
        var printable = Set<Int>()
        for r in [33...126, 161...172, 174...255] { for b in r { printable.insert(b) } }
        var extra = 0
        return (0..<256).map { b in
            if printable.contains(b) { return Character(Unicode.Scalar(UInt8(b))) }
            defer { extra += 1 }
            return Character(Unicode.Scalar(UInt32(256 + extra))!)
        }
    }()
    static let charToByte: [Character: UInt8] = {
        var m: [Character: UInt8] = [:]
        for (b, c) in byteToChar.enumerated() { m[c] = UInt8(b) }
        return m
    }()

    public func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32] {
        var ids: [Int32] = []
        if addSpecial && vocab.addBOS, let b = vocab.bos { ids.append(b) }
        let regex = try! Regex(pattern)
        for frag in vocab.partition(Array(text.utf8), parseSpecial: parseSpecial) {
            switch frag {
            case let .token(id): ids.append(id)
            case let .text(raw):
                let s = String(decoding: raw, as: UTF8.self)
                for match in s.matches(of: regex) { bpe(String(s[match.range]), into: &ids) }
            }
        }
        if addSpecial && vocab.addEOS, let e = vocab.eos { ids.append(e) }
        return ids
    }

    private func bpe(_ word: String, into out: inout [Int32]) {
        var parts = word.utf8.map { String(Self.byteToChar[Int($0)]) }
        if parts.count > 1 {
            while true {
                var best = Int.max, at = -1
                for i in 0..<(parts.count - 1) {
                    if let r = mergeRank[Array((parts[i] + " " + parts[i + 1]).utf8)], r < best { best = r; at = i }
                }
                if at < 0 { break }
                parts[at] += parts[at + 1]
                parts.remove(at: at + 1)
            }
        }
        for p in parts {
            if let id = vocab.id(of: p) { out.append(id) } else {
                // Unknown merged symbol: fall back to its single-byte symbols.
                for ch in p { if let id = vocab.id(of: String(ch)) { out.append(id) } }
            }
        }
    }

    public func pieceBytes(_ id: Int32, showSpecial: Bool) -> [UInt8] {
        guard id >= 0, Int(id) < vocab.count else { return [] }
        let t = vocab.text(of: id)
        switch vocab.types[Int(id)] {
        case .control, .unknown, .unused: return showSpecial ? Array(t.utf8) : []
        case .userDefined: return Array(t.utf8)
        default: return t.compactMap { Self.charToByte[$0] }
        }
    }
}
