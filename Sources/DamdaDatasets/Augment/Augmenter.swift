import DamdaCore
import DamdaRetrieval
import Foundation

/// A question-answer line as `damda data` reads and writes it: KorQuAD-style fields plus where it
/// came from. Unknown fields of the input are not kept.
public struct QAExample: Codable, Sendable, Equatable {
    public var id: String
    public var question: String
    public var answers: [String]
    public var documentID: String?
    public var chunkID: String?
    public var evidence: String?
    /// A RAG context given with the question (the `rag` training format), if any.
    public var context: String?
    public var generator: String?
    /// How this line was derived from another: style:hapnida, question_word, spacing, number_format, context_order.
    public var augmentation: String?

    enum CodingKeys: String, CodingKey {
        case id, question, answers, evidence, context, generator, augmentation, documentID = "doc_id", chunkID = "chunk_id"
    }

    public init(_ q: SynthesizedQuestion) {
        id = q.id; question = q.question; answers = q.answers; documentID = q.documentID; chunkID = q.chunkID
        evidence = q.evidence; generator = q.generator
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        question = try c.decode(String.self, forKey: .question)
        if let s = try? c.decode(String.self, forKey: .id) { id = s } else if let n = try? c.decode(Int.self, forKey: .id) { id = "\(n)" } else { id = "" }
        if let a = try? c.decode([String].self, forKey: .answers) { answers = a }
        else if let a = try? c.decode(String.self, forKey: .answers) { answers = [a] } else { answers = [] }
        documentID = try c.decodeIfPresent(String.self, forKey: .documentID)
        chunkID = try c.decodeIfPresent(String.self, forKey: .chunkID)
        evidence = try c.decodeIfPresent(String.self, forKey: .evidence)
        context = try c.decodeIfPresent(String.self, forKey: .context)
        generator = try c.decodeIfPresent(String.self, forKey: .generator)
        augmentation = try c.decodeIfPresent(String.self, forKey: .augmentation)
    }

    /// A JSONL file's examples; malformed lines (or lines without a question and an answer) are counted.
    public static func read(_ path: String) throws -> (examples: [QAExample], skipped: Int) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DatasetError.badData("cannot read \(path)") }
        var out: [QAExample] = [], skipped = 0
        for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard var e = try? JSONDecoder().decode(QAExample.self, from: Data(line.utf8)), !e.question.isEmpty, !e.answers.isEmpty else {
                skipped += 1; continue
            }
            if e.id.isEmpty { e.id = "line-\(out.count + skipped)" }
            out.append(e)
        }
        return (out, skipped)
    }
}

/// The seed's augmentations: the same question restyled (해요체 ↔ 합니다체 ↔ 반말), with another
/// question word, with spacing or number formats people type, and a RAG context with its sentences
/// reordered. The answer is never changed.
public struct Augmenter: Sendable {
    /// Up to `factor − 1` variants per example, chosen by the seed.
    public var factor = 3
    public var seed: UInt64 = 0
    public init(factor: Int = 3, seed: UInt64 = 0) { self.factor = factor; self.seed = seed }

    static let questionWords: [(String, String)] = [
        ("얼마를", "어느 정도를"), ("얼마인가요", "얼마나 되나요"), ("무엇인가요", "뭔가요"), ("어디인가요", "어느 곳인가요"),
        ("언제", "어느 때"), ("무엇이라고", "뭐라고"),
    ]

    /// FNV-1a: the same on every run and machine (Swift's hashValue is seeded per process).
    static func stableHash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// Every variant the rules allow for `e`, tagged.
    public func candidates(_ e: QAExample) -> [QAExample] {
        var out: [QAExample] = []
        func add(_ q: String, _ tag: String) {
            guard q != e.question, !out.contains(where: { $0.question == q }) else { return }
            var v = e
            v.question = q
            v.augmentation = tag
            out.append(v)
        }
        for style in KoreanQuestions.Style.allCases {
            if let q = KoreanQuestions.restyle(e.question, to: style) { add(q, "style:\(style.rawValue)") }
        }
        for (a, b) in Self.questionWords where e.question.contains(a) { add(e.question.replacingOccurrences(of: a, with: b), "question_word") }
        // People often drop the space before a verb or particle: join the last two words.
        let words = e.question.split(separator: " ")
        if words.count >= 3 { add(words.dropLast(2).joined(separator: " ") + " " + words.suffix(2).joined(), "spacing") }
        for (pattern, template) in [("([0-9]+)만원", "$1만 원"), ("([0-9]+)만 원", "$1만원")] {
            let re = try! NSRegularExpression(pattern: pattern)
            let ns = e.question as NSString
            if re.firstMatch(in: e.question, range: NSRange(location: 0, length: ns.length)) != nil {
                add(re.stringByReplacingMatches(in: e.question, range: NSRange(location: 0, length: ns.length), withTemplate: template), "number_format")
            }
        }
        if let ctx = e.context {
            var sentences = SentenceSplitter.split(ctx)
            if sentences.count > 2 {
                var rng = SplitMix64(seed: seed ^ Self.stableHash(e.question))
                for i in stride(from: sentences.count - 1, to: 0, by: -1) { sentences.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                let shuffled = sentences.joined(separator: " ")
                if e.answers.allSatisfy({ shuffled.contains($0) }), shuffled != ctx {
                    var v = e
                    v.context = shuffled
                    v.augmentation = "context_order"
                    out.append(v)
                }
            }
        }
        return out
    }

    /// The example and up to `factor − 1` of its variants, ids suffixed with the variant number.
    public func augment(_ e: QAExample) -> [QAExample] {
        var rng = SplitMix64(seed: seed ^ Self.stableHash(e.id))
        var pool = candidates(e)
        for i in stride(from: pool.count - 1, to: 0, by: -1) { pool.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return [e] + pool.prefix(max(factor - 1, 0)).enumerated().map { n, v in
            var v = v
            v.id = e.id + "-aug\(n + 1)"
            return v
        }
    }
}
