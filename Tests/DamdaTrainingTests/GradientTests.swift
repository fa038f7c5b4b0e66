import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaTestSupport
import DamdaTraining
import Foundation
import XCTest

/// Checks ⟨∇, d⟩ against (f(x + h·d) − f(x − h·d)) / 2h along random directions and one coordinate.
func checkGradient(_ x: [Float], gradient: [Float], h: Float = 1e-2, tolerance: Double = 2e-2, seed: UInt64 = 1,
                   _ f: ([Float]) -> Double, file: StaticString = #filePath, line: UInt = #line) {
    var rng = SplitMix64(seed: seed)
    for trial in 0..<4 {
        var d = (0..<x.count).map { _ in rng.gaussian() }
        if trial == 3 { d = [Float](repeating: 0, count: x.count); d[Int(rng.next() % UInt64(x.count))] = 1 }
        // One coordinate moves the loss far less than a full direction: a larger step keeps it above fp32 noise.
        let step = trial == 3 ? h * 10 : h
        let plus = zip(x, d).map { $0 + step * $1 }, minus = zip(x, d).map { $0 - step * $1 }
        let numeric = (f(plus) - f(minus)) / Double(2 * step)
        let analytic = zip(gradient, d).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(analytic, numeric, accuracy: tolerance * max(1, abs(numeric)), "direction \(trial)", file: file, line: line)
    }
}

/// f's derivative along d at x from 16 evaluations: g(h) = (f(x + h·d) − f(x − h·d)) / 2 at
/// h = 2.5e-3 … 2e-2 fitted by least squares as c₁h + c₃h³. One difference quotient carries the
/// loss's fp32 rounding divided by 2h; the fit averages it over the eight steps and takes the
/// cubic term out instead of trusting one h.
func fittedDerivative(_ f: ([Float]) -> Double, at x: [Float], along d: [Float]) -> Double {
    var s2 = 0.0, s4 = 0.0, s6 = 0.0, sg1 = 0.0, sg3 = 0.0
    for i in 1...8 {
        let h = Float(i) * 2.5e-3, hd = Double(h)
        let g = (f(zip(x, d).map { $0 + h * $1 }) - f(zip(x, d).map { $0 - h * $1 })) / 2
        s2 += hd * hd; s4 += pow(hd, 4); s6 += pow(hd, 6); sg1 += g * hd; sg3 += g * pow(hd, 3)
    }
    // Normal equations of [h h³] · [c₁ c₃]ᵀ = g.
    return (sg1 * s6 - sg3 * s4) / (s2 * s6 - s4 * s4)
}

/// The summed cross-entropy of `batch` as a function of the adapter's parameters (gradients left in `bp`).
func lossFunction(_ bp: DecoderBackprop, _ batch: PackedBatch, seed: UInt64) -> ([Float]) -> Double {
    { p in
        p.withUnsafeBufferPointer { bp.adapter.parameters.update(from: $0.baseAddress!, count: p.count) }
        bp.zeroGradients()
        return try! bp.accumulate(batch, lossScale: 1, dropoutSeed: seed).lossSum
    }
}

/// Σ cross-entropy over `batch`'s targets from the inference engine's own logits, one segment at a time.
func engineCrossEntropy(_ model: any AdaptableModel, _ batch: PackedBatch) throws -> (sum: Double, count: Int) {
    var sum = 0.0, count = 0
    let V = model.vocabularySize
    for seg in batch.segments {
        let logits = try model.forward(Array(batch.tokens[seg]), cache: model.makeCache(capacity: 64), logits: .all)
        for (i, t) in seg.enumerated() where batch.targets[t] >= 0 {
            let row = logits[(i * V)..<((i + 1) * V)]
            let m = row.max()!
            sum += Double(m) + log(row.reduce(0.0) { $0 + exp(Double($1 - m)) }) - Double(row[row.startIndex + Int(batch.targets[t])])
            count += 1
        }
    }
    return (sum, count)
}

/// Every backward op against central finite differences, then the whole model's LoRA gradient.
final class OpGradientTests: XCTestCase {
    var rng = SplitMix64(seed: 7)

