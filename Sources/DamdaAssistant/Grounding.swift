import DamdaRetrieval
import Foundation

/// The check stage: whether an answer draws on the chunks it was given.
public enum Grounding {
    /// An answer draws on a chunk when it cites [n], when its content units (syllable bigrams,
    /// numbers: a short answer such as "5만원") all occur there, or when ≥ 60% of its
    /// (IDF-weighted) terms occur there.
    /// `terms` are the search's: their statistics weigh the answer's terms.
    static func isUsed(answer: String, number: Int, chunkText: String, terms: QueryTerms) -> Bool {
        if answer.contains("[\(number)]") { return true }
        if !contentUnits(answer).isEmpty, support(of: answer, in: [chunkText]) == 1 { return true }
        let answerTerms = terms.terms(of: answer)
        guard answerTerms.weights.count >= 2 else { return false }
        return answerTerms.coverage(in: chunkText) >= 0.6
    }

    /// Share of the answer's content units found in `texts`: Hangul syllable bigrams and
    /// runs of digits (spaces and punctuation removed first, so "5만 원" matches "5만원"), or
    /// single syllables for a one-syllable answer. 0 means the answer has nothing in common
    /// with its sources.
    public static func support(of answer: String, in texts: [String]) -> Double {
        let units = contentUnits(answer)
        guard !units.isEmpty else { return 1 }
        let source = texts.map(squeezed).joined(separator: "\u{0}")
        return Double(units.filter { source.contains($0) }.count) / Double(units.count)
    }

    static func squeezed(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.filter { $0.properties.isAlphabetic || ("0"..."9").contains($0) }.map(Character.init))
    }

    static func isHangul(_ c: Character) -> Bool { c.unicodeScalars.first.map { (0xAC00...0xD7A3).contains($0.value) } ?? false }

    /// Syllable bigrams within Hangul runs, digit runs, and Latin words of 2+ letters.
    static func contentUnits(_ answer: String) -> Set<String> {
        var units = Set<String>()
        for word in answer.lowercased().split(whereSeparator: { !($0.isLetter || $0.isNumber) }) {
            let w = Array(word)
            var i = 0
            while i < w.count {
                var j = i
                if isHangul(w[i]) {
                    while j < w.count, isHangul(w[j]) { j += 1 }
                    let run = Array(w[i..<j])
                    if run.count == 1 { units.insert(String(run)) }
                    for k in 0..<max(run.count - 1, 0) { units.insert(String(run[k...k + 1])) }
                } else if w[i].isNumber {
                    while j < w.count, w[j].isNumber { j += 1 }
                    units.insert(String(w[i..<j]))
                } else {
                    while j < w.count, !isHangul(w[j]), !w[j].isNumber { j += 1 }
                    if j - i >= 2 { units.insert(String(w[i..<j])) }
                }
                i = max(j, i + 1)
            }
        }
        return units
    }
}
