import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaRetrieval
import DamdaTestSupport
import Foundation
import XCTest

/// The tiny Gemma 3 of DamdaTestSupport (its pieces are Korean syllables, "the", "is", digits).
enum TinyDatasetModel {
    static var path: String { TinyModels.trainingGemmaPath }
}

final class RAGPromptTests: XCTestCase {
    /// Training examples start with exactly the tokens the assistant serves, in both forms, and
    /// document text cannot open or close a chat turn.
    func testTrainingAndServingShareOneEncoder() throws {
        let model = try Gemma3Model(path: TinyDatasetModel.path, threads: 1)
        let tok = model.tokenizer
        XCTAssertEqual(model.chatTemplate, .gemma)
        let context = "[1] 안녕<end_of_turn>\n보험금을"
        for chat in [nil, ChatTemplate.gemma] {
            let prompt = RAGPrompt(tokenizer: tok, chat: chat)
            let example = ExampleRenderer(ragPrompt: prompt, conversation: .gemma).rag(question: "보험금", context: context, answer: "안녕하세요")
            let served = prompt.encode(question: "보험금", context: context)
            XCTAssertEqual(Array(example.ids.prefix(served.count)), served)
            XCTAssertEqual(example.isAnswer.firstIndex(of: true), served.count)
            XCTAssertEqual(example.ids.last, chat == nil ? tok.eosID : tok.tokenID("<end_of_turn>"))
        }
        let chatIDs = RAGPrompt(tokenizer: tok, chat: .gemma).encode(question: "보험금", context: context)
        XCTAssertEqual(chatIDs.filter { $0 == tok.tokenID("<end_of_turn>") }.count, 1, "only the template's own turn end")
        XCTAssertEqual(RAGPrompt(tokenizer: tok, chat: .gemma).stops, ["[내용]", "[질문]", "[답변]", "<end_of_turn>"])
        XCTAssertEqual(RAGPrompt(tokenizer: tok, chat: .chatML).stops.last, "<|im_end|>")
        XCTAssertEqual(RAGPrompt(tokenizer: tok).stops, ["[내용]", "[질문]", "[답변]"])
        XCTAssertEqual(ChatTemplate.removingControlTokens("a<|im_start|>b<|eot_id|>c<bos>"), "abc")
    }

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
        let (prompt, entries) = builder.build(question: "질문?", hits: hits, count: Self.count, bestSentence: { _, _ in 20 })
        XCTAssertLessThanOrEqual(Self.count(prompt), 200)
        XCTAssertEqual(entries.count, 1, "the trimmed first chunk fills the budget; the second does not fit")
        XCTAssertTrue(entries[0].truncated)
        XCTAssertTrue(entries[0].text.contains("문장21은"), "the slice is centred on the best sentence")
        XCTAssertTrue(prompt.contains("[1] 문서1 › 제1조\n"))

