import DamdaCore
import DamdaEngine
import DamdaTestSupport
import Foundation
import XCTest

/// Batched decoding gives every sequence bit for bit what its lone decode gives: the same greedy
/// tokens and the same fp32 logits, for batches of 1, 3 and 8 sequences at different lengths.
final class BatchedDecodeTests: XCTestCase {
    static let path = NSTemporaryDirectory() + "damda-batch-gemma3-\(getpid()).gguf"
    override class func setUp() { try! TinyModels.writeGemma3(to: path) }
    override class func tearDown() { try? FileManager.default.removeItem(atPath: path) }

    /// Prompts of different lengths (so positions, windows and caches differ across the batch).
    func prompts(_ model: any LanguageModel, count: Int) -> [[Int32]] {
        let texts = ["the 안녕하세요", "보험금을 zebra is the", "a", "안녕 the in an is a the 보험금 니다",
                     "zebra\n\nthe", "습니다 0 1 2 the", "in in in", "the 안녕하세요 보험금을 zebra\n\n<start_of_turn>is"]
        return (0..<count).map { model.tokenizer.encode(texts[$0 % texts.count] + String(repeating: " a", count: $0)) }
    }

    /// Decodes `steps` tokens for each prompt alone, then all together in batched steps; slot i
    /// wants logits when `wantsLogits(i)`. Returns (lone, batched) results per sequence.
    func run(_ model: any LanguageModel, prompts: [[Int32]], steps: Int, wantsLogits: (Int) -> Bool) throws
        -> (lone: [[DecodeResult]], batched: [[DecodeResult]]) {
        func next(_ r: DecodeResult) -> Int32 {
            switch r {
            case let .greedy(t): t
            case let .logits(l): Int32(Ops.argmax(l))
            case let .top(top): top.tokens[Ops.argmax(top.values)]
            }
        }
        var lone: [[DecodeResult]] = []
        for (i, p) in prompts.enumerated() {
            let cache = model.makeCache(capacity: p.count + steps + 1)
            var token = try model.forwardGreedy(p, cache: cache)
            var results: [DecodeResult] = []
            for _ in 0..<steps {
                let r = wantsLogits(i) ? DecodeResult.logits(try model.forward([token], cache: cache, logits: .last))
                    : .greedy(try model.forwardGreedy([token], cache: cache))
                results.append(r)
                token = next(r)
            }
            lone.append(results)
        }
        let caches = prompts.map { model.makeCache(capacity: $0.count + steps + 1) }
        var tokens = try zip(prompts, caches).map { try model.forwardGreedy($0, cache: $1) }
        var batched = [[DecodeResult]](repeating: [], count: prompts.count)
        for _ in 0..<steps {
            let slots = tokens.indices.map { DecodeSlot(token: tokens[$0], cache: caches[$0], wantsLogits: wantsLogits($0)) }
            let results = try model.decodeStep(slots)
            XCTAssertEqual(results.count, slots.count)
            for (i, r) in results.enumerated() { batched[i].append(r); tokens[i] = next(r) }
        }
        return (lone, batched)
    }

