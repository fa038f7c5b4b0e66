import DamdaTestSupport
import DamdaEngine
import DamdaModelIO
import Foundation
import XCTest

struct QuantCase: Decodable { let type: String; let count: Int; let bytes: [UInt8]; let values: [Float] }
struct QuantFixture: Decodable { let cases: [QuantCase] }

final class KernelTests: XCTestCase {
    func fixture() throws -> QuantFixture {
        let url = Bundle.module.url(forResource: "Fixtures/quant_blocks", withExtension: "json")!
        return try JSONDecoder().decode(QuantFixture.self, from: Data(contentsOf: url))
    }

    /// Dequantization agrees bit for bit with PyPI gguf's (tools/make_quant_fixtures.py).
    func testDequantizeMatchesGGUFPackage() throws {
        let cases = try fixture().cases
        XCTAssertEqual(Set(cases.map(\.type)), Set(TensorType.allCases.filter { $0 != .f32 }.map(\.name)))
        for c in cases {
            let type = TensorType(name: c.type)!
            var out = [Float](repeating: .nan, count: c.count)
            c.bytes.withUnsafeBytes { raw in
                out.withUnsafeMutableBufferPointer { QuantKernels.of(type).dequantize(raw.baseAddress!, $0.baseAddress!, c.count) }
            }
            for i in 0..<c.count {
                XCTAssertEqual(out[i], c.values[i], accuracy: abs(c.values[i]) * 1e-6 + 1e-7, "\(c.type)[\(i)]")
            }
        }
    }

    /// Every type's fused dot equals dequantize-then-fp32-dot on random blocks.
    func testDotMatchesDequantizeThenDot() throws {
        var rng = SeededGenerator(seed: 42)
        for type in TensorType.allCases {
            for blocks in [1, 2, 3, 5] {
                let n = type.blockSize == 1 ? 40 * blocks : type.blockSize * blocks
                var bytes = (0..<type.rowBytes(n)!).map { _ in UInt8.random(in: 0...255, using: &rng) }
                sanitizeScales(&bytes, type: type, values: n, rng: &rng)
                let x = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
                var deq = [Float](repeating: 0, count: n)
                let k = QuantKernels.of(type)
                let dot: Float = bytes.withUnsafeBytes { raw in
                    deq.withUnsafeMutableBufferPointer { k.dequantize(raw.baseAddress!, $0.baseAddress!, n) }
                    return x.withUnsafeBufferPointer { k.dot(raw.baseAddress!, $0.baseAddress!, n) }
                }
                var ref = 0.0, mag = 0.0
                for i in 0..<n { ref += Double(deq[i]) * Double(x[i]); mag += abs(Double(deq[i]) * Double(x[i])) }
                XCTAssertEqual(Double(dot), ref, accuracy: mag * 1e-5 + 1e-6, "\(type) with \(blocks) blocks")
            }
        }
    }

    func testMatmulBatchedEqualsMatvec() throws {
        var rng = SeededGenerator(seed: 3)
        for type in [TensorType.q8_0, .q5_0, .q4_K, .q6_K, .f16] {
            let rows = 40, cols = 512, tokens = 7
            var bytes = (0..<(rows * type.rowBytes(cols)!)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            sanitizeScales(&bytes, type: type, values: rows * cols, rng: &rng)
            let x = (0..<(tokens * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
            var batched = [Float](repeating: 0, count: tokens * rows), single = batched
            bytes.withUnsafeBytes { raw in
                let w = WeightMatrix(name: "w", type: type, rows: rows, columns: cols, data: raw.baseAddress!)
                x.withUnsafeBufferPointer { xp in
                    batched.withUnsafeMutableBufferPointer { matmul(w, xp.baseAddress!, tokens: tokens, $0.baseAddress!, threads: 2, scratch: Scratch()) }
                    single.withUnsafeMutableBufferPointer { yp in
                        for t in 0..<tokens { matvec(w, xp.baseAddress! + t * cols, yp.baseAddress! + t * rows, threads: 2) }
                    }
                }
            }
            for i in batched.indices { XCTAssertEqual(batched[i], single[i], accuracy: 1e-3 * (1 + abs(single[i])), "\(type)") }
        }
    }
}