        let roomy = ContextBuilder(template: .korean, budgetTokens: 2000)
        let (p2, e2) = roomy.build(question: "질문?", hits: hits, count: Self.count, bestSentence: { _, _ in 0 })
        XCTAssertEqual(e2.map(\.number), [1, 2])
        XCTAssertFalse(e2[0].truncated)
        XCTAssertTrue(p2.contains("[2] 문서2 › 제2조\n짧은 두 번째 조각입니다."))
    }

    func testSentencePackingTakesEveryDocumentsBestUnitBeforeGrowingAny() {
        let long = (1...40).map { "문장\($0)은 보험 약관의 일반 내용입니다." }.joined(separator: " ")
        let clauses = (1...12).map { "절\($0)의 조건을 따르고" }.joined(separator: ", ") + " 지급합니다."
        var sameDocument = hit(1, "같은 문서의 다른 조각입니다. 둘째 문장입니다.")
        sameDocument.chunk = Chunk(documentID: "d1", ordinal: 1, text: sameDocument.chunk.text, title: "문서1", source: "d1.md",
                                   headingPath: ["제1조"], page: nil)
        let hits = [hit(1, long), sameDocument, hit(2, "짧은 두 번째 조각입니다. 다른 문장도 있습니다."), hit(3, clauses)]
        var builder = ContextBuilder(template: .korean, budgetTokens: 260)
        builder.packing = .sentences
        builder.maximumUnitTokens = 24
        let best: (SearchHit, [String]) -> Int = { hit, units in
            if hit.chunk.documentID == "d3" { return units.firstIndex { $0.contains("절7의") } ?? 0 }
            return hit.chunk.text == long ? 20 : 0
        }
        let (prompt, entries) = builder.build(question: "질문?", hits: hits, count: Self.count, bestSentence: best)
        XCTAssertLessThanOrEqual(Self.count(prompt), 260)
        // Every document is in, numbered in rank order, although the first chunk alone would fill the budget.
        XCTAssertEqual(entries.map(\.hit.chunk.documentID), ["d1", "d1", "d2", "d3"])
        XCTAssertEqual(entries.map(\.number), [1, 2, 3, 4])
        XCTAssertTrue(entries[0].text.contains("문장21은"), "the first hit keeps its best sentence")
        XCTAssertTrue(entries[0].truncated)
        // The long sentence of d3 is cut at its commas: its best clause is in, not the whole sentence.
        XCTAssertTrue(entries[3].text.contains("절7의"))
        XCTAssertFalse(entries[3].text.contains("지급합니다"), "\(entries[3].text)")
        XCTAssertTrue(entries[3].truncated)
        // What is left after the breadth pass goes to the best-ranked hit first.
        XCTAssertGreaterThan(entries[0].text.count, entries[3].text.count)

        // With room for everything, every chunk is whole.
        builder.budgetTokens = 4000
        let (_, roomy) = builder.build(question: "질문?", hits: hits, count: Self.count, bestSentence: best)
        XCTAssertEqual(roomy.map(\.text), hits.map(\.chunk.text))
        XCTAssertFalse(roomy.contains { $0.truncated })
    }

    func testSentencePackingCutsARunOnClauseBetweenWordsAndKeepsAShorterOneWhole() {
        // A list crawled without its bullets: no comma, no period, over twice the unit limit.
        let runOn = (1...30).map { "항목\($0)의기간" }.joined(separator: " ") + " 등입니다."
        // Between one and two units long, with no comma: stays one unit.
        let medium = (1...14).map { "조건\($0)을" }.joined(separator: " ") + " 충족합니다."
        let hits = [hit(1, runOn), hit(2, medium), hit(3, "짧은 세 번째 문서입니다.")]
        var builder = ContextBuilder(template: .korean, budgetTokens: 160)
        builder.packing = .sentences
        builder.maximumUnitTokens = 24
        XCTAssertGreaterThan(Self.count(runOn), 2 * 24)
        XCTAssertGreaterThan(Self.count(medium), 24)
        XCTAssertLessThanOrEqual(Self.count(medium), 2 * 24)
        let (prompt, entries) = builder.build(question: "질문?", hits: hits, count: Self.count, bestSentence: { _, _ in 0 })
        XCTAssertLessThanOrEqual(Self.count(prompt), 160)
        // The run-on sentence whole would not fit beside the others; cut between words, every document is in.
        XCTAssertEqual(entries.map(\.hit.chunk.documentID), ["d1", "d2", "d3"])
        guard entries.count == 3 else { return }
        XCTAssertTrue(entries[0].truncated)
        XCTAssertTrue(entries[0].text.hasPrefix("항목1의기간 항목2의기간"), entries[0].text)
        XCTAssertTrue(runOn.contains(entries[0].text), "a run of whole words: \(entries[0].text)")
        XCTAssertEqual(entries[1].text, medium)
        XCTAssertFalse(entries[1].truncated)
    }
}

final class RAGContextSamplerTests: XCTestCase {
    /// Six documents about one topic: retrieval returns several for any question about it.
    func index() throws -> SearchIndex {
        let dir = try temporaryDirectory("sampler")
        let filler = (1...12).map { "보험 약관의 일반 사항 \($0)번을 안내합니다." }.joined(separator: " ")
        var documents = [Document(id: "gold", title: "입원 보험금", source: "gold.md", sections: [.init(text:
            filler + " 입원 보험금은 입원 1일당 5만원을 지급합니다. " + filler)])]
        for n in 1...5 {
            documents.append(Document(id: "other\(n)", title: "보험 안내 \(n)", source: "o\(n).md", sections: [.init(text:
                "입원 보험금 청구는 서류 \(n)종을 제출합니다. " + filler)]))
        }
        let idx = try SearchIndex(directory: dir.path)
        _ = try idx.ingest(LoadResult(documents: documents), progress: false)
        return idx
    }

    /// Served-like contexts: the question's own hits packed breadth first, the gold chunk's unit
    /// holding the answer among them, several documents in; an unanswerable one has neither the
    /// gold document nor the answer.
    func testSentencePackedContextsHoldTheAnswerAmongSeveralDocumentsAndUnanswerableOnesNeither() throws {
        let model = try Gemma3Model(path: TinyDatasetModel.path, threads: 1)
        let prompt = RAGPrompt(tokenizer: model.tokenizer)
        var sampler = RAGContextSampler(index: try index(), prompt: prompt, budgetTokens: 512, mode: .bm25)
        sampler.builder.packing = .sentences
        var rng = SplitMix64(seed: 1)
        let question = "입원하면 보험금을 하루에 얼마 받나요?"
        let context = try XCTUnwrap(sampler.context(question: question, answer: "5만원", documentID: "gold", unanswerable: false,
                                                    budget: 512, rng: &rng))
        XCTAssertTrue(context.contains("입원 1일당 5만원"), context)
        XCTAssertLessThanOrEqual(prompt.encode(question: question, context: context).count, 512)
        let headers = context.split(separator: "\n").filter { $0.hasPrefix("[") }
        XCTAssertGreaterThanOrEqual(headers.count, 4, "more documents than whole-chunk packing's three share the budget: \(headers)")
        XCTAssertTrue(headers.contains { $0.contains("입원 보험금") })

        let refusal = try XCTUnwrap(sampler.context(question: question, answer: "5만원", documentID: "gold", unanswerable: true,
                                                    budget: 512, rng: &rng))
        XCTAssertFalse(refusal.contains("5만원"))
        XCTAssertFalse(refusal.contains("입원 보험금\n"), "no chunk of the gold document")
        XCTAssertTrue(refusal.contains("보험 안내"))

        // Whole-chunk packing, the default, still gives the gold chunk whole among distractors.
        sampler.builder.packing = .chunks
        let chunks = try XCTUnwrap(sampler.context(question: question, answer: "5만원", documentID: "gold", unanswerable: false,
                                                   budget: 512, rng: &rng))
        XCTAssertTrue(chunks.contains("5만원"))
    }
}

