import DamdaEngine
import Foundation

/// BM25, vector and hybrid search over the index's chunks, and the candidate lists fusion combines.
extension SearchIndex {
    /// The `k` best chunks for `query`. With `perDocument` > 0 at most that many chunks of one
    /// document are kept (the rest of its chunks give way to other documents), so the top k covers
    /// more documents, as a search over whole documents would.
    public func search(_ query: String, k: Int = 5, mode: SearchMode = .bm25, filter: SearchFilter = SearchFilter(),
                       perDocument: Int = 0, queryVector: [Float]? = nil) throws -> SearchResult {
        lock.lock()
        defer { lock.unlock() }
        let allowed: ((Int) -> Bool)? = filter.isEmpty ? nil : { [chunks] i in
            let c = chunks[i]
            return (filter.sources.isEmpty || filter.sources.contains { c.chunk.source.hasPrefix($0) })
                && (filter.tags.isEmpty || !Set(filter.tags).isDisjoint(with: c.tags))
                && !filter.excludedDocuments.contains(c.chunk.documentID)
        }
        let terms = analyzer.terms(query)
        let q: [Float]?
        if mode == .bm25 {
            q = nil
        } else {
            guard let e = embedder, hasEmbeddings else { throw RetrievalError.noEmbeddings(mode) }
            q = queryVector ?? e.embed(query: query)
        }
        func rank(_ k: Int) throws -> [(index: Int, score: Float)] {
            switch mode {
            case .bm25:
                return bm25.search(terms, k: k, allowed: allowed)
            case .vector, .hybrid:
                let dense = try vectors.search(q!, k: mode == .vector ? k : max(k, 50), allowed: allowed)
                if mode == .vector { return dense }
                let both: Bool
                if case .weighted = fusion { both = scoreCandidatesWithBoth } else { both = false }
                let (lexical, vector) = try hybridCandidates(terms, q!, dense: dense, k: max(k, 50), allowed: allowed, scoredByBoth: both)
                return fusion.fuse(lexical, vector, k: k)
            }
        }
        var ranked: [(index: Int, score: Float)]
        if perDocument > 0 {
            // Collapse a longer list; widen it until k hits survive or every chunk was ranked.
            var depth = k
            repeat {
                depth = min(depth * 4, max(chunks.count, 1))
                ranked = Self.collapse(try rank(depth), perDocument: perDocument, k: k) { chunks[$0].chunk.documentID }
            } while ranked.count < k && depth < chunks.count
        } else {
            ranked = try rank(k)
        }
        let queryTerms = queryTerms(query)
        let similarities = try q.map { try vectors.scores($0, of: ranked.map(\.index)) }
        let hits = ranked.enumerated().map { r, hit in
            SearchHit(chunk: chunks[hit.index].chunk, score: hit.score, rank: r + 1, tags: chunks[hit.index].tags,
                      relevance: queryTerms.coverage(of: chunks[hit.index].termFrequencies), similarity: similarities?[r])
        }
        return SearchResult(hits: hits, terms: queryTerms)
    }

    /// The query's topic terms under this index's analyzer and BM25 statistics.
    public func queryTerms(_ query: String) -> QueryTerms { QueryTerms(query, analyzer: analyzer, statistics: bm25) }

    /// The first `k` entries of `ranked` keeping at most `perDocument` per document.
    public static func collapse(_ ranked: [(index: Int, score: Float)], perDocument: Int, k: Int,
                         document: (Int) -> String) -> [(index: Int, score: Float)] {
        var seen: [String: Int] = [:]
        var kept: [(index: Int, score: Float)] = []
        for hit in ranked where kept.count < k {
            let d = document(hit.index)
            guard seen[d, default: 0] < perDocument else { continue }
            seen[d, default: 0] += 1
            kept.append(hit)
        }
        return kept
    }


    /// BM25's and the vector index's top `k`, for weighted fusion completed over their union: each
    /// candidate gets its BM25 score (0 without a query term) and its cosine with the query.
    func hybridCandidates(_ terms: [String], _ q: [Float], dense: [(index: Int, score: Float)], k: Int, allowed: ((Int) -> Bool)?,
                          scoredByBoth: Bool) throws -> (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)]) {
        var (scores, touched) = bm25.scores(terms)
        let lexical = BM25Index.top(k, of: &touched, scores: scores, allowed: allowed)
        guard scoredByBoth else { return (lexical, dense) }
        // One batch of inner products (one query where the vectors live in the database).
        let needed = Array(Set(lexical.map(\.index) + dense.map(\.index)))
        let cosines = Dictionary(uniqueKeysWithValues: zip(needed, try vectors.scores(q, of: needed)))
        return Fusion.scoredByBoth(lexical, dense, lexicalScore: { scores[$0] }) { cosines[$0] ?? 0 }
    }

    /// The two lists hybrid search fuses (by chunk number), with or without every candidate scored
    /// by both retrievers, so fusion settings can be compared without embedding the query again.
    public func candidateLists(_ query: String, vector q: [Float], k: Int, scoredByBoth: Bool) throws
        -> (bm25: [(index: Int, score: Float)], dense: [(index: Int, score: Float)]) {
        try hybridCandidates(analyzer.terms(query), q, dense: try vectors.search(q, k: k, allowed: nil), k: k, allowed: nil, scoredByBoth: scoredByBoth)
    }

    /// The query's embedding (what vector and hybrid search compare chunks with).
    public func embed(query: String) throws -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        guard let e = embedder, hasEmbeddings else { throw RetrievalError.noEmbeddings(.hybrid) }
        return e.embed(query: query)
    }

    /// The document of chunk number `i` (as in `candidateLists`).
    public func documentID(ofChunk i: Int) -> String { chunks[i].chunk.documentID }

}
