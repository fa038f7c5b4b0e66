import DamdaAssistant
import DamdaRetrieval
import DamdaTestSupport
import XCTest

/// The answer cache without a model: keys, signatures, persistence, invalidation, TTL, LRU, scope.
final class AnswerCacheTests: XCTestCase {
    func testNormalizationMakesTrivialVariantsOneQuestion() {
        XCTAssertEqual(CacheKey.normalize("  보험금은   언제 받나요?? "), "보험금은 언제 받나요")
        XCTAssertEqual(CacheKey.normalize("보험금은 언제 받나요."), CacheKey.normalize("보험금은 언제 받나요"))
        // NFD (decomposed jamo, as some macOS file names and web forms send) equals NFC.
        XCTAssertEqual(CacheKey.normalize("보험금".decomposedStringWithCanonicalMapping), "보험금")
        XCTAssertEqual(CacheKey.normalize("수수료 1.5%인가요?"), "수수료 1.5%인가요")
        XCTAssertNotEqual(CacheKey.normalize("보험금을 청구할 수 있나요?"), CacheKey.normalize("보험금을 청구할 수 없나요?"))
    }

    func testSignatureSeparatesNearMissesAndKeepsParaphrases() {
        func same(_ a: String, _ b: String) -> Bool { QuestionSignature(a).matches(QuestionSignature(b)) }
        XCTAssertFalse(same("보험금을 청구할 수 있나요?", "보험금을 청구할 수 없나요?"))
        XCTAssertFalse(same("대출 연장이 되나요?", "대출 연장이 안 되나요?"))
        XCTAssertFalse(same("중도 해지가 가능한가요?", "중도 해지가 불가능한가요?"))
        XCTAssertFalse(same("3년 지난 보험금도 청구할 수 있나요?", "5년 지난 보험금도 청구할 수 있나요?"))
        XCTAssertFalse(same("5000만원까지 보호되나요?", "1억원까지 보호되나요?"))
        XCTAssertFalse(same("자동차보험 갱신은 언제 하나요?", "실손보험 갱신은 언제 하나요?"))
        XCTAssertFalse(same("보험금은 누가 받나요?", "보험금은 언제 받나요?"))
        XCTAssertFalse(same("가입 전에 치료받은 질병도 보장되나요?", "가입 후에 치료받은 질병도 보장되나요?"))
        XCTAssertTrue(same("실손보험 청구 기한은 언제까지인가요?", "실손보험은 언제까지 청구 기한이 있나요?"))
        XCTAssertTrue(same("보험수익자를 변경하려면 어떻게 해야 하나요?", "보험수익자 변경은 어떻게 하나요?"))
        XCTAssertTrue(same("예금자보호 한도는 얼마인가요?", "예금자보호는 한도가 얼마인가요?"))
        XCTAssertEqual(QuestionSignature("보험료를 2개월 연체하면?").numbers, ["2개월"])
        XCTAssertEqual(QuestionSignature("1,000만원 이하").numbers, ["1000만원"])
        XCTAssertEqual(QuestionSignature("안내 문자를 받았어요").negations, [], "안 in 안내 is not a negation")
    }

    /// An answer as the server returns it (decoded from its JSON, the form the cache keeps).
    func answer(_ q: String, refused: Bool = false, documents: [String] = ["policy"]) -> AssistantAnswer {
        let citations: [[String: Any]] = documents.enumerated().map { i, d in
            ["n": i + 1, "chunk_id": "\(d)#0", "document_id": d, "title": d, "source": "\(d).md", "heading": [String](), "score": 1, "relevance": 1,
             "text": "보험금은 3영업일 이내에 지급합니다.", "best_sentence": "보험금은 3영업일 이내에 지급합니다.", "used": true]
        }
        let json: [String: Any] = [
            "id": "ans_1", "question": q, "standalone_question": q, "rewrite": "none", "answer": refused ? "답변을 찾을 수 없습니다." : "3영업일 이내입니다.",
            "raw_answer": "", "refused": refused, "refusal_reason": refused ? "model" : NSNull(), "echo_only": false, "unsupported": false,
            "citations": citations, "context": ["budget_tokens": 512, "prompt_tokens": 100, "chunks_used": citations.count, "truncated": false],
            "usage": ["prompt_tokens": 100, "completion_tokens": 5], "timings": ["retrieval_ms": 1, "generation_ms": 2, "total_ms": 3],
            "model": "m", "adapter": NSNull(), "finish_reason": "stop",
        ]
        return try! JSONDecoder().decode(AssistantAnswer.self, from: JSONSerialization.data(withJSONObject: json))
    }