final class TrainingDataTests: XCTestCase {
    func testMalformedLinesAreSkippedWithLineNumbers() throws {
        let dir = try temporaryDirectory("train-data")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("data.jsonl").path
        try """
            {"instruction": "a", "output": "b"}
            not json
            {"instruction": "", "output": "b"}

            {"instruction": "a"}
            {"instruction": "c", "input": "d", "output": "e"}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let (records, report) = try TrainingDataReader.read(file, format: .alpaca)
        XCTAssertEqual(records.count, 2)
        XCTAssertEqual(report.lines, 5)
        XCTAssertEqual(report.skipped, 3)
        XCTAssertTrue(report.problems[0].hasSuffix("data.jsonl:2: not a JSON object"), report.problems[0])
        XCTAssertTrue(report.problems[1].contains(":3: missing or empty \"instruction\""))
        XCTAssertTrue(report.problems[2].contains(":5: missing or empty \"output\""))

        try "{\"messages\": [{\"role\": \"user\"}]}\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingDataReader.read(file, format: .chat)) { e in
            XCTAssertTrue((e as! DamdaError).message.contains("no usable chat examples"))
        }
        try "{\"question\": \"q\", \"answers\": [\"a\"], \"doc_id\": \"d-1\"}\n".write(toFile: file, atomically: true, encoding: .utf8)
        guard case let .rag(q, context, answer, doc)? = try TrainingDataReader.read(file, format: .rag).records.first else { return XCTFail() }
        XCTAssertEqual([q, answer, doc], ["q", "a", "d-1"])
        XCTAssertNil(context)
    }

    func testRenderingMasksPromptAndMatchesTheAssistantPrompt() throws {
        let model = try Gemma3Model(path: TinyDatasetModel.path, threads: 1)
        let tok = model.tokenizer
        let r = ExampleRenderer(tokenizer: tok, conversation: .gemma)
        let rag = r.rag(question: "보험금", context: "[1] 안녕\n보험금을", answer: "안녕하세요")
        let prompt = tok.encode(PromptTemplate.korean.render(question: "보험금", context: "[1] 안녕\n보험금을"), addSpecial: true, parseSpecial: false)
        XCTAssertEqual(Array(rag.ids.prefix(prompt.count)), prompt, "training prompt = the assistant's prompt")
        XCTAssertEqual(rag.isAnswer.firstIndex(of: true), prompt.count)
        XCTAssertEqual(rag.ids.last, tok.eosID)
        XCTAssertEqual(tok.decode(Array(rag.ids[prompt.count...].dropLast())), "안녕하세요")

        // Two assistant turns: both learned, user turns not; message text never becomes a control token.
        let chat = r.render(.conversation([
            ChatMessage(role: "user", content: "안녕<end_of_turn>"), ChatMessage(role: "assistant", content: "하세요"),
            ChatMessage(role: "user", content: "보험"), ChatMessage(role: "assistant", content: "보험금"),
        ]))!
        let whole = tok.encode(ChatTemplate.gemma.render([ChatMessage(role: "user", content: "안녕"), ChatMessage(role: "assistant", content: "하세요"),
                                                          ChatMessage(role: "user", content: "보험")]) + "보험금<end_of_turn>")
        XCTAssertEqual(chat.ids, whole)
        let learned = zip(chat.ids, chat.isAnswer).filter(\.1).map(\.0)
        let eot = tok.tokenID("<end_of_turn>")!
        XCTAssertEqual(learned, tok.encode("하세요", addSpecial: false, parseSpecial: false) + [eot] + tok.encode("보험금", addSpecial: false, parseSpecial: false) + [eot])

        // Truncation: drop, or cut the oldest prompt tokens and keep the answer.
        let long = TrainingSequence(ids: Array(0..<20), isAnswer: Array(repeating: false, count: 16) + Array(repeating: true, count: 4))
        XCTAssertNil(long.truncated(to: 10, policy: .drop))
        let cut = long.truncated(to: 12, policy: .prompt)!
        XCTAssertEqual(cut.ids, [0] + Array(9..<20))
        XCTAssertEqual(cut.answerTokens, 4)
        XCTAssertNil(long.truncated(to: 6, policy: .prompt), "no room left for the prompt")
    }
}
