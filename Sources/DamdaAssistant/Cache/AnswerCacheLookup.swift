import DamdaEngine
import DamdaRetrieval
import Foundation

/// The pipeline's cache stages: after the input guard, look the question up; after the answer is
/// cited, store it. A request that could get someone else's answer wrong is not eligible: one with
/// history (its meaning depends on the turns before), sampling (meant to vary), personal data found
/// in the question, a flagged injection, or no retrieval.
struct AnswerCacheLookup {
    let cache: AnswerCache?
    let index: SearchIndex
    let config: AssistantConfig
    let history: [ChatMessage]
    let guardDecision: GuardDecision?
    let model: String
    let adapter: String?

    struct Prepared {
        var key: CacheKey
        var question: String
        /// The question's e5 vector (semantic lookups; retrieval reuses it).
        var embedding: [Float]?
        /// The index as the answer will be computed from: an ingest during generation makes the answer unkeepable.
        var contentVersion: String
    }

    /// The retrieval side of the key: an answer found with other analysis or fusion is another answer.
    var indexIdentity: String {
        "\(index.analyzer.name)|\(index.embedder?.name ?? "-")|\(index.fusion)|\(index.bm25Parameters)|\(index.scoreCandidatesWithBoth)"
    }

    /// nil when the request is not eligible (the cache is then neither read nor written).
    /// `vector`: the question's e5 vector when an earlier stage computed it.
    func prepare(question: String, vector: [Float]? = nil) throws -> Prepared? {
        guard let cache else { return nil }
        let settings = config.cache
        guard settings.exact || settings.semantic, config.useRetrieval, history.isEmpty else { return bypass(cache) }
        guard config.sampling.temperature <= 0 || settings.cacheSampled else { return bypass(cache) }
        if let g = guardDecision, !g.questionPII.isEmpty || g.injection?.flagged == true { return bypass(cache) }
        let key = CacheKey(question: question, config: config, model: model, adapter: adapter, indexIdentity: indexIdentity)
        var embedding: [Float]?
        if settings.semantic, index.embedder != nil, index.hasEmbeddings { embedding = try vector ?? index.embed(query: question) }
        return Prepared(key: key, question: question, embedding: embedding, contentVersion: index.contentVersion)
    }

    func bypass(_ cache: AnswerCache) -> Prepared? {
        cache.onEvent(.bypass)
        return nil
    }

    /// A cached answer whose sources are what the index holds now.
    func find(_ p: Prepared) -> AssistantAnswer? {
        let version = index.contentVersion
        return cache?.lookup(key: p.key, question: p.question, embedding: p.embedding, settings: config.cache, isCurrent: { e in
            e.refused ? e.contentVersion == version : e.sources.allSatisfy { index.documentHash($0.key) == $0.value }
        })?.answer
    }

    /// Stores a finished answer with the documents of every chunk its prompt held. Cancelled
    /// answers, answers with masked personal data, and answers the index changed under are not kept.
    func store(_ answer: AssistantAnswer, prepared p: Prepared) {
        guard let cache, answer.finishReason != FinishReason.cancelled.rawValue, answer.guardDecision?.answerPII.isEmpty ?? true,
              index.contentVersion == p.contentVersion else { return }
        var sources: [String: String] = [:]
        for c in answer.citations {
            guard let hash = index.documentHash(c.documentID) else { return }   // a document deleted meanwhile
            sources[c.documentID] = hash
        }
        try? cache.store(key: p.key, question: p.question, embedding: p.embedding, answer: answer, sources: sources,
                         contentVersion: p.contentVersion, settings: config.cache)
    }
}
