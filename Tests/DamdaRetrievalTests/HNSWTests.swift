import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaRetrieval
import Foundation
import XCTest

final class HNSWTests: XCTestCase {
    /// Clustered unit vectors with a low intrinsic dimension, like text embeddings: 40 centres,
    /// each with its own 6 directions of variation, plus a little isotropic noise.
    static func clustered(count: Int, dimension: Int, seed: UInt64) -> [Float] {
        var g = SplitMix64(seed: 99)   // the same clusters for data and queries
        let centres = (0..<40).map { _ in (0..<dimension).map { _ in Float.random(in: -1...1, using: &g) } }
        let bases = (0..<40).map { _ in (0..<6).map { _ in (0..<dimension).map { _ in Float.random(in: -0.5...0.5, using: &g) } } }
        var r = SplitMix64(seed: seed)
        var out: [Float] = []
        for i in 0..<count {
            let c = i % centres.count
            var v = centres[c].map { $0 + Float.random(in: -0.02...0.02, using: &r) }
            for b in bases[c] {
                let a = Float.random(in: -1...1, using: &r)
                for d in 0..<dimension { v[d] += a * b[d] }
            }
            let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            out += v.map { $0 / n }
        }
        return out
    }

    func testRecallAgainstExactSearch() {
        let dim = 48, n = 4000
        let data = Self.clustered(count: n, dimension: dim, seed: 1)
        let exact = ExactVectorIndex(dimension: dim, flat: data)
        let graph = HNSWIndex(dimension: dim, vectors: data, parameters: .init(m: 16, efConstruction: 100, efSearch: 64))
        let queries = Self.clustered(count: 200, dimension: dim, seed: 2)
        var recall = 0.0
        for q in 0..<200 {
            let qv = Array(queries[(q * dim)..<((q + 1) * dim)])
            let truth = Set(exact.search(qv, k: 10, allowed: nil).map(\.index))
            let got = graph.search(qv, k: 10, efSearch: 64)
            XCTAssertEqual(got.count, 10)
            XCTAssertEqual(got.map(\.score), got.map(\.score).sorted(by: >), "best first")
            recall += Double(Set(got.map(\.index)).intersection(truth).count) / 10
        }
        recall /= 200
        XCTAssertGreaterThanOrEqual(recall, 0.98, "recall@10 vs exact")
        // A filter keeps only allowed rows; a selective one falls back to exact scoring.
        let qv = Array(queries[0..<dim])
        let even = graph.search(qv, k: 10, efSearch: 64, allowed: { $0 % 2 == 0 })
        XCTAssertTrue(even.allSatisfy { $0.index % 2 == 0 })
        let few = graph.search(qv, k: 5, efSearch: 64, allowed: { $0 < 7 })
        XCTAssertEqual(few.map(\.index), exact.search(qv, k: 5, allowed: { $0 < 7 }).map(\.index))
    }

    func testSerializationRoundTripAndCorruption() {
        let dim = 16, n = 500
        let data = Self.clustered(count: n, dimension: dim, seed: 3)
        let graph = HNSWIndex(dimension: dim, vectors: data, parameters: .init(m: 8, efConstruction: 50))
        let bytes = graph.serialized()
        guard let back = HNSWIndex(serialized: bytes, dimension: dim, vectors: data) else { return XCTFail("round trip") }
        let q = Array(data[0..<dim])
        XCTAssertEqual(back.search(q, k: 10, efSearch: 32).map(\.index), graph.search(q, k: 10, efSearch: 32).map(\.index))
        XCTAssertEqual(back.serialized(), bytes)
        // Truncations, a wrong vector count and flipped neighbour ids are rejected, never a crash.
        for cut in [0, 4, 30, bytes.count / 2, bytes.count - 1] { XCTAssertNil(HNSWIndex(serialized: bytes.prefix(cut), dimension: dim, vectors: data)) }
        XCTAssertNil(HNSWIndex(serialized: bytes, dimension: dim, vectors: Array(data.dropLast(dim))))
        var bad = bytes
        bad[bad.count - 2] = 0x7F
        XCTAssertNil(HNSWIndex(serialized: bad, dimension: dim, vectors: data))
    }

    /// The index switches to HNSW past its threshold, persists the graph, and reuses it on reopen.
    func testSearchIndexBuildsPersistsAndReusesTheGraph() throws {
        let e5 = ModelCache.directory().appendingPathComponent(ModelSpec.e5Small.fileName).path
        guard FileManager.default.fileExists(atPath: e5) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("CI must fetch the embedding model first") }
            throw XCTSkip("embedding model not fetched")
        }
        let embedder = try E5Embedder(path: e5, threads: 2)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-hnsw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("samples/insurance").path
        let exactIdx = try SearchIndex(directory: dir.path, embedder: embedder)
        _ = try exactIdx.ingest(DocumentLoader().load([samples]), progress: false)
        XCTAssertEqual(exactIdx.vectorIndexKind, "exact")
        let expected = try exactIdx.search("보험금 청구 서류", k: 5, mode: .vector).map(\.chunk.id)

        let graphIdx = try SearchIndex(directory: dir.path, embedder: embedder, hnswThreshold: 1)
        XCTAssertEqual(graphIdx.vectorIndexKind, "hnsw")
        let file = dir.appendingPathComponent("hnsw.bin")
        XCTAssertTrue(FileManager.default.fileExists(atPath: file.path))
        let written = try FileManager.default.attributesOfItem(atPath: file.path)[.modificationDate] as? Date
        XCTAssertEqual(try graphIdx.search("보험금 청구 서류", k: 5, mode: .vector).map(\.chunk.id), expected, "13 chunks: HNSW finds the exact top 5")
        usleep(20_000)
        let reopened = try SearchIndex(directory: dir.path, embedder: embedder, hnswThreshold: 1)
        XCTAssertEqual(reopened.vectorIndexKind, "hnsw")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: file.path)[.modificationDate] as? Date, written, "reused, not rebuilt")
        // A corrupt graph file is rebuilt, not trusted.
        try Data("garbage".utf8).write(to: file)
        let repaired = try SearchIndex(directory: dir.path, embedder: embedder, hnswThreshold: 1)
        XCTAssertEqual(try repaired.search("보험금 청구 서류", k: 5, mode: .vector).map(\.chunk.id), expected)
    }
}
