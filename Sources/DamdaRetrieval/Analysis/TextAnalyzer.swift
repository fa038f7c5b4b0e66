import Foundation

/// Turns text into index terms. BM25 indexes documents and queries with the same analyzer.
public protocol TextAnalyzer: Sendable {
    var name: String { get }
    func terms(_ text: String) -> [String]
}

public enum Analyzers {
    public static let all: [any TextAnalyzer] = [WhitespaceAnalyzer(), HangulBigramAnalyzer(), ParticleStrippingAnalyzer()]

    public static func named(_ name: String) -> (any TextAnalyzer)? { all.first { $0.name == name } }

    /// The default, chosen by recall on the shared KorQuAD split (see the README).
    public static let `default`: any TextAnalyzer = HangulBigramAnalyzer()
}

/// NFKC (full/half width), lowercase Latin, then split into runs of Hangul syllables, other
/// letters/digits, dropping punctuation and spaces.
enum Normalizer {
    enum Run { case hangul(String), other(String) }

    static func isHangul(_ s: Unicode.Scalar) -> Bool { (0xAC00...0xD7A3).contains(s.value) }

    static func runs(_ text: String) -> [Run] {
        let norm = text.precomposedStringWithCompatibilityMapping.lowercased()
        var out: [Run] = []
        var cur = String.UnicodeScalarView()
        var curHangul = false
        func flush() {
            if !cur.isEmpty { out.append(curHangul ? .hangul(String(cur)) : .other(String(cur))) }
            cur = String.UnicodeScalarView()
        }
        for s in norm.unicodeScalars {
            let word = s.properties.isAlphabetic || s.properties.numericType != nil
            if !word { flush(); continue }
            let h = isHangul(s)
            if h != curHangul { flush(); curHangul = h }
            cur.append(s)
        }
        flush()
        return out
    }

    /// Terms of every run: non-Hangul runs stay whole, Hangul runs go through `hangul`.
    static func terms(_ text: String, hangul: (String) -> [String]) -> [String] {
        var out: [String] = []
        for run in runs(text) {
            switch run {
            case let .other(s): out.append(s)
            case let .hangul(s): out += hangul(s)
            }
        }
        return out
    }
}

/// Baseline: whitespace tokens after normalization (보험금을 and 보험금 do not match).
public struct WhitespaceAnalyzer: TextAnalyzer {
    public let name = "whitespace"
    public init() {}
    public func terms(_ text: String) -> [String] {
        text.precomposedStringWithCompatibilityMapping.lowercased()
            .split(whereSeparator: { $0.isWhitespace || $0.isPunctuation }).map(String.init)
    }
}

/// Character bigrams of Hangul runs (a one-syllable run stays a unigram), whole tokens otherwise:
/// 보험금을 → 보험 험금 금을, sharing 보험 험금 with 보험금.
public struct HangulBigramAnalyzer: TextAnalyzer {
    public let name = "bigram"
    public init() {}
    public func terms(_ text: String) -> [String] {
        Normalizer.terms(text) { s in
            let chars = Array(s)
            if chars.count == 1 { return [s] }
            return (0..<(chars.count - 1)).map { String(chars[$0]) + String(chars[$0 + 1]) }
        }
    }
}

/// Whitespace words with common Korean particles and endings stripped from Hangul words
/// (보험금을 → 보험금), a light stand-in for morphological analysis.
public struct ParticleStrippingAnalyzer: TextAnalyzer {
    public let name = "particle"
    // Longest first so 에서는 is stripped before 는.
    static let suffixes: [String] = ["에서는", "으로는", "에게서", "이라는", "입니다", "습니다", "에서", "으로", "에게", "까지", "부터",
                                     "이나", "이며", "이고", "라는", "하는", "하고", "하여", "해서", "되는", "된다", "한다",
                                     "은", "는", "이", "가", "을", "를", "의", "에", "와", "과", "도", "로", "만", "나", "며", "고"]
        .sorted { $0.count > $1.count }

    public init() {}

    public func terms(_ text: String) -> [String] { Normalizer.terms(text) { [Self.stem($0)] } }

    static func stem(_ w: String) -> String {
        guard let suf = suffixes.first(where: { w.hasSuffix($0) && w.count > $0.count }) else { return w }
        return String(w.dropLast(suf.count))
    }
}
