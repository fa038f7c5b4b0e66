/// A passage of a document that is indexed and retrieved on its own.
public struct Chunk: Sendable, Codable, Equatable {
    public var documentID: String
    public var ordinal: Int
    public var text: String
    public var title: String
    public var source: String
    public var headingPath: [String]
    public var page: Int?

    public var id: String { "\(documentID)#\(ordinal)" }

    public init(documentID: String, ordinal: Int, text: String, title: String, source: String, headingPath: [String] = [], page: Int? = nil) {
        self.documentID = documentID; self.ordinal = ordinal; self.text = text; self.title = title
        self.source = source; self.headingPath = headingPath; self.page = page
    }
}

/// Packs whole sentences into chunks of at most `maxTokens` (as counted by `count`), carrying
/// the last `overlapTokens` worth of sentences into the next chunk. A sentence longer than the
/// budget is cut at the budget (the only case where a sentence is split).
public struct Chunker: Sendable {
    public var maxTokens: Int
    public var overlapTokens: Int
    public var count: @Sendable (String) -> Int

    /// Default budget: 256 (approximate) tokens scored best for BM25 on the KorQuAD split (README).
    public init(maxTokens: Int = 256, overlapTokens: Int = 48, count: @escaping @Sendable (String) -> Int = Chunker.approximateTokens) {
        self.maxTokens = maxTokens
        self.overlapTokens = overlapTokens
        self.count = count
    }

    /// Roughly Gemma's rate on Korean text: about 1.9 characters per token.
    public static let approximateTokens: @Sendable (String) -> Int = { s in max(1, (s.count * 10 + 18) / 19) }

    public func chunk(_ doc: Document) -> [Chunk] {
        var out: [Chunk] = []
        for section in doc.sections {
            var sentences: [(String, Int)] = []
            for s in SentenceSplitter.split(section.text) {
                let n = count(s)
                if n <= maxTokens { sentences.append((s, n)); continue }
                // Over-long sentence: cut by characters proportionally.
                let chars = Array(s)
                let per = max(1, chars.count * maxTokens / n)
                var i = 0
                while i < chars.count {
                    let piece = String(chars[i..<min(i + per, chars.count)])
                    sentences.append((piece, count(piece)))
                    i += per
                }
            }
            var cur: [(String, Int)] = []
            var curTokens = 0
            func emit() {
                guard !cur.isEmpty else { return }
                out.append(Chunk(documentID: doc.id, ordinal: out.count, text: cur.map(\.0).joined(separator: " "),
                                 title: doc.title, source: doc.source, headingPath: section.headingPath, page: section.page))
            }
            for (s, n) in sentences {
                if curTokens + n > maxTokens && !cur.isEmpty {
                    emit()
                    // Keep trailing sentences up to the overlap budget.
                    var keep: [(String, Int)] = []
                    var k = 0
                    for item in cur.reversed() {
                        if k + item.1 > overlapTokens { break }
                        keep.insert(item, at: 0); k += item.1
                    }
                    cur = keep; curTokens = k
                }
                cur.append((s, n)); curTokens += n
            }
            emit()
        }
        return out
    }
}
