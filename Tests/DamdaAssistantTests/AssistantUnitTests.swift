import DamdaAssistant
import DamdaEngine
import DamdaRetrieval
import XCTest

final class PromptAndCleaningTests: XCTestCase {
    func testDefaultTemplateIsTheTrainingFormat() throws {
        let t = PromptTemplate.korean
        let p = t.render(question: "보험금은 언제 주나요?", context: "[1] 약관\n3영업일 이내에 지급합니다.")
        XCTAssertTrue(p.hasPrefix("아래 [내용]을 참고해서 [질문]에 대해 답변해주세요. 만약 질문에 답변할 수 없으면 \"답변을 찾을 수 없습니다.\"로 대답하세요.\n[질문]\n보험금은 언제 주나요?\n[내용]\n[1] 약관"))
        XCTAssertTrue(p.hasSuffix("[답변]\n"))
        XCTAssertEqual(t.markers, ["[내용]", "[질문]", "[답변]"])
        // A question that spells a placeholder is not expanded.
        XCTAssertTrue(t.render(question: "{context}?", context: "C").contains("[질문]\n{context}?\n"))
        XCTAssertThrowsError(try PromptTemplate(text: "no placeholders"))
        XCTAssertThrowsError(try PromptTemplate(text: "{question} only"))
    }

    func testCleanerCutsTemplateEchoAndLoops() {
        let c = AnswerCleaner(markers: PromptTemplate.korean.markers, question: "입원하면 얼마 받나요?")
        XCTAssertEqual(c.clean("\n[질문]\n[내용]\n[1] 약관"), "")                          // echo only
        XCTAssertEqual(c.clean("[답변]\n1일당 5만원입니다.\n[질문]\n다음 질문"), "1일당 5만원입니다.")
        XCTAssertEqual(c.clean("입원하면 얼마 받나요?\n5만원을 받습니다."), "5만원을 받습니다.")   // question echo dropped
        XCTAssertEqual(c.clean("5만원입니다. 180일 한도입니다. 5만원입니다. 180일 한도입니다."), "5만원입니다. 180일 한도입니다.")
        XCTAssertEqual(c.clean("가\n나\n가\n나"), "가\n나")
        XCTAssertTrue(AnswerCleaner.isRefusal("답변을 찾을 수 없 습니다."))
        XCTAssertFalse(AnswerCleaner.isRefusal("3영업일 이내입니다."))
    }

    func testKorQuADMetrics() {
        XCTAssertTrue(AnswerMetrics.exactMatch("1989년 2월 15일", "1989년 2월 15일"))
        XCTAssertTrue(AnswerMetrics.exactMatch(" 1989년 2월15일. ", "1989년 2월 15일"))   // spaces and punctuation
        XCTAssertTrue(AnswerMetrics.exactMatch("《임수경》을", "임수경"))                      // quotes and a particle
        XCTAssertFalse(AnswerMetrics.exactMatch("임수경 의원", "임수경"))
        XCTAssertEqual(AnswerMetrics.f1("임수경", "임수경"), 1, accuracy: 1e-12)
        // Character F1: 3 common characters of 4 predicted and 3 gold → P .75, R 1.
        XCTAssertEqual(AnswerMetrics.f1("임수경이", "임수경"), 2 * 0.75 / 1.75, accuracy: 1e-12)
        XCTAssertEqual(AnswerMetrics.f1("", "임수경"), 0)
        XCTAssertEqual(AnswerMetrics.score("44위", golds: ["장두노미", "44위"]).f1, 1)
    }

    func testRewritePlausibility() {
        XCTAssertTrue(QueryRewriter.plausible("통원 치료비는 얼마까지 보상되나요?", question: "통원은요?"))
        XCTAssertFalse(QueryRewriter.plausible("[질문] 통원", question: "통원은요?"))
        XCTAssertFalse(QueryRewriter.plausible("대한민국의 수도는 서울입니다", question: "통원은요?"))
        XCTAssertFalse(QueryRewriter.plausible("", question: "통원은요?"))
        let history = [ChatMessageFixture.user("입원하면 하루에 얼마 받나요?"), ChatMessageFixture.assistant("5만원입니다.")]
        XCTAssertEqual(QueryRewriter.concatenated(history: history, question: "통원은요?"), "입원하면 하루에 얼마 받나요? 통원은요?")
    }
}

final class ContextBudgetTests: XCTestCase {
    /// A stand-in token count (one token per 2 characters) keeps the test independent of a model.
    static func count(_ s: String) -> Int { (s.count + 1) / 2 }