    func key(_ q: String, scope: String = "local", _ edit: (inout AssistantConfig) -> Void = { _ in }) -> CacheKey {
        var c = AssistantConfig()
        c.cacheScope = scope
        edit(&c)
        return CacheKey(question: q, config: c, model: "m", adapter: nil, indexIdentity: "i")
    }

    func testExactHitsPersistAndStayWithinTheirScopeAndSettings() throws {
        let dir = try temporaryDirectory("cache")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.sqlite").path
        let settings = AnswerCacheSettings()
        let q = "보험금은 언제 받나요?"
        do {
            let cache = try AnswerCache(path: path)
            XCTAssertNil(cache.lookup(key: key(q), question: q, embedding: nil, settings: settings, isCurrent: { _ in true }))
            try cache.store(key: key(q), question: q, embedding: nil, answer: answer(q), sources: ["policy": "h1"], contentVersion: "v1", settings: settings)
        }
        let reopened = try AnswerCache(path: path)   // a restart keeps the cache
        let hit = try XCTUnwrap(reopened.lookup(key: key("보험금은  언제 받나요"), question: q, embedding: nil, settings: settings, isCurrent: { _ in true }))
        XCTAssertEqual(hit.hit, .exact)
        XCTAssertEqual(hit.answer.answer, "3영업일 이내입니다.")
        XCTAssertEqual(hit.answer.cache, .exact)
        XCTAssertNil(reopened.lookup(key: key(q, scope: "key:other"), question: q, embedding: nil, settings: settings, isCurrent: { _ in true }),
                     "another tenant never sees this answer")
        XCTAssertNil(reopened.lookup(key: key(q) { $0.k = 3 }, question: q, embedding: nil, settings: settings, isCurrent: { _ in true }))
        XCTAssertNil(reopened.lookup(key: key(q) { $0.sampling.temperature = 0.7 }, question: q, embedding: nil, settings: settings, isCurrent: { _ in true }))
        // An entry whose source changed is not served, and is gone afterwards.
        XCTAssertNil(reopened.lookup(key: key(q), question: q, embedding: nil, settings: settings, isCurrent: { _ in false }))
        XCTAssertEqual(reopened.count, 0)
        XCTAssertEqual(try AnswerCache(path: path).count, 0, "the eviction is persisted")
    }

    func testIndexChangesEvictDependentAnswersAndEveryRefusal() throws {
        let dir = try temporaryDirectory("cache")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = try AnswerCache(path: dir.appendingPathComponent("c.sqlite").path)
        let s = AnswerCacheSettings()
        final class Events: @unchecked Sendable { let lock = NSLock(); var list: [AnswerCacheEvent] = [] }
        let events = Events()
        cache.onEvent = { e in if case .evicted = e { events.lock.withLock { events.list.append(e) } } }
        try cache.store(key: key("a"), question: "a", embedding: nil, answer: answer("a", documents: ["policy"]), sources: ["policy": "h"], contentVersion: "v", settings: s)
        try cache.store(key: key("b"), question: "b", embedding: nil, answer: answer("b", documents: ["faq"]), sources: ["faq": "h"], contentVersion: "v", settings: s)
        try cache.store(key: key("c"), question: "c", embedding: nil, answer: answer("c", refused: true, documents: []), sources: [:], contentVersion: "v", settings: s)
        XCTAssertEqual(try cache.invalidate(IndexChange(added: ["new"])), 1, "a new document may answer a refusal")
        XCTAssertEqual(try cache.invalidate(IndexChange(changed: ["policy"])), 1)
        XCTAssertNil(cache.lookup(key: key("a"), question: "a", embedding: nil, settings: s, isCurrent: { _ in true }))
        XCTAssertNotNil(cache.lookup(key: key("b"), question: "b", embedding: nil, settings: s, isCurrent: { _ in true }))
        XCTAssertEqual(try cache.invalidate(IndexChange(removed: ["faq"])), 1)
        XCTAssertEqual(cache.count, 0)
        XCTAssertEqual(events.list, [.evicted(reason: "document", count: 1), .evicted(reason: "document", count: 1), .evicted(reason: "document", count: 1)])
    }

