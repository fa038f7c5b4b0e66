import Foundation

/// A base model often keeps writing the template (`[질문]` …) or loops on one sentence. The
/// cleaner cuts that, so what is left is the model's answer or nothing.
public struct AnswerCleaner: Sendable {
    public var markers: [String]
    public var question: String

    public init(markers: [String], question: String) { self.markers = markers; self.question = question }

    public func clean(_ raw: String) -> String {
        var text = Substring(raw)
        // A leading section marker ("[답변]\n…") is dropped; the next one ends the answer.
        text = text.drop { $0.isWhitespace }
        if let m = markers.first(where: { text.hasPrefix($0) }) { text = text.dropFirst(m.count) }
        if let cut = markers.compactMap({ text.range(of: $0)?.lowerBound }).min() { text = text[..<cut] }
        var kept: [String] = []
        var seen = Set<String>()
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let l = line.trimmingCharacters(in: .whitespaces)
            // An echo of the instruction or of the question is not an answer.
            if l.hasPrefix("아래 [") || (!l.isEmpty && l == question.trimmingCharacters(in: .whitespaces)) { continue }
            if !l.isEmpty && seen.contains(l) { break }     // a loop: keep the first round only
            if !l.isEmpty { seen.insert(l) }
            kept.append(l)
        }
        return Self.cutRepeatedSentence(kept.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// "A. B. A. B. A." → "A. B.": greedy decoding of a small model loops within a line too.
    static func cutRepeatedSentence(_ text: String) -> String {
        var seen = Set<String>()
        var end = text.startIndex
        var start = text.startIndex
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            i = text.index(after: i)
            guard [".", "?", "!", "。"].contains(c), i == text.endIndex || text[i].isWhitespace else { continue }
            let sentence = text[start..<i].trimmingCharacters(in: .whitespacesAndNewlines)
            if seen.contains(sentence) { return String(text[..<end]).trimmingCharacters(in: .whitespacesAndNewlines) }
            seen.insert(sentence)
            end = i
            start = i
        }
        return text
    }

    /// Whether the model declined ("답변을 찾을 수 없습니다").
    public static func isRefusal(_ text: String) -> Bool {
        text.replacingOccurrences(of: " ", with: "").contains("답변을찾을수없습니다")
    }
}
