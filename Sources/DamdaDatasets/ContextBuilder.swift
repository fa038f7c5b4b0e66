import DamdaRetrieval

/// A retrieved chunk placed in the prompt, numbered as the model sees it.
public struct ContextEntry: Sendable {
    public var number: Int
    public var hit: SearchHit
    /// The text given to the model: the whole chunk, or the sentences around its best one when
    /// the chunk would overflow the budget (or, with `.sentences` packing, leave no room for others).
    public var text: String
    public var truncated: Bool
}

/// How the prompt's budget is shared among the retrieved chunks.
public enum ContextPacking: String, Sendable, Codable, CaseIterable {
    /// Whole chunks in rank order; the first that does not fit is trimmed around its best sentence.
    case chunks
    /// Breadth first: every chunk's best sentence in rank order while they fit, then each one grown
    /// by its neighbouring sentences, best-ranked first. More documents reach the prompt (and its
    /// citations) when the right one is ranked below the first two.
    case sentences
}

/// Fills the prompt with the best chunks that fit a token budget. Gemma 3 attends within a
/// 512-token window on most layers, so a short prompt of the best chunks beats long contexts.
public struct ContextBuilder: Sendable {
    public var template: PromptTemplate
    public var budgetTokens: Int
    public var packing = ContextPacking.chunks
    /// Smallest slice of a chunk worth trimming in when the whole chunk does not fit.
    public var minimumSliceTokens = 48

    public init(template: PromptTemplate, budgetTokens: Int) {
        self.template = template; self.budgetTokens = budgetTokens
    }

    public static func header(_ n: Int, _ hit: SearchHit) -> String {
        header(n, title: hit.chunk.title, headingPath: hit.chunk.headingPath, page: hit.chunk.page)
    }

    /// "[n] title › heading (p.N)": how a chunk is introduced to the model.
    public static func header(_ n: Int, title: String, headingPath: [String], page: Int?) -> String {
        var h = "[\(n)] \(title)"
        if !headingPath.isEmpty { h += " › " + headingPath.joined(separator: " › ") }
        if let p = page { h += " (p.\(p))" }
        return h
    }

    public static func render(_ entries: [ContextEntry]) -> String {
        render(entries.map { (header($0.number, $0.hit), $0.text) })
    }

    /// Headed chunk texts as the prompt's context.
    public static func render(_ parts: [(header: String, text: String)]) -> String {
        parts.map { $0.header + "\n" + $0.text }.joined(separator: "\n\n")
    }

    /// Picks entries in rank order while the rendered prompt stays within the budget.
    /// `count` measures text in model tokens; `bestSentence(hit, units)` picks the unit of the hit's
    /// text (its sentences, or with `.sentences` packing the clauses of long ones) that bears on
    /// the question: a trimmed chunk is centred on it.
    public func build(question: String, hits: [SearchHit], count: (String) -> Int,
                      bestSentence: (SearchHit, [String]) -> Int) -> (prompt: String, entries: [ContextEntry]) {
        if packing == .sentences { return buildSentences(question: question, hits: hits, count: count, bestSentence: bestSentence) }
        var entries: [ContextEntry] = []
        for hit in hits {
            let n = entries.count + 1
            let whole = ContextEntry(number: n, hit: hit, text: hit.chunk.text, truncated: false)
            if count(template.render(question: question, context: Self.render(entries + [whole]))) <= budgetTokens {
                entries.append(whole)
                continue
            }
            // Trim to the sentences around the best one, growing outwards while it fits.
            let used = count(template.render(question: question, context: Self.render(entries)))
            if budgetTokens - used >= minimumSliceTokens || entries.isEmpty {
                let sentences = SentenceSplitter.split(hit.chunk.text)
                if !sentences.isEmpty {
                    let centre = min(max(bestSentence(hit, sentences), 0), sentences.count - 1)
                    var spans = entries.map { Span(hit: $0.hit, units: [$0.text], lo: 0, hi: 0) }
                    spans.append(Span(hit: hit, units: sentences, lo: centre, hi: centre))
                    if fits(question, spans, count) {
                        grow(&spans, at: spans.count - 1, question, count)
                        entries.append(spans[spans.count - 1].entry(number: n))
                    }
                }
            }
            break
        }
        return (template.render(question: question, context: Self.render(entries)), entries)
    }

    /// Longest unit (sentence or clause) `.sentences` packing adds at once: a long legal sentence
    /// is cut at its commas so that one hit does not take the room of several.
    public var maximumUnitTokens = 64