    func testTTLAndTheByteBound() throws {
        let dir = try temporaryDirectory("cache")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = try AnswerCache(path: dir.appendingPathComponent("c.sqlite").path)
        var s = AnswerCacheSettings()
        s.ttl = 60
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        try cache.store(key: key("a"), question: "a", embedding: nil, answer: answer("a"), sources: ["policy": "h"], contentVersion: "v", settings: s, now: t0)
        XCTAssertNotNil(cache.lookup(key: key("a"), question: "a", embedding: nil, settings: s, isCurrent: { _ in true }, now: t0 + 59))
        XCTAssertNil(cache.lookup(key: key("a"), question: "a", embedding: nil, settings: s, isCurrent: { _ in true }, now: t0 + 61))
        XCTAssertEqual(cache.count, 0)
        // Room for about two entries: storing a third drops the least recently used.
        s.ttl = .infinity
        try cache.store(key: key("x"), question: "x", embedding: nil, answer: answer("x"), sources: ["policy": "h"], contentVersion: "v", settings: s, now: t0)
        let one = cache.bytes
        s.maxBytes = one * 2 + one / 2
        try cache.store(key: key("y"), question: "y", embedding: nil, answer: answer("y"), sources: ["policy": "h"], contentVersion: "v", settings: s, now: t0 + 1)
        _ = cache.lookup(key: key("x"), question: "x", embedding: nil, settings: s, isCurrent: { _ in true }, now: t0 + 2)   // x is used again
        try cache.store(key: key("z"), question: "z", embedding: nil, answer: answer("z"), sources: ["policy": "h"], contentVersion: "v", settings: s, now: t0 + 3)
        XCTAssertEqual(cache.count, 2)
        XCTAssertLessThanOrEqual(cache.bytes, s.maxBytes)
        XCTAssertNotNil(cache.lookup(key: key("x"), question: "x", embedding: nil, settings: s, isCurrent: { _ in true }, now: t0 + 4))
        XCTAssertNil(cache.lookup(key: key("y"), question: "y", embedding: nil, settings: s, isCurrent: { _ in true }, now: t0 + 4))
    }

    func testSemanticHitNeedsTheCosineAndTheSignature() throws {
        let dir = try temporaryDirectory("cache")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = try AnswerCache(path: dir.appendingPathComponent("c.sqlite").path)
        var s = AnswerCacheSettings()
        s.semantic = true
        s.semanticThreshold = 0.9
        func unit(_ v: [Float]) -> [Float] { let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot(); return v.map { $0 / n } }
        let stored = "보험금을 청구할 수 있나요?"
        try cache.store(key: key(stored), question: stored, embedding: unit([1, 0, 0]), answer: answer(stored), sources: ["policy": "h"],
                        contentVersion: "v", settings: s)
        func look(_ q: String, _ v: [Float]) -> CacheHit? {
            cache.lookup(key: key(q), question: q, embedding: unit(v), settings: s, isCurrent: { _ in true })?.hit
        }
        XCTAssertEqual(look("보험금 청구를 할 수 있나요?", [1, 0.1, 0]), .semantic)
        XCTAssertNil(look("보험금을 청구할 수 없나요?", [1, 0.05, 0]), "close in meaning space, opposite in answer")
        XCTAssertNil(look("보험금 청구를 할 수 있나요?", [1, 1, 0]), "below the cosine threshold")
        XCTAssertNil(cache.lookup(key: key("보험금 청구를 할 수 있나요?", scope: "key:other"), question: "보험금 청구를 할 수 있나요?",
                                  embedding: unit([1, 0.1, 0]), settings: s, isCurrent: { _ in true }), "scopes do not share semantic hits")
    }
}