    func random(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.gaussian() * scale } }

    /// Σ r ⊙ y in double precision: a scalar whose gradient with respect to y is r.
    func project(_ y: [Float], _ r: [Float]) -> Double { zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }

    func testRMSNorm() {
        let rows = 3, n = 16
        let x = random(rows * n), w = random(n), r = random(rows * n)
        func f(_ x: [Float]) -> Double {
            var y = [Float](repeating: 0, count: rows * n)
            Ops.rmsNorm(x, w, &y, rows: rows, n: n, eps: 1e-6)
            return project(y, r)
        }
        var dx = [Float](repeating: 0, count: rows * n)
        OpsBackward.rmsNorm(x: x, weight: w, dy: r, dx: &dx, rows: rows, n: n, eps: 1e-6, accumulate: false)
        checkGradient(x, gradient: dx, f)
    }

    func testRoPE() {
        let tokens = 5, heads = 2, dim = 8
        let table = RopeTable(positions: 0..<tokens, nRot: dim, base: 10_000, freqScale: 1)
        let x = random(tokens * heads * dim), r = random(tokens * heads * dim)
        func f(_ x: [Float]) -> Double {
            var y = x
            Ops.rope(&y, tokens: tokens, heads: heads, dim: dim, table: table)
            return project(y, r)
        }
        var dx = r
        OpsBackward.rope(&dx, tokens: tokens, heads: heads, dim: dim, table: table)
        checkGradient(x, gradient: dx, f)
    }

    func testGELUGate() {
        let n = 40
        let g = random(n, scale: 2), u = random(n), r = random(n)
        func tanhOf(_ g: [Float]) -> [Float] { g.map { tanhf(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0)) } }
        func f(_ gu: [Float]) -> Double {
            let g = Array(gu[0..<n]), u = Array(gu[n...])
            var y = [Float](repeating: 0, count: n)
            OpsBackward.geluGateForward(g: g, u: u, tanh: tanhOf(g), out: &y, n)
            return project(y, r)
        }
        var dg = r, du = [Float](repeating: 0, count: n)
        OpsBackward.geluGate(g: g, u: u, tanh: tanhOf(g), da: &dg, du: &du, n)
        checkGradient(g + u, gradient: dg + du, f)
    }

    func testInterleavedRoPEAndSiLUGate() {
        let tokens = 4, heads = 2, dim = 8
        let table = RopeTable(positions: 0..<tokens, nRot: dim, base: 10_000, freqScale: 1)
        let x = random(tokens * heads * dim), r = random(tokens * heads * dim)
        var dx = r
        OpsBackward.ropeInterleaved(&dx, tokens: tokens, heads: heads, dim: dim, table: table)
        checkGradient(x, gradient: dx) { x in
            var y = x
            Ops.ropeInterleaved(&y, tokens: tokens, heads: heads, dim: dim, table: table)
            return self.project(y, r)
        }
        let n = 30
        let g = random(n, scale: 2), u = random(n), rr = random(n)
        var dg = rr, du = [Float](repeating: 0, count: n)
        OpsBackward.siluGate(g: g, u: u, da: &dg, du: &du, n)
        checkGradient(g + u, gradient: dg + du) { gu in
            var a = Array(gu[0..<n])
            Ops.siluGate(&a, Array(gu[n...]), n)
            return self.project(a, rr)
        }
    }

    /// Grouped-query attention over two packed sequences, causal and sliding-window masks.
    func testAttention() {
        for (window, block) in [(nil, 64), (2, 64), (nil, 2), (3, 2)] as [(Int?, Int)] {
            var att = TrainingAttention(heads: 4, kvHeads: 2, headDim: 8, valueDim: 6, window: window)
            att.block = block  // 2: several query blocks, each skipping keys past its last row
            att.threads = 2    // heads split across threads, which sum dK and dV privately
            let segments = [0..<5, 5..<9]
            let T = 9
            let q = random(T * 4 * 8, scale: 0.7), k = random(T * 2 * 8, scale: 0.7), v = random(T * 2 * 6), r = random(T * 4 * 6)
            func run(_ q: [Float], _ k: [Float], _ v: [Float]) -> (out: [Float], probs: [Float]) {
                var out = [Float](repeating: 0, count: T * 4 * 6), probs = [Float](repeating: 0, count: att.probabilityCount(segments))
                att.forward(q: q, k: k, v: v, segments: segments, probs: &probs, out: &out)
                return (out, probs)
            }
            let (_, probs) = run(q, k, v)
            var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = [Float](repeating: 0, count: v.count)
            att.backward(q: q, k: k, v: v, segments: segments, probs: probs, dOut: r, dq: &dq, dk: &dk, dv: &dv)
            let nq = q.count, nk = k.count
            checkGradient(q + k + v, gradient: dq + dk + dv) { p in
                project(run(Array(p[0..<nq]), Array(p[nq..<(nq + nk)]), Array(p[(nq + nk)...])).out, r)
            }
            // Packing: the second sequence's output does not depend on the first's keys.
            var k2 = k
            for i in 0..<(5 * 2 * 8) { k2[i] += 1 }
            let a = run(q, k, v).out, b = run(q, k2, v).out
            XCTAssertEqual(Array(a[(5 * 24)...]), Array(b[(5 * 24)...]))
        }
    }
}

