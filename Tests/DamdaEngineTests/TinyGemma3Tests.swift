import DamdaTestSupport
import DamdaEngine
import DamdaModelIO
import DamdaTokenizer
import Foundation
import XCTest

/// A tiny random Gemma 3 (every tensor type, window 4 so the sliding mask matters) against the
/// independent NumPy reference `shared/tools/gemma3_ref.py` run on the same file.
final class TinyGemma3Tests: XCTestCase {
    static let path = NSTemporaryDirectory() + "damda-tiny-gemma3-\(getpid()).gguf"

    override class func setUp() {
        try! TinyModels.writeGemma3(to: path)
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: path) }

    let text = "the 안녕하세요 보험금을 zebra\n\n<start_of_turn>is"

    func testTokenIDsMatchReference() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let ours = model.tokenizer.encode(text)
        let out = try TinyModels.python([TinyModels.sharedTools.appendingPathComponent("gemma3_ref.py").path,
                                         "--model", Self.path, "--prompt", text, "--tokenize-only"])
        let line = out.split(separator: "\n").first { $0.hasPrefix("ids:") }!
        let ref = line.dropFirst(4).split(separator: ",").map { Int32($0.trimmingCharacters(in: .whitespaces))! }
        XCTAssertEqual(ours, ref)
    }

    func testAllPositionLogitsMatchReference() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let ids = model.tokenizer.encode(text)
        XCTAssertGreaterThan(ids.count, 8, "long enough to cross the 4-token window")
        let npy = URL(fileURLWithPath: NSTemporaryDirectory() + "damda-ref-\(getpid()).npy")
        defer { try? FileManager.default.removeItem(at: npy) }
        _ = try TinyModels.python([TinyModels.sharedTools.appendingPathComponent("gemma3_ref.py").path,
                                   "--model", Self.path, "--ids", ids.map(String.init).joined(separator: ","),
                                   "--logits-out", npy.path, "--all-logits"])
        let ref = try TinyModels.readNPY(npy)
        let ours = try model.forward(ids, cache: model.makeCache(capacity: 64), logits: .all)
        XCTAssertEqual(ours.count, ref.count)
        var maxDiff: Float = 0, maxMag: Float = 0
        for i in ours.indices { maxDiff = max(maxDiff, abs(ours[i] - ref[i])); maxMag = max(maxMag, abs(ref[i])) }
        XCTAssertLessThan(maxDiff, 1e-4 * max(maxMag, 1), "max |Δ| \(maxDiff) over logits up to \(maxMag)")
    }

    /// Decode with the KV cache one token at a time equals the batched prefill (sgemm path).
    func testIncrementalDecodeEqualsBatchedPrefill() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let ids = model.tokenizer.encode(text)
        let full = try model.forward(ids, cache: model.makeCache(capacity: 64), logits: .all)
        let cache = model.makeCache(capacity: 64)
        var inc = try model.forward(Array(ids.prefix(5)), cache: cache, logits: .all)
        for t in ids.dropFirst(5) { inc += try model.forward([t], cache: cache, logits: .all) }
        var maxDiff: Float = 0
        for i in full.indices { maxDiff = max(maxDiff, abs(full[i] - inc[i])) }
        XCTAssertLessThan(maxDiff, 1e-3)
    }

    /// Prefill attention runs its queries in blocks of `attentionQueryBlock` rows, each against the keys its
    /// rows can see. A prompt of several blocks, whole, in slices that start mid-block, and a token
    /// at a time (the decode path, which has no blocks) must give the same logits at every position.
    func testBlockedPrefillAttentionEqualsSlicedAndIncrementalPrefill() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        var ids = model.tokenizer.encode(text)
        while ids.count < 3 * attentionQueryBlock + 17 { ids += ids.dropFirst() }
        ids = Array(ids.prefix(3 * attentionQueryBlock + 17))
        let capacity = ids.count + 1
        let whole = try model.forward(ids, cache: model.makeCache(capacity: capacity), logits: .all)
        let sliceCache = model.makeCache(capacity: capacity)
        var sliced: [Float] = []
        for lo in stride(from: 0, to: ids.count, by: 37) {
            sliced += try model.forward(Array(ids[lo..<min(ids.count, lo + 37)]), cache: sliceCache, logits: .all)
        }
        let tokenCache = model.makeCache(capacity: capacity)
        var incremental: [Float] = []
        for t in ids { incremental += try model.forward([t], cache: tokenCache, logits: .all) }
        XCTAssertEqual(whole.count, sliced.count)
        XCTAssertEqual(whole.count, incremental.count)
        var slicedDiff: Float = 0, incrementalDiff: Float = 0
        for i in whole.indices {
            slicedDiff = max(slicedDiff, abs(whole[i] - sliced[i]))
            incrementalDiff = max(incrementalDiff, abs(whole[i] - incremental[i]))
        }
        XCTAssertLessThan(slicedDiff, 1e-3)
        XCTAssertLessThan(incrementalDiff, 1e-3)
    }

    func testContextOverflowAndBadTokensAreErrors() throws {
        let model = try loadModel(path: Self.path, threads: 1)
        let cache = model.makeCache(capacity: 4)
        XCTAssertThrowsError(try model.forward([2, 300, 301, 302, 303], cache: cache, logits: .last)) { e in
            guard case EngineError.contextOverflow = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try model.forward([2, 99_999], cache: model.makeCache(capacity: 8), logits: .last))
        XCTAssertThrowsError(try model.forward([], cache: model.makeCache(capacity: 8), logits: .last))
    }

    func testGreedyGenerationIsDeterministicAndStops() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let gen = Generator(model: model)
        var req = GenerationRequest(prompt: model.tokenizer.encode("the"), maxTokens: 12)
        req.stopAtEndOfGeneration = false
        let a = try gen.generate(req), b = try gen.generate(req)
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertEqual(a.tokens.count, 12)
        XCTAssertEqual(a.finishReason, .length)
        // The same text with a stop string cut at its first occurrence.
        if let stopAt = a.text.dropFirst(3).first.map(String.init), !stopAt.isEmpty {
            var r2 = req
            r2.stop = [stopAt]
            let c = try gen.generate(r2)
            XCTAssertEqual(c.finishReason, .stop)
            XCTAssertFalse(c.text.contains(stopAt))
            XCTAssertTrue(a.text.hasPrefix(c.text))
        }
        // Sampling with a seed is reproducible.
        var r3 = req
        r3.sampling = SamplingParameters(temperature: 0.9, topK: 20, topP: 0.9, minP: 0.01, repetitionPenalty: 1.1, seed: 7)
        XCTAssertEqual(try gen.generate(r3).tokens, try gen.generate(r3).tokens)
    }

    /// The refusal gate decides the first token by probability and leaves the rest of greedy
    /// decoding exact: the probability is the softmax of the plain forward's logits, a gate that
    /// does not bind reproduces the ungated run token for token, and a binding one excludes or forces.
    func testFirstTokenGateDecidesByProbabilityAndKeepsDecodingExact() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let gen = Generator(model: model)
        let prompt = model.tokenizer.encode("the 안녕하세요")
        var req = GenerationRequest(prompt: prompt, maxTokens: 8)
        req.stopAtEndOfGeneration = false
        let plain = try gen.generate(req)
        let logits = try model.forward(prompt, cache: model.makeCache(capacity: 64), logits: .last)
        let ranked = logits.indices.sorted { logits[$0] > logits[$1] }.map(Int32.init)
        XCTAssertEqual(plain.tokens.first, ranked[0])
        let peak = logits.max()!
        let z = logits.reduce(0.0) { $0 + Foundation.exp(Double($1 - peak)) }
        let p0 = Float(Foundation.exp(Double(logits[Int(ranked[0])] - peak)) / z)

        // Gate on the argmax token, never allowed: the first token is the runner-up.
        var excluded = req
        excluded.firstTokenGate = FirstTokenGate(tokens: [ranked[0]], threshold: 1.01)
        let e = try gen.generate(excluded)
        XCTAssertEqual(e.tokens.first, ranked[1])
        XCTAssertEqual(Double(e.firstTokenGateProbability!), Double(p0), accuracy: 1e-5)
        // Gate on the third token, always allowed: it is forced.
        var forced = req
        forced.firstTokenGate = FirstTokenGate(tokens: [ranked[2]], threshold: 0)
        XCTAssertEqual(try gen.generate(forced).tokens.first, ranked[2])
        // A gate on an unlikely token below its threshold changes nothing: same tokens as ungated.
        var idle = req
        idle.firstTokenGate = FirstTokenGate(tokens: [ranked.last!], threshold: 0.5)
        let i = try gen.generate(idle)
        XCTAssertEqual(i.tokens, plain.tokens)
        XCTAssertLessThan(i.firstTokenGateProbability!, 0.5)
        XCTAssertNil(plain.firstTokenGateProbability)
    }

    /// A refusal probe reads the residual stream after its layer at the prompt's last position,
    /// the very state `layerStates` gives, while the logits stay the plain forward's; the gate
    /// then decides by the probe, decoding stays exact, and the prefix cache hands the state back.
    func testRefusalProbeReadsThePromptStateAndKeepsDecodingExact() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let reader = try XCTUnwrap(model as? any LayerStateReading)
        let prompt = model.tokenizer.encode("the 안녕하세요 보험금을")
        let layer = 0
        let (logits, state) = try reader.forward(prompt, cache: model.makeCache(capacity: 64), logits: .last, stateAfterLayer: layer)
        XCTAssertEqual(logits, try model.forward(prompt, cache: model.makeCache(capacity: 64), logits: .last))
        XCTAssertEqual(state, Array(try reader.layerStates(prompt, throughLayer: layer).suffix(reader.stateWidth)))
        XCTAssertNotEqual(state, Array(try reader.layerStates(prompt, throughLayer: layer + 1).suffix(reader.stateWidth)))

        let E = reader.stateWidth
        func probe(bias: Float, layer: Int = layer) -> RefusalProbe {
            RefusalProbe(model: reader.stateSource, adapterSHA256: nil, layer: layer, center: [Float](repeating: 0.1, count: E),
                         scale: [Float](repeating: 2, count: E), weights: (0..<E).map { Float($0 % 3 - 1) * 0.01 }, bias: bias,
                         threshold: 0.5, trainedOn: "test", validation: nil)
        }
        // The probability by hand: unit-RMS state, standardised, dot, sigmoid.
        let rms = (state.reduce(Float(0)) { $0 + $1 * $1 } / Float(E) + 1e-6).squareRoot()
        let z = (0..<E).reduce(Float(0.3)) { $0 + Float($1 % 3 - 1) * 0.01 * ((state[$1] / rms - 0.1) / 2) }
        XCTAssertEqual(probe(bias: 0.3).probability(state: state), 1 / (1 + Foundation.exp(-z)), accuracy: 1e-6)

        let gen = Generator(model: model)
        var req = GenerationRequest(prompt: prompt, maxTokens: 6)
        req.stopAtEndOfGeneration = false
        let plain = try gen.generate(req)
        let ranked = logits.indices.sorted { logits[$0] > logits[$1] }.map(Int32.init)
        // The probe says refuse: the likeliest gated token is taken, though the logits rank it third.
        var refuse = req
        refuse.firstTokenGate = FirstTokenGate(tokens: [ranked[2], ranked[3]], threshold: 0.5, probe: probe(bias: 50))
        let r = try gen.generate(refuse)
        XCTAssertEqual(r.tokens.first, ranked[2])
        XCTAssertEqual(r.firstTokenGateProbability, probe(bias: 50).probability(state: state))
        XCTAssertEqual(r.promptState, state)
        // The probe says answer: the argmax, gated, is excluded.
        var answer = req
        answer.firstTokenGate = FirstTokenGate(tokens: [ranked[0]], threshold: 0.5, probe: probe(bias: -50))
        XCTAssertEqual(try gen.generate(answer).tokens.first, ranked[1])
        // A gate that does not bind, or only reading the state: the ungated tokens.
        var idle = req
        idle.firstTokenGate = FirstTokenGate(tokens: [ranked.last!], threshold: 0.5, probe: probe(bias: -50))
        XCTAssertEqual(try gen.generate(idle).tokens, plain.tokens)
        var recorded = req
        recorded.promptStateLayer = layer
        let rec = try gen.generate(recorded)
        XCTAssertEqual(rec.tokens, plain.tokens)
        XCTAssertEqual(rec.promptState, state)
        XCTAssertNil(plain.promptState)

        // Prefix cache: an entry stored without the state is not restored whole for a probe; once
        // a probed run has stored it, the whole prompt comes back with the same state and tokens.
        let cached = Generator(model: model, prefixCache: PrefixCache(minTokens: 1))
        _ = try cached.generate(req)
        let miss = try cached.generate(refuse)
        XCTAssertEqual(miss.cachedPromptTokens, 0)
        let hit = try cached.generate(refuse)
        XCTAssertEqual(hit.cachedPromptTokens, prompt.count)
        XCTAssertEqual(hit.promptState, state)
        XCTAssertEqual(hit.tokens, r.tokens)
        XCTAssertEqual(hit.firstTokenGateProbability, r.firstTokenGateProbability)

        // A layer the model lacks is an error before anything runs.
        var outside = req
        outside.firstTokenGate = FirstTokenGate(tokens: [ranked[0]], threshold: 0.5, probe: probe(bias: 0, layer: reader.layerCount))
        XCTAssertThrowsError(try gen.generate(outside))
    }

    /// A probe file is checked against the model and the adapter it reads.
    func testRefusalProbeFileIsCheckedAgainstModelAndAdapter() throws {
        let model = try loadModel(path: Self.path, threads: 2)
        let reader = try XCTUnwrap(model as? any LayerStateReading)
        let E = reader.stateWidth
        let good = RefusalProbe(model: reader.stateSource, adapterSHA256: "abc", layer: 1, center: [Float](repeating: 0, count: E),
                                scale: [Float](repeating: 1, count: E), weights: [Float](repeating: 0.1, count: E), bias: 0,
                                threshold: 0.6, trainedOn: "test", validation: nil)
        let path = NSTemporaryDirectory() + "damda-probe-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        func write(_ p: RefusalProbe) throws { try JSONEncoder().encode(p).write(to: URL(fileURLWithPath: path)) }
        func read(adapter: String? = "abc") throws -> RefusalProbe {
            try RefusalProbe.read(path, model: reader.stateSource, width: E, layers: reader.layerCount, adapterSHA256: adapter)
        }
        try write(good)
        XCTAssertEqual(try read(), good)
        XCTAssertThrowsError(try read(adapter: "def")) { XCTAssertTrue("\($0)".contains("another adapter")) }
        XCTAssertThrowsError(try read(adapter: nil))
        var other = good
        other.model = "another-model"
        try write(other)
        XCTAssertThrowsError(try read()) { XCTAssertTrue("\($0)".contains("another-model")) }
        var narrow = good
        (narrow.center, narrow.scale, narrow.weights) = ([0], [1], [1])
        try write(narrow)
        XCTAssertThrowsError(try read())
        var badScale = good
        badScale.scale[0] = 0
        try write(badScale)
        XCTAssertThrowsError(try read()) { XCTAssertTrue("\($0)".contains("is not a refusal probe")) }
        try "{\"layer\": 1".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try read()) { XCTAssertTrue("\($0)".contains("is not a refusal probe")) }
        XCTAssertThrowsError(try RefusalProbe.read(path + ".missing", model: reader.stateSource, width: E, layers: reader.layerCount, adapterSHA256: nil)) {
            XCTAssertTrue("\($0)".contains("cannot read"))
        }
    }

    func testStreamingYieldsTheSameText() async throws {
        let model = try loadModel(path: Self.path, threads: 2)
        var req = GenerationRequest(prompt: model.tokenizer.encode("안녕"), maxTokens: 10)
        req.stopAtEndOfGeneration = false
        var pieces = ""
        var summary: GenerationSummary?
        for try await e in Generator(model: model).stream(req) {
            switch e {
            case let .text(t): pieces += t
            case let .done(s): summary = s
            }
        }
        XCTAssertEqual(pieces, summary?.text)
    }
}
