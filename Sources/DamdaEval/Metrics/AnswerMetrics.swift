import Foundation

/// KorQuAD 1.0's official answer metrics (`evaluate-v1.0.py`): exact match and character-level F1
/// after removing quotes/brackets, punctuation and all whitespace, lowercased. Damda also forgives a
/// trailing particle on the prediction (보험금을 → 보험금), which the model's fluent Korean adds.
public enum AnswerMetrics {
    static let symbols: [String] = ["'", "\"", "《", "》", "<", ">", "〈", "〉", "(", ")", "‘", "’", "“", "”"]
    static let particles = ["으로", "에서", "에게", "까지", "부터", "이다", "입니다", "이며", "은", "는", "이", "가", "을", "를", "의", "에", "와", "과", "로", "도", "다"]

    public static func normalize(_ s: String) -> String {
        var t = s.lowercased()
        for sym in symbols { t = t.replacingOccurrences(of: sym, with: " ") }
        // Python's string.punctuation (ASCII) is removed, then all whitespace.
        return String(t.unicodeScalars.filter { u in
            !(u.isASCII && (u.properties.isWhitespace || CharacterSet.punctuationCharacters.contains(u) || CharacterSet.symbols.contains(u)))
                && !u.properties.isWhitespace
        }.map(Character.init))
    }

    static func stripParticle(_ s: String) -> String {
        for p in particles where s.hasSuffix(p) && s.count > p.count { return String(s.dropLast(p.count)) }
        return s
    }

    public static func exactMatch(_ prediction: String, _ gold: String) -> Bool {
        let p = normalize(prediction), g = normalize(gold)
        return p == g || stripParticle(p) == g
    }

    /// Character-level F1 (KorQuAD counts characters, not words).
    public static func f1(_ prediction: String, _ gold: String) -> Double {
        let p = Array(normalize(prediction)), g = Array(normalize(gold))
        guard !p.isEmpty, !g.isEmpty else { return p.isEmpty && g.isEmpty ? 1 : 0 }
        var counts: [Character: Int] = [:]
        for c in g { counts[c, default: 0] += 1 }
        var common = 0
        for c in p where (counts[c] ?? 0) > 0 { counts[c]! -= 1; common += 1 }
        guard common > 0 else { return 0 }
        let precision = Double(common) / Double(p.count), recall = Double(common) / Double(g.count)
        return 2 * precision * recall / (precision + recall)
    }

    /// Best over the gold answers, as the official script does.
    public static func score(_ prediction: String, golds: [String]) -> (em: Bool, f1: Double) {
        (golds.contains { exactMatch(prediction, $0) }, golds.map { f1(prediction, $0) }.max() ?? 0)
    }

    /// Whether the normalized prediction contains one of the golds (a long, fluent answer that
    /// holds the gold phrase: "입원 1일당 5만원을 받습니다" holds "5만원").
    public static func containsAnswer(_ prediction: String, golds: [String]) -> Bool {
        let p = normalize(prediction)
        return golds.contains { g in let n = normalize(g); return !n.isEmpty && p.contains(n) }
    }
}
