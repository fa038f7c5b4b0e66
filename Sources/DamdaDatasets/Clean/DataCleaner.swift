import DamdaGuardrails
import DamdaRetrieval
import Foundation

/// `damda data clean`: standard text (NFC, whitespace, quotes and full-width punctuation),
/// duplicates removed, questions the documents do not answer dropped (their best chunk passes
/// neither relevance rule of the assistant's gate), personal data masked (`[주민등록번호]`, the
/// guardrails' detector), and a split by source document so that no test question's passage is trained on.
public struct DataCleaner {
    /// With an index, drop questions whose best chunk is irrelevant (off-domain noise).
    public var index: SearchIndex?
    public var mode: SearchMode = .bm25
    public var minRelevance: Float = 0.3
    public var minSimilarity: Float? = 0.88
    /// Mask personal data in questions, answers, contexts and evidence (nil: leave it).
    public var pii: PIIDetector? = PIIDetector()
    public init() {}

    public struct Summary: Codable, Sendable {
        public var read = 0, kept = 0, duplicates = 0, empty = 0, offDomain = 0, changed = 0
        /// Examples with personal data masked, and the findings by type.
        public var piiMasked = 0
        public var piiByType: [String: Int] = [:]
        enum CodingKeys: String, CodingKey { case read, kept, duplicates, empty, changed, offDomain = "off_domain", piiMasked = "pii_masked", piiByType = "pii_by_type" }
    }

    static let replacements: [(String, String)] = [
        ("“", "\""), ("”", "\""), ("‘", "'"), ("’", "'"), ("？", "?"), ("！", "!"), ("，", ","), ("．", "."), ("：", ":"),
        ("（", "("), ("）", ")"), ("\u{00A0}", " "), ("\u{200B}", ""), ("\u{FEFF}", ""),
    ]

    /// NFC, the replacements, runs of whitespace as one space, repeated ?/! as one.
    public static func standardize(_ s: String) -> String {
        var t = s.precomposedStringWithCanonicalMapping
        for (a, b) in replacements { t = t.replacingOccurrences(of: a, with: b) }
        t = t.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        while t.contains("??") { t = t.replacingOccurrences(of: "??", with: "?") }
        while t.contains("!!") { t = t.replacingOccurrences(of: "!!", with: "!") }
        return t.trimmingCharacters(in: .whitespaces)
    }

    public func clean(_ examples: [QAExample]) throws -> (examples: [QAExample], summary: Summary) {
        var s = Summary()
        var seen = Set<String>()
        var out: [QAExample] = []
        for var e in examples {
            s.read += 1
            let before = e
            e.question = Self.standardize(e.question)
            e.answers = e.answers.map(Self.standardize).filter { !$0.isEmpty }
            if let c = e.context { e.context = c.precomposedStringWithCanonicalMapping }
            if let pii {
                var found = false
                func scrub(_ text: String) -> String {
                    let f = pii.findings(in: text)
                    guard !f.isEmpty else { return text }
                    found = true
                    for x in f { s.piiByType[x.type.rawValue, default: 0] += 1 }
                    return pii.masked(text, findings: f)
                }
                e.question = scrub(e.question)
                e.answers = e.answers.map(scrub)
                e.context = e.context.map(scrub)
                e.evidence = e.evidence.map(scrub)
                if found { s.piiMasked += 1 }
            }
            if e != before { s.changed += 1 }
            guard !e.question.isEmpty, !e.answers.isEmpty else { s.empty += 1; continue }
            // Standardized text, not spaceless: a spacing variant from `data augment` is not a duplicate.
            let key = e.question + "\u{0}" + e.answers[0]
            guard seen.insert(key).inserted else { s.duplicates += 1; continue }
            if let index {
                let best = try index.search(e.question, k: 1, mode: mode).first
                let relevant = best.map { hit in
                    hit.relevance >= minRelevance || (minSimilarity.map { (hit.similarity ?? 0) >= $0 } ?? false)
                } ?? false
                guard relevant else { s.offDomain += 1; continue }
            }
            out.append(e)
        }
        s.kept = out.count
        return (out, s)
    }

    /// Train / validation / test by source document (a stable hash of doc_id, or of the question when
    /// it has none), in the given shares.
    public static func split(_ examples: [QAExample], shares: [Double]) -> [[QAExample]] {
        let total = shares.reduce(0, +)
        var parts = [[QAExample]](repeating: [], count: shares.count)
        for e in examples {
            let key = e.documentID ?? e.question
            let h = Augmenter.stableHash(key)
            let u = Double(h % 1_000_000) / 1_000_000 * total
            var acc = 0.0
            let part = shares.indices.first { acc += shares[$0]; return u < acc } ?? shares.count - 1
            parts[part].append(e)
        }
        return parts
    }
}
