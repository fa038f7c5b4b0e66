/// Korean-aware sentence splitting: a sentence ends at . ? ! 。 or a newline, and also after a
/// sentence-final ending (…다, …요, …까, …죠) followed by a space, even without punctuation.
public enum SentenceSplitter {
    static let terminalPunctuation: Set<Character> = [".", "?", "!", "。", "？", "！", "…"]
    static let finalEndings: Set<Character> = ["다", "요", "까", "죠", "오"]

    public static func split(_ text: String) -> [String] {
        var out: [String] = []
        var cur = ""
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\n" {
                push(&cur, &out); i += 1; continue
            }
            cur.append(c)
            let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
            let atBoundary = next == nil || next!.isWhitespace
            if terminalPunctuation.contains(c) && atBoundary && !isNumberDot(chars, i) {
                // Swallow closing quotes/brackets that belong to this sentence.
                while i + 1 < chars.count, ["\"", "'", "”", "’", ")", "」", "』"].contains(chars[i + 1]) { i += 1; cur.append(chars[i]) }
                push(&cur, &out)
            } else if finalEndings.contains(c) && atBoundary && next != nil {
                push(&cur, &out)
            }
            i += 1
        }
        push(&cur, &out)
        return out
    }

    /// "3.5" and "1." list numbers are not sentence ends.
    static func isNumberDot(_ chars: [Character], _ i: Int) -> Bool {
        guard chars[i] == ".", i > 0 else { return false }
        return chars[i - 1].isNumber && (i + 1 < chars.count && chars[i + 1].isNumber)
    }

    static func push(_ cur: inout String, _ out: inout [String]) {
        let t = cur.trimmingCharacters(in: .whitespaces)
        if !t.isEmpty { out.append(t) }
        cur = ""
    }
}

import Foundation