    /// `ContextPacking.sentences`. Breadth first: each document's best-ranked hit adds its best
    /// unit, in rank order, then the other hits of documents already in; a unit that does not fit
    /// is passed over for the next hit's. Then each kept hit, in rank order, grows by the units
    /// after and before it while the prompt fits.
    private func buildSentences(question: String, hits: [SearchHit], count: (String) -> Int,
                                bestSentence: (SearchHit, [String]) -> Int) -> (prompt: String, entries: [ContextEntry]) {
        var seen = Set<String>()
        let firsts = hits.filter { seen.insert($0.chunk.documentID).inserted }
        let firstIDs = Set(firsts.map(\.chunk.id))
        let ordered = firsts + hits.filter { !firstIDs.contains($0.chunk.id) }
        var spans: [Span] = []
        for hit in ordered {
            let units = Self.units(of: hit.chunk.text, maximumTokens: maximumUnitTokens, count: count)
            guard !units.isEmpty else { continue }
            let best = min(max(bestSentence(hit, units), 0), units.count - 1)
            let span = Span(hit: hit, units: units, lo: best, hi: best)
            if fits(question, spans + [span], count) { spans.append(span) }
        }
        // Back in rank order, so that [1] is still the best-ranked hit.
        let rank = Dictionary(hits.enumerated().map { ($1.chunk.id, $0) }, uniquingKeysWith: { first, _ in first })
        spans.sort { rank[$0.hit.chunk.id, default: 0] < rank[$1.hit.chunk.id, default: 0] }
        for i in spans.indices { grow(&spans, at: i, question, count) }
        let entries = spans.enumerated().map { $1.entry(number: $0 + 1) }
        return (template.render(question: question, context: Self.render(entries)), entries)
    }

    /// A run of consecutive units of one hit's text (a whole chunk already placed is one unit).
    private struct Span {
        var hit: SearchHit, units: [String], lo: Int, hi: Int
        func entry(number: Int) -> ContextEntry {
            ContextEntry(number: number, hit: hit, text: units[lo...hi].joined(separator: " "),
                         truncated: lo > 0 || hi < units.count - 1)
        }
    }

    /// Whether the prompt of `spans`, numbered in order, stays within the budget.
    private func fits(_ question: String, _ spans: [Span], _ count: (String) -> Int) -> Bool {
        let entries = spans.enumerated().map { $1.entry(number: $0 + 1) }
        return count(template.render(question: question, context: Self.render(entries))) <= budgetTokens
    }

    /// Grows `spans[i]` by one unit after and one before, in turn, while the prompt still fits.
    private func grow(_ spans: inout [Span], at i: Int, _ question: String, _ count: (String) -> Int) {
        var grew = true
        while grew {
            grew = false
            for (dlo, dhi) in [(0, 1), (-1, 0)] {
                var trial = spans
                trial[i].lo += dlo; trial[i].hi += dhi
                if trial[i].lo >= 0, trial[i].hi < trial[i].units.count, fits(question, trial, count) {
                    spans = trial; grew = true
                }
            }
        }
    }

    /// The text's sentences, each longer than `maximumTokens` cut at its commas into clauses, and a
    /// clause longer than twice that cut between words; consecutive pieces are joined while they
    /// stay within `maximumTokens`. Legal lists crawled without their bullets run on for hundreds
    /// of tokens with no comma and would take the room of several documents; shorter clauses stay
    /// whole, as cutting them too cost KorQuAD F1 and refusals (docs/benchmarks.md, 2026-12-06).
    static func units(of text: String, maximumTokens: Int, count: (String) -> Int) -> [String] {
        var units: [String] = []
        for sentence in SentenceSplitter.split(text) {
            guard count(sentence) > maximumTokens else { units.append(sentence); continue }
            let clauses = sentence.components(separatedBy: ", ")
            var pieces: [String] = []
            for (i, clause) in clauses.enumerated() {
                let piece = i < clauses.count - 1 ? clause + "," : clause
                if count(piece) > 2 * maximumTokens {
                    pieces += joined(piece.split(separator: " ").map(String.init), maximumTokens: maximumTokens, count: count)
                } else {
                    pieces.append(piece)
                }
            }
            units += joined(pieces, maximumTokens: maximumTokens, count: count)
        }
        return units
    }

    /// Consecutive pieces joined with spaces while each run stays within `maximumTokens` (a piece
    /// longer on its own stays whole).
    private static func joined(_ pieces: [String], maximumTokens: Int, count: (String) -> Int) -> [String] {
        var runs: [String] = [], current = ""
        for piece in pieces {
            let longer = current.isEmpty ? piece : current + " " + piece
            if !current.isEmpty, count(longer) > maximumTokens { runs.append(current); current = piece } else { current = longer }
        }
        if !current.isEmpty { runs.append(current) }
        return runs
    }
}
