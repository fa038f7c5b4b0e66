import DamdaModelIO

/// llama.cpp's SPM tokenizer (`llm_tokenizer_spm`): characters are merged greedily, highest-score
/// pair first (ties: leftmost), symbols that are no token fall back to `<0xNN>` byte tokens.
public struct SentencePieceTokenizer: Tokenizer {
    let vocab: Vocabulary
    let scores: [Float]
    let byteIDs: [Int32]
    let addSpacePrefix: Bool

    public var vocabularySize: Int { vocab.count }
    public var bosID: Int32? { vocab.bos }
    public var eosID: Int32? { vocab.eos }
    public var endOfGeneration: Set<Int32> { vocab.endOfGeneration }

    public init(_ file: GGUFFile) throws {
        vocab = try Vocabulary(file, defaultAddBOS: true)
        if let s = file.metadata["tokenizer.ggml.scores"]?.array {
            guard s.count == vocab.count else { throw TokenizerError.inconsistent("\(s.count) scores for \(vocab.count) tokens") }
            scores = s.map { Float($0.double ?? 0) }
        } else {
            scores = Array(repeating: 0, count: vocab.count)
        }
        var bytes: [Int32] = []
        for b in 0..<256 {
            let name = "<0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true) + ">"
            guard let id = vocab.id(of: name) else { throw TokenizerError.inconsistent("no byte-fallback token \(name)") }
            bytes.append(id)
        }
        byteIDs = bytes
        addSpacePrefix = file.metadata["tokenizer.ggml.add_space_prefix"]?.bool ?? true
    }

    public func tokenText(_ id: Int32) -> String { vocab.text(of: id) }
    public func tokenID(_ text: String) -> Int32? { vocab.id(of: text) }

    public func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32] {
        var ids: [Int32] = []
        if addSpecial && vocab.addBOS, let b = vocab.bos { ids.append(b) }
        var prevSpecial = true
        for frag in vocab.partition(Array(text.utf8), parseSpecial: parseSpecial) {
            switch frag {
            case let .token(id):
                ids.append(id)
                prevSpecial = true
            case let .text(raw):
                var t = raw
                if addSpacePrefix && prevSpecial { t.insert(0x20, at: 0) }
                var escaped: [UInt8] = []
                escaped.reserveCapacity(t.count + 8)
                for b in t { if b == 0x20 { escaped += [0xE2, 0x96, 0x81] } else { escaped.append(b) } }  // U+2581
                spm(escaped, into: &ids)
                prevSpecial = false
            }
        }
        if addSpecial && vocab.addEOS, let e = vocab.eos { ids.append(e) }
        return ids
    }

    private struct Bigram: Comparable {
        let score: Float
        let left: Int
        let right: Int
        let size: Int
        // Max-heap order: higher score first, then the leftmost pair.
        static func < (a: Bigram, b: Bigram) -> Bool {
            if a.score != b.score { return a.score < b.score }
            if a.left != b.left { return a.left > b.left }
            if a.right != b.right { return a.right > b.right }
            return a.size > b.size
        }
    }

    private func lookup(_ bytes: ArraySlice<UInt8>) -> Int32? {
        vocab.idOf.id(of: bytes)
    }

    private func spm(_ text: [UInt8], into out: inout [Int32]) {
        guard !text.isEmpty else { return }
        // Symbols start as UTF-8 characters: (start, length) into `text`.
        var start: [Int] = [], len: [Int] = []
        var i = 0
        while i < text.count {
            let b = text[i]
            var n = b < 0x80 ? 1 : b >> 5 == 0x6 ? 2 : b >> 4 == 0xE ? 3 : b >> 3 == 0x1E ? 4 : 1
            n = min(n, text.count - i)
            start.append(i); len.append(n)
            i += n
        }
        let count = start.count
        var prev = Array(-1..<(count - 1))
        var next = Array(1...count)
        next[count - 1] = -1
        var heap = Heap<Bigram>()

        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let s = start[l], e = start[r] + len[r]
            guard let id = lookup(text[s..<e]) else { return }
            heap.push(Bigram(score: scores[Int(id)], left: l, right: r, size: e - s))
        }
        for k in 1..<max(count, 1) { tryAdd(k - 1, k) }
        while let bg = heap.pop() {
            let l = bg.left, r = bg.right
            guard len[l] > 0, len[r] > 0, len[l] + len[r] == bg.size else { continue }
            len[l] += len[r]
            len[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryAdd(prev[l], l)
            tryAdd(l, next[l])
        }
        var k = 0
        while k != -1 {
            let slice = text[start[k]..<(start[k] + len[k])]
            if let id = lookup(slice) { out.append(id) } else { for b in slice { out.append(byteIDs[Int(b)]) } }
            k = next[k]
        }
    }

    public func pieceBytes(_ id: Int32, showSpecial: Bool) -> [UInt8] {
        guard id >= 0, Int(id) < vocab.count else { return [] }
        let t = vocab.text(of: id)
        switch vocab.types[Int(id)] {
        case .byte:
            let hex = t.dropFirst(3).prefix(2)
            return [UInt8(hex, radix: 16) ?? 0x3F]
        case .control, .unknown, .unused:
            return showSpecial ? Array(t.utf8) : []
        default:
            var out: [UInt8] = []
            let u = Array(t.utf8)
            var j = 0
            while j < u.count {
                if j + 2 < u.count && u[j] == 0xE2 && u[j + 1] == 0x96 && u[j + 2] == 0x81 { out.append(0x20); j += 3 } else { out.append(u[j]); j += 1 }
            }
            return out
        }
    }
}

/// A small binary max-heap.
struct Heap<T: Comparable> {
    private var items: [T] = []
    mutating func push(_ x: T) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[p] < items[i] else { break }
            items.swapAt(p, i); i = p
        }
    }
    mutating func pop() -> T? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[m] < items[l] { m = l }
                if r < items.count && items[m] < items[r] { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}
