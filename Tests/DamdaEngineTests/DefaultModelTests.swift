import DamdaTestSupport
import DamdaEngine
import DamdaModelIO
import Foundation
import XCTest

struct LogitsPrompt: Decodable {
    let name: String
    let text: String
    let ids: [Int32]
    let top: [[Double]]
    let probe: [[Double]]
    let greedy: [Int32]
}
struct LogitsFixture: Decodable { let prompts: [LogitsPrompt] }


/// Gemma 3 270M Q4_K_M against `shared/tools/gemma3_ref.py` (float64): fixtures made by
/// `python3 tools/make_engine_fixtures.py`.
final class DefaultModelTests: XCTestCase {
    nonisolated(unsafe) static var model: (any LanguageModel)?

    func loadFixture() throws -> LogitsFixture {
        let url = Bundle.module.url(forResource: "Fixtures/gemma3_logits", withExtension: "json")!
        return try JSONDecoder().decode(LogitsFixture.self, from: Data(contentsOf: url))
    }

    func model() throws -> any LanguageModel {
        if let m = Self.model { return m }
        let m = try loadModel(path: try defaultModelPath(), threads: 2)
        Self.model = m
        return m
    }

    func testLogitsWithinTolerance() throws {
        let fixture = try loadFixture()
        XCTAssertGreaterThanOrEqual(fixture.prompts.count, 5)
        let m = try model()
        for p in fixture.prompts {
            XCTAssertEqual(m.tokenizer.encode(p.text), p.ids, "\(p.name): token ids")
            let logits = try m.forward(p.ids, cache: m.makeCache(capacity: p.ids.count), logits: .last)
            var maxDiff = 0.0
            for pair in p.top + p.probe {
                maxDiff = max(maxDiff, abs(Double(logits[Int(pair[0])]) - pair[1]))
            }
            XCTAssertLessThan(maxDiff, 0.02, "\(p.name) (\(p.ids.count) tokens): max |Δlogit| \(maxDiff)")
            let best = logits.indices.max { logits[$0] < logits[$1] }!
            XCTAssertEqual(best, Int(p.top[0][0]), "\(p.name): top-1")
        }
    }

    func testGreedyContinuationsIdentical() throws {
        let fixture = try loadFixture()
        let m = try model()
        let gen = Generator(model: m)
        for p in fixture.prompts {
            var req = GenerationRequest(prompt: p.ids, maxTokens: p.greedy.count)
            req.stopAtEndOfGeneration = false
            XCTAssertEqual(try gen.generate(req).tokens, p.greedy, p.name)
        }
    }
}
