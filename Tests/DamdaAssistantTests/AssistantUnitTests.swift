import DamdaAssistant
import DamdaDatasets
import DamdaEngine
import DamdaRetrieval
import XCTest

final class PromptAndCleaningTests: XCTestCase {
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

    func testOutputGuardMasksAndHoldsBackAPartialNumber() {
        let guardOn = OutputGuard(policy: GuardPolicy())
        XCTAssertEqual(guardOn.check("연락처는 010-1234-5678입니다").answer, "연락처는 [휴대폰번호]입니다")
        XCTAssertEqual(guardOn.check("연락처는 010-1234-5678입니다").masked, ["mobile_phone"])
        XCTAssertEqual(guardOn.streamable("연락처는 010-12"), "연락처는", "the number may still grow")
        XCTAssertEqual(guardOn.streamable("연락처는 010-1234-5678입니다"), "연락처는 [휴대폰번호]입니다")
        var allow = GuardPolicy()
        allow.answerPII = .allow
        XCTAssertEqual(OutputGuard(policy: allow).check("010-1234-5678").answer, "010-1234-5678")
    }

    func testGroundingCheckFlagsOrWithholds() {
        let sources = ["제3조 회사는 입원 1일당 5만원을 최대 180일까지 지급합니다."]
        let flag = OutputGuard(policy: GuardPolicy())
        XCTAssertEqual(flag.grounding(of: "입원 1일당 5만원입니다.", sources: sources).withheld, false)
        XCTAssertGreaterThan(flag.grounding(of: "입원 1일당 5만원입니다.", sources: sources).support, 0.5)
        let unsupported = flag.grounding(of: "화성 탐사 로버의 바퀴", sources: sources)
        XCTAssertEqual(unsupported.support, 0)
        XCTAssertFalse(unsupported.withheld, "flag marks, it does not withhold")
        var refuse = GuardPolicy()
        refuse.grounding = .refuse
        XCTAssertTrue(OutputGuard(policy: refuse).grounding(of: "화성 탐사 로버의 바퀴", sources: sources).withheld)
        XCTAssertFalse(OutputGuard(policy: refuse).grounding(of: "5만원", sources: sources).withheld)
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
    }
}

enum ChatMessageFixture {
    static func user(_ s: String) -> ChatMessage { ChatMessage(role: "user", content: s) }
    static func assistant(_ s: String) -> ChatMessage { ChatMessage(role: "assistant", content: s) }
}
