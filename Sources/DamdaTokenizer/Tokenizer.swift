import DamdaModelIO

/// GGUF token types (sentencepiece / llama.cpp numbering).
public enum TokenType: Int32, Sendable {
    case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

public protocol Tokenizer: Sendable {
    var vocabularySize: Int { get }
    var bosID: Int32? { get }
    var eosID: Int32? { get }
    /// Tokens that end generation (EOS, `<end_of_turn>`, ...).
    var endOfGeneration: Set<Int32> { get }
    /// Text to ids. `addSpecial` adds BOS/EOS as the model's metadata says; `parseSpecial` turns
    /// control-token text such as `<start_of_turn>` into its token.
    func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32]
    /// The bytes a token stands for (empty for control tokens unless `showSpecial`).
    func pieceBytes(_ id: Int32, showSpecial: Bool) -> [UInt8]
    /// The token's vocabulary text, as stored.
    func tokenText(_ id: Int32) -> String
    func tokenID(_ text: String) -> Int32?
}

extension Tokenizer {
    public func encode(_ text: String) -> [Int32] { encode(text, addSpecial: true, parseSpecial: true) }

    public func decode(_ ids: [Int32], showSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes += pieceBytes(id, showSpecial: showSpecial) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

public enum TokenizerError: Error, CustomStringConvertible, Sendable {
    case unsupportedModel(String)
    case missing(String)
    case inconsistent(String)

    public var description: String {
        switch self {
        case let .unsupportedModel(m): "tokenizer model '\(m)' is not supported (llama/SentencePiece and gpt2/BPE are)"
        case let .missing(k): "tokenizer metadata '\(k)' is missing from the model: the GGUF is incomplete"
        case let .inconsistent(why): "tokenizer metadata is inconsistent: \(why)"
        }
    }
}

/// Builds the tokenizer a GGUF's metadata asks for.
public func makeTokenizer(_ file: GGUFFile) throws -> any Tokenizer {
    guard let model = file.metadata["tokenizer.ggml.model"]?.string else { throw TokenizerError.missing("tokenizer.ggml.model") }
    switch model {
    case "llama": return try SentencePieceTokenizer(file)
    case "gpt2": return try BytePairTokenizer(file)
    default: throw TokenizerError.unsupportedModel(model)
    }
}

/// Vocabulary arrays shared by both tokenizer kinds.
struct Vocabulary: Sendable {
    let types: [TokenType]
    let bos: Int32?
    let eos: Int32?
    let addBOS: Bool
    let addEOS: Bool
    let endOfGeneration: Set<Int32>
    /// Every token's bytes, and ids by bytes (see `TokenTable` for why not by String).
    let idOf: TokenTable
    /// Control/user-defined/unknown tokens, longest (UTF-8 bytes) first, split out before the model runs.
    let specials: [(id: Int32, bytes: [UInt8])]

    init(_ file: GGUFFile, defaultAddBOS: Bool) throws {
        guard let toks = file.metadata["tokenizer.ggml.tokens"]?.array else { throw TokenizerError.missing("tokenizer.ggml.tokens") }
        guard toks.elementType == .string else { throw TokenizerError.inconsistent("tokenizer.ggml.tokens holds \(toks.elementType), not strings") }
        let map = TokenTable(utf8: (0..<toks.count).lazy.map { toks.utf8(at: $0) })
        idOf = map
        if let ty = file.metadata["tokenizer.ggml.token_type"]?.array {
            guard ty.count == map.count else { throw TokenizerError.inconsistent("\(ty.count) token types for \(map.count) tokens") }
            types = ty.map { TokenType(rawValue: Int32($0.int ?? 1)) ?? .normal }
        } else {
            types = Array(repeating: .normal, count: map.count)
        }
        func id(_ key: String) -> Int32? {
            guard let v = file.metadata[key]?.int, v >= 0, v < toks.count else { return nil }
            return Int32(v)
        }
        bos = id("tokenizer.ggml.bos_token_id")
        eos = id("tokenizer.ggml.eos_token_id")
        addBOS = (file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? defaultAddBOS) && bos != nil
        addEOS = (file.metadata["tokenizer.ggml.add_eos_token"]?.bool ?? false) && eos != nil
        var eog = Set<Int32>()
        if let e = eos { eog.insert(e) }
        if let e = id("tokenizer.ggml.eot_token_id") { eog.insert(e) }
        for name in ["<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>"] {
            if let i = map.id(of: name.utf8), types[Int(i)] == .control || types[Int(i)] == .userDefined { eog.insert(i) }
        }
        endOfGeneration = eog
        var sp: [(Int32, [UInt8])] = []
        for (i, t) in types.enumerated() where t == .control || t == .userDefined || t == .unknown {
            let b = Array(map.bytes(of: Int32(i)))
            if !b.isEmpty { sp.append((Int32(i), b)) }
        }
        sp.sort { $0.1.count != $1.1.count ? $0.1.count > $1.1.count : $0.0 < $1.0 }
        specials = sp.map { (id: $0.0, bytes: $0.1) }
    }

    enum Fragment { case text([UInt8]), token(Int32) }

    /// llama.cpp's `tokenizer_st_partition`: split special-token text out of the raw text,
    /// longest token first. Control/unknown tokens only when `parseSpecial`.
    func partition(_ text: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var frags: [Fragment] = [.text(text)]
        var present = [Bool](repeating: false, count: 256)
        for b in text { present[Int(b)] = true }
        for (sid, st) in specials {
            let t = types[Int(sid)]
            if !parseSpecial && (t == .control || t == .unknown) { continue }
            guard present[Int(st[0])], st.count <= text.count else { continue }
            var out: [Fragment] = []
            var changed = false
            for f in frags {
                guard case let .text(val) = f else { out.append(f); continue }
                var start = 0, i = 0
                let n = val.count, m = st.count
                var pieces: [Fragment] = []
                while i + m <= n {
                    if val[i] == st[0] && val[i..<(i + m)].elementsEqual(st) {
                        if i > start { pieces.append(.text(Array(val[start..<i]))) }
                        pieces.append(.token(sid))
                        i += m
                        start = i
                    } else { i += 1 }
                }
                if pieces.isEmpty { out.append(f); continue }
                changed = true
                if start < n { pieces.append(.text(Array(val[start..<n]))) }
                out += pieces
            }
            if changed { frags = out }
        }
        return frags
    }

    func id(of text: String) -> Int32? { idOf.id(of: text.utf8) }

    var count: Int { idOf.count }
    func text(of id: Int32) -> String { idOf.text(of: id) }

    func isSpecialType(_ id: Int32) -> Bool {
        let t = types[Int(id)]
        return t == .control || t == .unknown || t == .unused
    }
}