    func hit(_ n: Int, _ text: String) -> SearchHit {
        SearchHit(chunk: Chunk(documentID: "d\(n)", ordinal: 0, text: text, title: "문서\(n)", source: "d\(n).md", headingPath: ["제\(n)조"], page: nil),
                  score: 1, rank: n, tags: [], relevance: 1)
    }

    func testChunksFitTheBudgetInRankOrderAndTheFirstIsTrimmedAroundItsBestSentence() {
        let long = (1...40).map { "문장\($0)은 보험 약관의 일반 내용입니다." }.joined(separator: " ")
        let hits = [hit(1, long), hit(2, "짧은 두 번째 조각입니다.")]
        let builder = ContextBuilder(template: .korean, budgetTokens: 200)
        let (prompt, entries) = builder.build(question: "질문?", hits: hits, count: Self.count, bestSentence: { _ in 20 })
        XCTAssertLessThanOrEqual(Self.count(prompt), 200)
        XCTAssertEqual(entries.count, 1, "the trimmed first chunk fills the budget; the second does not fit")
        XCTAssertTrue(entries[0].truncated)
        XCTAssertTrue(entries[0].text.contains("문장21은"), "the slice is centred on the best sentence")
        XCTAssertTrue(prompt.contains("[1] 문서1 › 제1조\n"))

        let roomy = ContextBuilder(template: .korean, budgetTokens: 2000)
        let (p2, e2) = roomy.build(question: "질문?", hits: hits, count: Self.count, bestSentence: { _ in 0 })
        XCTAssertEqual(e2.map(\.number), [1, 2])
        XCTAssertFalse(e2[0].truncated)
        XCTAssertTrue(p2.contains("[2] 문서2 › 제2조\n짧은 두 번째 조각입니다."))
    }
}

final class GroundingAndRelevanceTests: XCTestCase {
    /// An answer is supported when its syllable bigrams or numbers occur in its sources, spacing aside.
    func testSupportCountsSharedContent() {
        let chunk = "입원 1일당 5만 원을 지급합니다. 180일을 한도로 합니다."
        XCTAssertGreaterThan(Grounding.support(of: "5만원입니다.", in: [chunk]), 0)
        XCTAssertEqual(Grounding.support(of: "입원 1일당 5만원", in: [chunk]), 1, accuracy: 1e-9)
        XCTAssertEqual(Grounding.support(of: "서울특별시 종로구", in: [chunk]), 0)
        XCTAssertEqual(Grounding.support(of: "서울특별시 종로구", in: ["다른 조각", "주소: 서울특별시"]), 4.0 / 6, accuracy: 1e-9)   // 서울 울특 특별 별시 of 6 bigrams
        XCTAssertEqual(Grounding.support(of: "쥐", in: ["고양이와 쥐"]), 1)
        XCTAssertEqual(Grounding.support(of: "...", in: [chunk]), 1, "nothing to check is not unsupported")
    }

    func testMeaningCanMakeAChunkRelevant() {
        let chunk = Chunk(documentID: "d", ordinal: 0, text: "t", title: "t", source: "s", headingPath: [], page: nil)
        var config = AssistantConfig()
        XCTAssertEqual(config.minSimilarity, 0.88)
        config.minRelevance = 0.3
        config.minSimilarity = nil
        let lexical = SearchHit(chunk: chunk, score: 1, rank: 1, relevance: 0.5, similarity: 0.70)
        let paraphrase = SearchHit(chunk: chunk, score: 1, rank: 1, relevance: 0.1, similarity: 0.86)
        let bm25Only = SearchHit(chunk: chunk, score: 1, rank: 1, relevance: 0.1)
        XCTAssertTrue(Assistant.isRelevant(lexical, config: config))
        XCTAssertFalse(Assistant.isRelevant(paraphrase, config: config), "without minSimilarity, lexical relevance alone decides")
        config.minSimilarity = 0.85
        XCTAssertTrue(Assistant.isRelevant(paraphrase, config: config))
        XCTAssertFalse(Assistant.isRelevant(bm25Only, config: config))
        XCTAssertTrue(AnswerMetrics.containsAnswer("입원 1일당 5만 원을 받습니다.", golds: ["5만원"]))
        XCTAssertFalse(AnswerMetrics.containsAnswer("3만원입니다.", golds: ["5만원"]))
    }
}

enum ChatMessageFixture {
    static func user(_ s: String) -> ChatMessage { ChatMessage(role: "user", content: s) }
    static func assistant(_ s: String) -> ChatMessage { ChatMessage(role: "assistant", content: s) }
}
