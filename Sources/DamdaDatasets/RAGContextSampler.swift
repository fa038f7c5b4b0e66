import DamdaCore
import DamdaRetrieval
import Foundation

/// Builds training contexts the way the assistant builds serving contexts: retrieved chunks,
/// numbered with their titles, packed into the same token budget. An answerable example gets its
/// gold chunk among retrieved distractors (shuffled, whole; or with `.sentences` packing, the
/// question's own hits packed as served); an unanswerable one gets distractors only and learns to
/// say "답변을 찾을 수 없습니다."
public struct RAGContextSampler {
    public let index: SearchIndex
    public var builder: ContextBuilder
    public var mode: SearchMode
    /// Retrieved chunks that join the gold one (before the budget trims the list).
    public var distractors = 3
    /// Hits the assistant retrieves for a question (its `k`), for `.sentences` packing.
    public var servedHits = 8
    /// Encodes prompts as the assistant does: the budget counts these tokens.
    public let prompt: RAGPrompt

    public init(index: SearchIndex, prompt: RAGPrompt, budgetTokens: Int, mode: SearchMode) {
        self.index = index; self.prompt = prompt; self.mode = mode
        builder = ContextBuilder(template: prompt.template, budgetTokens: budgetTokens)
    }

    /// The context text, or nil when no gold chunk holding the answer fits (or, for an
    /// unanswerable example, no distractor is free of it).
    public func context(question: String, answer: String, documentID: String?, unanswerable: Bool,
                        budget: Int, rng: inout SplitMix64) throws -> String? {
        if builder.packing == .sentences {
            return try servedContext(question: question, answer: answer, documentID: documentID, unanswerable: unanswerable,
                                     budget: budget, rng: &rng)
        }
        let retrieved = try index.search(question, k: distractors + 6, mode: mode)
        let hits = retrieved.hits
        let gold: Chunk? = documentID.flatMap { id in
            let own = index.chunks(ofDocument: id)
            return own.first { $0.text.contains(answer) } ?? own.first
        } ?? hits.first { $0.chunk.text.contains(answer) }?.chunk
        let others = hits.filter { $0.chunk.documentID != (gold?.documentID ?? "") && !$0.chunk.text.contains(answer) }
        var chosen = Array(others.prefix(unanswerable ? distractors : distractors - 1))
        if !unanswerable {
            guard let gold else { return nil }
            chosen.append(SearchHit(chunk: gold, score: 0, rank: 0, relevance: 1))
        }
        guard !chosen.isEmpty else { return nil }
        chosen.shuffle(using: &rng)
        return pack(chosen, gold: gold, question: question, answer: answer, terms: retrieved.terms,
                    unanswerable: unanswerable, budget: budget)
    }

    /// `.sentences` packing, as the assistant serves: the question's own hits in rank order, packed
    /// breadth first. The gold chunk keeps its retrieved rank, or takes a random one of the first
    /// four when retrieval missed it; its unit holding the answer is the one packed first. An
    /// unanswerable example gets the same hits without the gold document or any chunk holding the
    /// answer.
    private func servedContext(question: String, answer: String, documentID: String?, unanswerable: Bool,
                               budget: Int, rng: inout SplitMix64) throws -> String? {
        let retrieved = try index.search(question, k: servedHits, mode: mode)
        let gold: Chunk? = documentID.flatMap { id in index.chunks(ofDocument: id).first { $0.text.contains(answer) } }
            ?? retrieved.hits.first { $0.chunk.text.contains(answer) }?.chunk
        let goldDocument = documentID ?? gold?.documentID
        var hits = retrieved.hits.filter {
            !$0.chunk.text.contains(answer) && !(unanswerable && $0.chunk.documentID == goldDocument)
        }
        if !unanswerable {
            guard let gold else { return nil }
            let rank = retrieved.hits.firstIndex { $0.chunk.id == gold.id }
                ?? Int(rng.next() % UInt64(min(4, hits.count + 1)))
            hits.insert(SearchHit(chunk: gold, score: 0, rank: 0, relevance: 1), at: min(rank, hits.count))
            hits = Array(hits.prefix(servedHits))
        }
        guard !hits.isEmpty else { return nil }
        return pack(hits, gold: gold, question: question, answer: answer, terms: retrieved.terms,
                    unanswerable: unanswerable, budget: budget)
    }

    /// `hits` packed within `budget`, each centred on its unit holding the answer (only the gold
    /// chunk has one) or else its best unit for the question. When the answer fell out (the gold
    /// chunk past the budget, or another chunk of its document took the document's turn), the gold
    /// chunk is put first, as a top-ranked hit would be, and the hits packed again; nil if the
    /// answer is still out. An unanswerable example's context is taken as packed.
    private func pack(_ hits: [SearchHit], gold: Chunk?, question: String, answer: String, terms: QueryTerms,
                      unanswerable: Bool, budget: Int) -> String? {
        var b = builder
        b.budgetTokens = budget
        func build(_ hits: [SearchHit]) -> String {
            let (_, entries) = b.build(question: question, hits: hits, count: { prompt.encode($0).count }) { _, units in
                units.firstIndex { $0.contains(answer) } ?? terms.bestSentence(units)
            }
            return ContextBuilder.render(entries)
        }
        var hits = hits
        var context = build(hits)
        if unanswerable { return context.isEmpty ? nil : context }
        if !context.contains(answer), let gold, let g = hits.firstIndex(where: { $0.chunk.id == gold.id }), g > 0 {
            hits.insert(hits.remove(at: g), at: 0)
            context = build(hits)
        }
        return context.contains(answer) ? context : nil
    }
}