    func testBatchedDecodeEqualsLoneDecodeOnTinyGemma() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        XCTAssertNotNil(model as? any BatchDecoding)
        for count in [1, 3, 8] {
            for mixed in [false, true] {
                let (lone, batched) = try run(model, prompts: prompts(model, count: count), steps: 6) { mixed && $0 % 2 == 1 }
                XCTAssertEqual(batched, lone, "\(count) sequences, \(mixed ? "greedy and logits" : "greedy")")
            }
        }
    }

    func testBatchedDecodeWithAnAdapterEqualsLoneDecode() throws {
        let model = try Gemma3Model(path: Self.path, threads: 2)
        let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: 4, alpha: 8, targets: LoRATarget.allCases)
        var rng = SplitMix64(seed: 11)
        for i in 0..<adapter.count { adapter.parameters[i] = rng.gaussian() * 0.05 }
        model.adapter = adapter
        let (lone, batched) = try run(model, prompts: prompts(model, count: 5), steps: 5) { $0 == 2 }
        XCTAssertEqual(batched, lone)
    }

    func testBatchErrorsAreClear() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let cache = model.makeCache(capacity: 4)
        XCTAssertThrowsError(try model.decodeStep([DecodeSlot(token: 5, cache: cache, wantsLogits: false),
                                                   DecodeSlot(token: 6, cache: cache, wantsLogits: false)])) { error in
            guard case EngineError.sharedCacheInBatch = error else { return XCTFail("\(error)") }
        }
        let other = model.makeCache(capacity: 4)
        XCTAssertThrowsError(try model.decodeStep([DecodeSlot(token: 5, cache: cache, wantsLogits: false),
                                                   DecodeSlot(token: -1, cache: other, wantsLogits: false)])) { error in
            guard case EngineError.badToken = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(cache.count, 0, "a refused batch changes no cache")
        let full = model.makeCache(capacity: 1)
        _ = try model.forwardGreedy([5], cache: full)
        XCTAssertThrowsError(try model.decodeStep([DecodeSlot(token: 5, cache: cache, wantsLogits: false),
                                                   DecodeSlot(token: 6, cache: full, wantsLogits: false)])) { error in
            guard case EngineError.contextOverflow = error else { return XCTFail("\(error)") }
        }
    }

    /// The default model, whose output matrix takes the screened greedy head: eight sequences.
    func testBatchedDecodeEqualsLoneDecodeOnTheDefaultModel() throws {
        let model = try loadModel(path: try defaultModelPath(), threads: 2)
        let texts = ["대한민국의 수도는", "The capital of France is", "보험금 청구 서류는 무엇인가요?", "1 + 1 =",
                     "아래 [내용]을 참고해서 [질문]에 대해 답변해주세요.", "Once upon a time", "입원 1일당", "def fib(n):"]
        let prompts = texts.enumerated().map { model.tokenizer.encode($1 + String(repeating: " 그리고", count: $0 * 3)) }
        for count in [3, 8] {
            let (lone, batched) = try run(model, prompts: Array(prompts.prefix(count)), steps: 12) { $0 % 2 == 1 }
            XCTAssertEqual(batched, lone, "\(count) sequences")
        }
    }

    /// Sampling's decode steps (`.top`, alone and in batches of 3 and 8 beside greedy and logits
    /// slots) hand back, for every sequence, logits that are its lone step's bit for bit, over a
    /// set that holds its lone step's largest and the tokens asked for by name.
    func assertTopLogitsAreTheLoneLogits(_ model: any LanguageModel, prompts: [[Int32]], steps: Int, count wanted: Int,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        for batch in [1, 3, 8] where batch <= prompts.count {
            let chosen = Array(prompts.prefix(batch))
            // Lone: every logit, each sequence going on with its likeliest token.
            var lone: [[[Float]]] = []
            for p in chosen {
                let cache = model.makeCache(capacity: p.count + steps + 1)
                var token = try model.forwardGreedy(p, cache: cache)
                var each: [[Float]] = []
                for _ in 0..<steps {
                    let logits = try model.forward([token], cache: cache, logits: .last)
                    each.append(logits)
                    token = Int32(Ops.argmax(logits))
                }
                lone.append(each)
            }
            let caches = chosen.map { model.makeCache(capacity: $0.count + steps + 1) }
            var tokens = try zip(chosen, caches).map { try model.forwardGreedy($0, cache: $1) }
            for step in 0..<steps {
                // In batches, the last two slots greedy and wanting every logit; eight take the screened head.
                let outputs: [DecodeOutput] = tokens.indices.map { i in
                    batch == 1 || i < batch - 2 ? .top(count: wanted, including: [Int32(i), 3]) : i == batch - 2 ? .greedy : .logits
                }
                let head = (model as? Gemma3Model)?.greedyHead
                head?.lastCandidates = 0
                let results = try model.decodeStep(tokens.indices.map { DecodeSlot(token: tokens[$0], cache: caches[$0], output: outputs[$0]) })
                if let head, head.screensTopLogits(count: batch - 2) {
                    XCTAssertGreaterThan(head.lastCandidates, 0, "batch \(batch): the screened head ran", file: file, line: line)
                }
                for (i, r) in results.enumerated() {
                    let want = lone[i][step], name = "batch \(batch), sequence \(i), step \(step)"
                    switch r {
                    case let .top(top):
                        XCTAssertEqual(top.vocabulary, want.count, name, file: file, line: line)
                        for (t, v) in zip(top.tokens, top.values) { XCTAssertEqual(v.bitPattern, want[Int(t)].bitPattern, name, file: file, line: line) }
                        let largest = want.withUnsafeBufferPointer { Sampler.topIndices($0, wanted) }.map { Int32($0) }
                        XCTAssertTrue(Set(largest + [Int32(i), 3]).isSubset(of: top.tokens), name, file: file, line: line)
                    case let .greedy(t): XCTAssertEqual(t, Int32(Ops.argmax(want)), name, file: file, line: line)
                    case let .logits(l): XCTAssertEqual(l, want, name, file: file, line: line)
                    }
                    tokens[i] = Int32(Ops.argmax(want))
                }
            }
        }
    }

    func testTopLogitsAreTheLoneLogitsOnTinyGemma() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        try assertTopLogitsAreTheLoneLogits(model, prompts: prompts(model, count: 8), steps: 5, count: 20)
    }

    func testTopLogitsAreTheLoneLogitsOnTheDefaultModel() throws {
        let model = try loadModel(path: try defaultModelPath(), threads: 2)
        let texts = ["대한민국의 수도는", "The capital of France is", "보험금 청구 서류는 무엇인가요?", "1 + 1 =",
                     "아래 [내용]을 참고해서 [질문]에 대해 답변해주세요.", "Once upon a time", "입원 1일당", "def fib(n):"]
        try assertTopLogitsAreTheLoneLogits(model, prompts: texts.map { model.tokenizer.encode($0) }, steps: 6, count: 1024)
    }
}
