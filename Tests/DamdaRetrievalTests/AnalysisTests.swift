import DamdaRetrieval
import XCTest

final class AnalysisTests: XCTestCase {
    func testBigramsMatchParticleForms() {
        let a = HangulBigramAnalyzer()
        let doc = Set(a.terms("보험금을 청구합니다"))
        for form in ["보험금", "보험금이", "보험금은"] {
            XCTAssertFalse(doc.isDisjoint(with: a.terms(form)), form)
        }
        XCTAssertEqual(a.terms("ＡＢＣ 123 보"), ["abc", "123", "보"])  // NFKC full width, lowercase, single syllable
    }

    func testParticleStripping() {
        let a = ParticleStrippingAnalyzer()
        XCTAssertEqual(a.terms("보험금을 보험금이 보험금은 회사에서는"), ["보험금", "보험금", "보험금", "회사"])
        XCTAssertEqual(WhitespaceAnalyzer().terms("보험금을, 청구!"), ["보험금을", "청구"])
    }

    func testKoreanSentenceSplitting() {
        let s = SentenceSplitter.split("보험료는 매월 납부합니다 해지 시 환급금이 있나요 3.5% 이율이 적용됩니다. 끝\n다음 줄")
        XCTAssertEqual(s, ["보험료는 매월 납부합니다", "해지 시 환급금이 있나요", "3.5% 이율이 적용됩니다.", "끝", "다음 줄"])
    }

    func testChunkerRespectsBudgetAndSentences() {
        let sentences = (1...40).map { "제\($0)조의 내용은 보험계약자의 권리와 의무에 관한 것입니다." }
        let doc = Document(id: "d", title: "약관", source: "d.txt", sections: [.init(text: sentences.joined(separator: " "), headingPath: ["제1장"])])
        let chunker = Chunker(maxTokens: 60, overlapTokens: 20)
        let chunks = chunker.chunk(doc)
        XCTAssertGreaterThan(chunks.count, 5)
        for c in chunks {
            XCTAssertLessThanOrEqual(chunker.count(c.text), 60 + 2)
            XCTAssertTrue(c.text.hasPrefix("제") && c.text.hasSuffix("것입니다."), "cut inside a sentence: \(c.text)")
            XCTAssertEqual(c.headingPath, ["제1장"])
        }
        // Overlap: each chunk starts with the previous chunk's last sentence.
        let lastOfFirst = SentenceSplitter.split(chunks[0].text).last!
        XCTAssertTrue(chunks[1].text.hasPrefix(lastOfFirst))
        XCTAssertEqual(chunks.map(\.ordinal), Array(0..<chunks.count))
    }

    /// BM25 scores equal Okapi's formula computed directly (Lucene's idf, k1 and b as given),
    /// ties go to the earlier chunk, and terms no chunk holds add nothing.
    func testBM25MatchesTheFormula() {
        let docs: [[String: Int]] = [["보험": 2, "계약": 1], ["보험": 1, "금을": 1, "지급": 3], ["대출": 1], ["보험": 1, "계약": 1], [:]]
        for (k1, b): (Float, Float) in [(0.6, 0.75), (1.2, 0.5)] {
            let index = BM25Index(termFrequencies: docs, parameters: .init(k1: k1, b: b))
            let query = ["보험", "계약", "계약", "없는말"]
            let lengths = docs.map { Float($0.values.reduce(0, +)) }
            let average = lengths.reduce(0, +) / Float(docs.count)
            var expected: [Float] = []
            for (d, tf) in docs.enumerated() {
                var score: Float = 0
                for term in Set(query) {
                    guard let f = tf[term].map(Float.init) else { continue }
                    let df = Float(docs.filter { $0[term] != nil }.count)
                    let idf = log(1 + (Float(docs.count) - df + 0.5) / (df + 0.5))
                    score += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * lengths[d] / average))
                }
                expected.append(score)
            }
            let hits = index.search(query, k: 10)
            XCTAssertEqual(hits.map(\.index).sorted(), [0, 1, 3])
            for h in hits { XCTAssertEqual(h.score, expected[h.index], accuracy: 1e-5) }
            XCTAssertEqual(hits.map(\.score), hits.map(\.score).sorted(by: >))
            XCTAssertEqual(index.search(query, k: 1).map(\.index), [hits[0].index])
            XCTAssertEqual(index.search(query, k: 10, allowed: { $0 != hits[0].index }).count, 2)
        }
    }

    /// With a document weight a chunk's score adds its whole document's BM25 score (the document's
    /// term counts summed over its chunks), so a chunk without a query term still ranks by its document.
    func testDocumentWeightAddsTheDocumentScore() {
        let chunks: [[String: Int]] = [["보험": 2], ["계약": 1, "기간": 1], ["대출": 1, "계약": 1], ["기간": 2]]
        let documents = [0, 0, 1, 2]
        let documentIDs = documents.map { "doc\($0)" }
        let merged: [[String: Int]] = [["보험": 2, "계약": 1, "기간": 1], ["대출": 1, "계약": 1], ["기간": 2]]
        let query = ["보험", "계약"]
        let plain = BM25Index(termFrequencies: chunks, parameters: .init(documentWeight: 0)).scores(query).scores
        let documentScores = BM25Index(termFrequencies: merged).scores(query).scores
        let weighted = BM25Index(termFrequencies: chunks, documentIDs: documentIDs, parameters: .init(documentWeight: 0.4))
        let (scores, touched) = weighted.scores(query)
        for c in 0..<4 { XCTAssertEqual(scores[c], plain[c] + 0.4 * documentScores[documents[c]], accuracy: 1e-5) }
        XCTAssertEqual(Set(touched), [0, 1, 2], "chunk 3's document has no query term")
        XCTAssertEqual(scores[3], 0)
    }

    /// Collapsing keeps the best `perDocument` chunks of each document, in rank order, up to k.
    func testCollapseKeepsTheBestChunksPerDocument() {
        let ranked: [(index: Int, score: Float)] = [(0, 9), (1, 8), (2, 7), (3, 6), (4, 5), (5, 4)]
        let document = ["a", "a", "b", "a", "c", "b"]
        XCTAssertEqual(SearchIndex.collapse(ranked, perDocument: 1, k: 5) { document[$0] }.map(\.index), [0, 2, 4])
        XCTAssertEqual(SearchIndex.collapse(ranked, perDocument: 2, k: 4) { document[$0] }.map(\.index), [0, 1, 2, 4])
    }

    /// Hybrid candidates found by one retriever get the other's real score, not its minimum.
    func testFusionScoresCandidatesWithBoth() {
        let lexical = [(index: 0, score: Float(9)), (index: 1, score: 5)]
        let dense = [(index: 2, score: Float(0.9)), (index: 0, score: 0.8)]
        let lexicalAll: [Float] = [9, 5, 4], cosineAll: [Float] = [0.8, 0.1, 0.9]
        let both = Fusion.scoredByBoth(lexical, dense, lexicalScore: { lexicalAll[$0] }, cosine: { cosineAll[$0] })
        XCTAssertEqual(both.bm25.map(\.index), [0, 1, 2])
        XCTAssertEqual(both.bm25.map(\.score), [9, 5, 4])
        XCTAssertEqual(both.dense.map(\.score), [0.8, 0.1, 0.9])
        // Chunk 1 is last on both scores once chunk 2's BM25 and chunk 1's cosine are known.
        let fused = Fusion.weighted(bm25: 0.6, vector: 0.4).fuse(both.bm25, both.dense, k: 3)
        XCTAssertEqual(fused.map(\.index), [0, 2, 1])
    }
}