/// The whole Gemma 3 training pass on a tiny random model (quantized base weights of several types).
final class ModelGradientTests: XCTestCase {
    static let modelPath: String = {
        let dir = try! temporaryDirectory("train-grad")
        let path = dir.appendingPathComponent("tiny-gemma3.gguf").path
        var shape = TinyModels.GemmaShape()
        shape.layers = 3; shape.embedding = 256; shape.feedForward = 256; shape.window = 3  // K-quant rows need multiples of 256
        try! TinyModels.writeGemma3(to: path, shape: shape, seed: 3)
        return path
    }()

    func makeBatch(vocabulary: Int) -> PackedBatch {
        var rng = SplitMix64(seed: 11)
        var batch = PackedBatch()
        for length in [7, 5] {
            let ids = (0..<length).map { _ in Int32(rng.next() % UInt64(vocabulary)) }
            batch.append(ids: ids, lossFrom: 2)
        }
        return batch
    }

    func testLoRAGradientMatchesFiniteDifferences() throws {
        let model = try Gemma3Model(path: Self.modelPath, threads: 1)
        for dropout: Float in [0, 0.3] {
            let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: 3, alpha: 6, targets: LoRATarget.allCases)
            // Random A and B so that both get a gradient (B = 0 would zero A's).
            var rng = SplitMix64(seed: 5)
            for i in 0..<adapter.count { adapter.parameters[i] = rng.gaussian() * 0.2 }
            let bp = try DecoderBackprop(model: model, adapter: adapter, dropout: dropout, threads: 1)
            bp.vocabularyTile = 100  // several tiles of the online softmax
            let batch = makeBatch(vocabulary: model.vocabularySize)
            let theta = Array(UnsafeBufferPointer(start: adapter.parameters, count: adapter.count))
            let loss = lossFunction(bp, batch, seed: 99)
            _ = loss(theta)
            let grad = Array(UnsafeBufferPointer(start: bp.gradients, count: adapter.count))
            XCTAssertGreaterThan(grad.map(abs).max()!, 0)
            checkGradient(theta, gradient: grad, h: 3e-3, tolerance: 3e-2, loss)
            // Each target's slice on its own (a sign or layout error in one projection shows here).
            for t in LoRATarget.allCases {
                let s = adapter.slots[1][t]!
                var d = [Float](repeating: 0, count: adapter.count)
                for i in s.a..<(s.b + s.output * adapter.rank) { d[i] = rng.gaussian() }
                let numeric = fittedDerivative(loss, at: theta, along: d)
                let analytic = zip(grad, d).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                // The loss (a sum near 3,800) is fp32 on the real model: its rounding moves one
                // difference quotient at h = 3e-3 by ±0.15 whatever the derivative's size, and
                // another product kernel moves it elsewhere in that range (gate with dropout 0.3
                // read −0.72 and −0.85 against the analytic −0.85). The fit over eight steps
                // leaves ±0.04 with either kernel; small slices get that much absolute slack. A sign or
                // layout error is off by O(1).
                XCTAssertEqual(analytic, numeric, accuracy: 0.05 + 3e-2 * abs(numeric), "\(t), dropout \(dropout)")
            }
            _ = loss(theta)
        }
    }

    /// Llama (adjacent-pair RoPE, separate output matrix) and Qwen 2 (NEOX RoPE, Q/K/V biases, tied output).
    func testLlamaAndQwen2LoRAGradients() throws {
        for arch in ["llama", "qwen2"] {
            let dir = try temporaryDirectory("train-\(arch)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("tiny.gguf").path
            try TinyModels.writeLlama(to: path, architecture: arch)
            let model = try LlamaModel(file: try GGUFFile(path: path), threads: 1)
            let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: 3, alpha: 6, targets: LoRATarget.allCases)
            var rng = SplitMix64(seed: 6)
            // Small weights: the random model's logits are large, so keep the check in the linear regime.
            for i in 0..<adapter.count { adapter.parameters[i] = rng.gaussian() * 0.02 }
            let bp = try DecoderBackprop(model: model, adapter: adapter, dropout: 0.2, threads: 1)
            bp.vocabularyTile = 128
            let batch = makeBatch(vocabulary: model.vocabularySize)
            let theta = Array(UnsafeBufferPointer(start: adapter.parameters, count: adapter.count))
            let loss = lossFunction(bp, batch, seed: 4)
            let lossSum = loss(theta)
            let grad = Array(UnsafeBufferPointer(start: bp.gradients, count: adapter.count))
            checkGradient(theta, gradient: grad, h: 2e-4, tolerance: 3e-2, seed: 2, loss)

            // Training loss = the engine's cross-entropy with the adapter (dropout off).
            _ = loss(theta)
            bp.dropout = 0
            let clean = try bp.loss(batch).lossSum
            model.adapter = adapter
            let expected = try engineCrossEntropy(model, batch).sum
            model.adapter = nil
            XCTAssertEqual(clean, expected, accuracy: 1e-3 * abs(expected), arch)
            XCTAssertNotEqual(clean, lossSum, "dropout should change the loss")
        }
    }

    /// The training forward computes the same loss as the inference engine with the adapter applied,
    /// and recomputation gives the same gradients as keeping activations.
    func testTrainingLossMatchesEngineAndRecompute() throws {
        let model = try Gemma3Model(path: Self.modelPath, threads: 1)
        let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: 4, alpha: 8, targets: [.q, .v, .down])
        var rng = SplitMix64(seed: 8)
        for i in 0..<adapter.count { adapter.parameters[i] = rng.gaussian() * 0.1 }
        let batch = makeBatch(vocabulary: model.vocabularySize)
        let bp = try DecoderBackprop(model: model, adapter: adapter, threads: 1)
        let (lossSum, count) = try bp.accumulate(batch, lossScale: 1, dropoutSeed: 0)
        let kept = Array(UnsafeBufferPointer(start: bp.gradients, count: adapter.count))

        model.adapter = adapter
        let (expected, expectedCount) = try engineCrossEntropy(model, batch)
        model.adapter = nil
        XCTAssertEqual(count, expectedCount)
        XCTAssertEqual(lossSum, expected, accuracy: 1e-3 * expected)

        bp.zeroGradients()
        bp.recompute = true
        let (recomputedLoss, _) = try bp.accumulate(batch, lossScale: 1, dropoutSeed: 0)
        XCTAssertEqual(recomputedLoss, lossSum)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: bp.gradients, count: adapter.count)), kept)
    }

    /// Splitting the work across threads (products, attention heads, dropout streams, the LM head's
    /// rows) changes nothing but summation order.
    func testThreadsGiveTheSameGradients() throws {
        let model = try Gemma3Model(path: Self.modelPath, threads: 1)
        let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: 4, alpha: 8, targets: LoRATarget.allCases)
        var rng = SplitMix64(seed: 9)
        for i in 0..<adapter.count { adapter.parameters[i] = rng.gaussian() * 0.1 }
        // Long enough that every parallel path engages (products, heads, elementwise ranges).
        var batch = PackedBatch()
        for length in [150, 90] {
            batch.append(ids: (0..<length).map { _ in Int32(rng.next() % UInt64(model.vocabularySize)) }, lossFrom: length / 2)
        }
        var results: [(Double, [Float])] = []
        for threads in [1, 2] {
            let bp = try DecoderBackprop(model: model, adapter: adapter, dropout: 0.2, threads: threads)
            bp.vocabularyTile = 100
            let (loss, _) = try bp.accumulate(batch, lossScale: 1, dropoutSeed: 3)
            results.append((loss, Array(UnsafeBufferPointer(start: bp.gradients, count: adapter.count))))
        }
        XCTAssertEqual(results[0].0, results[1].0, accuracy: 1e-5 * abs(results[0].0))
        let scale = results[0].1.map(abs).max()!
        XCTAssertGreaterThan(scale, 0)
        for (a, b) in zip(results[0].1, results[1].1) { XCTAssertEqual(a, b, accuracy: 1e-4 * scale) }
    }
}
