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
}
