import DamdaRetrieval

/// A retrieved chunk placed in the prompt, numbered as the model sees it.
public struct ContextEntry: Sendable {
    public var number: Int
    public var hit: SearchHit
    /// The text given to the model: the whole chunk, or the sentences around the best one when
    /// the chunk alone would overflow the budget.
    public var text: String
    public var truncated: Bool
}

/// Fills the prompt with the best chunks that fit a token budget. Gemma 3 attends within a
/// 512-token window on most layers, so a short prompt of the best chunks beats long contexts.
public struct ContextBuilder: Sendable {
    public var template: PromptTemplate
    public var budgetTokens: Int
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
    /// `count` measures text in model tokens; `bestSentence` says where to centre a trimmed chunk.
    public func build(question: String, hits: [SearchHit], count: (String) -> Int,
                      bestSentence: (SearchHit) -> Int) -> (prompt: String, entries: [ContextEntry]) {
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
                    let centre = min(max(bestSentence(hit), 0), sentences.count - 1)
                    var lo = centre, hi = centre
                    func entry(_ lo: Int, _ hi: Int) -> ContextEntry {
                        ContextEntry(number: n, hit: hit, text: sentences[lo...hi].joined(separator: " "), truncated: true)
                    }
                    func fits(_ e: ContextEntry) -> Bool {
                        count(template.render(question: question, context: Self.render(entries + [e]))) <= budgetTokens
                    }
                    if fits(entry(lo, hi)) {
                        var grew = true
                        while grew {
                            grew = false
                            if hi + 1 < sentences.count, fits(entry(lo, hi + 1)) { hi += 1; grew = true }
                            if lo > 0, fits(entry(lo - 1, hi)) { lo -= 1; grew = true }
                        }
                        entries.append(entry(lo, hi))
                    }
                }
            }
            break
        }
        return (template.render(question: question, context: Self.render(entries)), entries)
    }
}
