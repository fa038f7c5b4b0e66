import DamdaEngine
import DamdaModelIO
import Foundation
import XCTest

/// Tiny random-weight GGUF models the tests write themselves, with a small SentencePiece vocabulary.
public enum TinyModels {
    /// A 2-layer Gemma 3 (width 256, window 4) written once per test process, for tests that
    /// train or render data on a real model file.
    public static let trainingGemmaPath: String = {
        let dir = try! temporaryDirectory("train-model")
        let path = dir.appendingPathComponent("tiny-gemma3.gguf").path
        var shape = GemmaShape()
        shape.layers = 2; shape.embedding = 256; shape.feedForward = 256; shape.window = 4
        try! writeGemma3(to: path, shape: shape, seed: 9)
        return path
    }()

    public static let normalTokens = ["▁", "▁t", "he", "▁the", "in", "▁a", "▁is", "an", "안", "녕", "안녕", "하", "세", "요",
                               "하세요", "▁안녕", "보험", "금", "보험금", "을", "▁보험금", "니다", "습니다", "0", "1", "2"]
        + (UInt8(ascii: "a")...UInt8(ascii: "z")).map { String(UnicodeScalar($0)) }

    public static func vocabulary() -> (tokens: [String], scores: [Float], types: [Int32]) {
        var tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n", "\n\n"]
        var types: [Int32] = [3, 3, 3, 2, 3, 3, 4, 4]
        for b in 0..<256 { tokens.append(String(format: "<0x%02X>", b)); types.append(6) }
        var scores = [Float](repeating: 0, count: tokens.count)
        for (i, t) in normalTokens.enumerated() {
            tokens.append(t); types.append(1)
            scores.append(Float(t.count) - Float(i) * 0.01)
        }
        return (tokens, scores, types)
    }

    public static func setTokenizer(_ w: inout GGUFWriter, model: String = "llama") {
        let v = vocabulary()
        w.set("tokenizer.ggml.model", .string(model))
        w.set("tokenizer.ggml.tokens", .array(.string, v.tokens.map { .string($0) }))
        w.set("tokenizer.ggml.scores", .array(.float32, v.scores.map { .float32($0) }))
        w.set("tokenizer.ggml.token_type", .array(.int32, v.types.map { .int32($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(2))
        w.set("tokenizer.ggml.eos_token_id", .uint32(1))
        w.set("tokenizer.ggml.unknown_token_id", .uint32(3))
        w.set("tokenizer.ggml.add_bos_token", .bool(true))
        w.set("tokenizer.ggml.add_space_prefix", .bool(false))
    }

    /// Random blocks of `type` for a rows×cols matrix, scales kept modest so activations stay sane.
    public static func randomMatrix(_ type: TensorType, rows: Int, cols: Int, rng: inout SeededGenerator) -> [UInt8] {
        var bytes = (0..<(rows * type.rowBytes(cols)!)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        sanitizeScales(&bytes, type: type, values: rows * cols, rng: &rng)
        return bytes
    }

    public struct GemmaShape {
        public var embedding = 256, layers = 6, feedForward = 512, heads = 2, kvHeads = 1, headDim = 128, window = 4
        public init() {}
    }

    /// A Gemma 3 with every tensor type the engine supports somewhere in it.
    public static func writeGemma3(to path: String, shape s: GemmaShape = GemmaShape(), seed: UInt64 = 1) throws {
        var rng = SeededGenerator(seed: seed)
        var w = GGUFWriter()
        w.set("general.architecture", .string("gemma3"))
        w.set("general.name", .string("tiny-gemma3"))
        w.set("gemma3.context_length", .uint32(256))
        w.set("gemma3.embedding_length", .uint32(UInt32(s.embedding)))
        w.set("gemma3.block_count", .uint32(UInt32(s.layers)))
        w.set("gemma3.feed_forward_length", .uint32(UInt32(s.feedForward)))
        w.set("gemma3.attention.head_count", .uint32(UInt32(s.heads)))
        w.set("gemma3.attention.head_count_kv", .uint32(UInt32(s.kvHeads)))
        w.set("gemma3.attention.key_length", .uint32(UInt32(s.headDim)))
        w.set("gemma3.attention.value_length", .uint32(UInt32(s.headDim)))
        w.set("gemma3.attention.layer_norm_rms_epsilon", .float32(1e-6))
        w.set("gemma3.rope.freq_base", .float32(1_000_000))
        w.set("gemma3.attention.sliding_window", .uint32(UInt32(s.window)))
        setTokenizer(&w)
        let vocab = vocabulary().tokens.count
        func norm(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: 0.5...1.5, using: &rng) } }
        w.addTensor("token_embd.weight", dims: [s.embedding, vocab], type: .q8_0,
                    bytes: randomMatrix(.q8_0, rows: vocab, cols: s.embedding, rng: &rng))
        w.addTensor("output_norm.weight", dims: [s.embedding], floats: norm(s.embedding))
        let qkvTypes: [TensorType] = [.q5_0, .q8_0, .q4_0, .f16, .bf16, .q5_0]
        let ffTypes: [TensorType] = [.q5_0, .q4_K, .q5_K, .q8_0, .f32, .q4_0]
        let downTypes: [TensorType] = [.q6_K, .q4_K, .q5_K, .q8_0, .f16, .q6_K]
        for il in 0..<s.layers {
            let b = "blk.\(il)."
            let t = qkvTypes[il % qkvTypes.count], f = ffTypes[il % ffTypes.count], d = downTypes[il % downTypes.count]
            func mat(_ name: String, _ type: TensorType, _ rows: Int, _ cols: Int) {
                w.addTensor(b + name, dims: [cols, rows], type: type, bytes: randomMatrix(type, rows: rows, cols: cols, rng: &rng))
            }
            w.addTensor(b + "attn_norm.weight", dims: [s.embedding], floats: norm(s.embedding))
            mat("attn_q.weight", t, s.heads * s.headDim, s.embedding)
            mat("attn_k.weight", t, s.kvHeads * s.headDim, s.embedding)
            mat("attn_v.weight", .q8_0, s.kvHeads * s.headDim, s.embedding)
            w.addTensor(b + "attn_q_norm.weight", dims: [s.headDim], floats: norm(s.headDim))
            w.addTensor(b + "attn_k_norm.weight", dims: [s.headDim], floats: norm(s.headDim))
            mat("attn_output.weight", .q4_K, s.embedding, s.heads * s.headDim)
            w.addTensor(b + "post_attention_norm.weight", dims: [s.embedding], floats: norm(s.embedding))
            w.addTensor(b + "ffn_norm.weight", dims: [s.embedding], floats: norm(s.embedding))
            mat("ffn_gate.weight", f, s.feedForward, s.embedding)
            mat("ffn_up.weight", f, s.feedForward, s.embedding)
            mat("ffn_down.weight", d, s.embedding, s.feedForward)
            w.addTensor(b + "post_ffw_norm.weight", dims: [s.embedding], floats: norm(s.embedding))
        }
        try w.write(to: path)
    }

    public static var sharedTools: URL {
        if let s = ProcessInfo.processInfo.environment["DAMDA_SHARED"] { return URL(fileURLWithPath: s).appendingPathComponent("tools") }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/tools")
    }

    /// Runs a Python tool and returns its standard output; fails the test with its stderr otherwise.
    public static func python(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "python", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "python3 \(args.joined(separator: " ")) failed: \(String(decoding: e, as: UTF8.self).suffix(1500)) (the tests need numpy and gguf: pip install numpy gguf)"])
        }
        return String(decoding: o, as: UTF8.self)
    }

    /// Float32 data of a .npy file written by numpy.save.
    public static func readNPY(_ url: URL) throws -> [Float] {
        let d = try Data(contentsOf: url)
        let major = d[6]
        let headerLen = major == 1 ? Int(d[8]) | Int(d[9]) << 8 : Int(d[8]) | Int(d[9]) << 8 | Int(d[10]) << 16 | Int(d[11]) << 24
        let start = (major == 1 ? 10 : 12) + headerLen
        return d.subdata(in: start..<d.count).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}


extension TinyModels {
    /// A tiny Llama (adjacent-pair RoPE, separate output matrix) or Qwen 2 (NEOX RoPE, Q/K/V biases, tied output).
    public static func writeLlama(to path: String, architecture: String, seed: UInt64 = 5) throws {
        var rng = SeededGenerator(seed: seed)
        let E = 256, L = 2, F = 512, H = 4, KV = 2, D = 64
        var w = GGUFWriter()
        let p = architecture + "."
        w.set("general.architecture", .string(architecture))
        w.set(p + "context_length", .uint32(128))
        w.set(p + "embedding_length", .uint32(UInt32(E)))
        w.set(p + "block_count", .uint32(UInt32(L)))
        w.set(p + "feed_forward_length", .uint32(UInt32(F)))
        w.set(p + "attention.head_count", .uint32(UInt32(H)))
        w.set(p + "attention.head_count_kv", .uint32(UInt32(KV)))
        w.set(p + "attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set(p + "rope.freq_base", .float32(10_000))
        setTokenizer(&w)
        let vocab = vocabulary().tokens.count
        func norm(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: 0.5...1.5, using: &rng) } }
        func mat(_ name: String, _ type: TensorType, _ rows: Int, _ cols: Int) {
            w.addTensor(name, dims: [cols, rows], type: type, bytes: randomMatrix(type, rows: rows, cols: cols, rng: &rng))
        }
        mat("token_embd.weight", .q8_0, vocab, E)
        if architecture == "llama" { mat("output.weight", .q6_K, vocab, E) }
        w.addTensor("output_norm.weight", dims: [E], floats: norm(E))
        for il in 0..<L {
            let b = "blk.\(il)."
            w.addTensor(b + "attn_norm.weight", dims: [E], floats: norm(E))
            mat(b + "attn_q.weight", .q4_K, H * D, E)
            mat(b + "attn_k.weight", .q5_0, KV * D, E)
            mat(b + "attn_v.weight", .q8_0, KV * D, E)
            if architecture == "qwen2" {
                w.addTensor(b + "attn_q.bias", dims: [H * D], floats: (0..<(H * D)).map { _ in Float.random(in: -0.5...0.5, using: &rng) })
                w.addTensor(b + "attn_k.bias", dims: [KV * D], floats: (0..<(KV * D)).map { _ in Float.random(in: -0.5...0.5, using: &rng) })
                w.addTensor(b + "attn_v.bias", dims: [KV * D], floats: (0..<(KV * D)).map { _ in Float.random(in: -0.5...0.5, using: &rng) })
            }
            mat(b + "attn_output.weight", .q4_0, E, H * D)
            w.addTensor(b + "ffn_norm.weight", dims: [E], floats: norm(E))
            mat(b + "ffn_gate.weight", .q5_K, F, E)
            mat(b + "ffn_up.weight", .f16, F, E)
            mat(b + "ffn_down.weight", .q6_K, E, F)
        }
        try w.write(to: path)
    }
}

/// Overwrites the f16 scale fields of random blocks with modest finite values.
public func sanitizeScales(_ bytes: inout [UInt8], type: TensorType, values: Int, rng: inout SeededGenerator) {
    let offsets: [Int]
    switch type {
    case .q8_0, .q5_0, .q4_0: offsets = [0]
    case .q4_K, .q5_K: offsets = [0, 2]
    case .q6_K: offsets = [208]
    case .f16:
        for i in stride(from: 0, to: bytes.count, by: 2) { put(Float16(Float.random(in: -1...1, using: &rng)), &bytes, i) }
        return
    case .bf16:
        for i in stride(from: 0, to: bytes.count, by: 2) {
            let bits = Float.random(in: -1...1, using: &rng).bitPattern >> 16
            bytes[i] = UInt8(bits & 0xFF); bytes[i + 1] = UInt8(bits >> 8)
        }
        return
    case .f32:
        for i in stride(from: 0, to: bytes.count, by: 4) {
            withUnsafeBytes(of: Float.random(in: -1...1, using: &rng)) { for j in 0..<4 { bytes[i + j] = $0[j] } }
        }
        return
    }
    // K-quants multiply a super-block scale by 6- or 8-bit sub-block scales: keep the product of
    // realistic size (random int8 sub-scales alone would give weights of ±200).
    let range: ClosedRange<Float> = type.blockSize == 256 ? 0.0005...0.003 : 0.001...0.05
    for b in 0..<(values / type.blockSize) {
        for o in offsets { put(Float16(Float.random(in: range, using: &rng)), &bytes, b * type.blockBytes + o) }
        if type == .q6_K {
            for i in 192..<208 { bytes[b * type.blockBytes + i] = UInt8(bitPattern: Int8.random(in: -16...16, using: &rng)) }
        }
    }
}

public func put(_ h: Float16, _ bytes: inout [UInt8], _ at: Int) {
    bytes[at] = UInt8(h.bitPattern & 0xFF); bytes[at + 1] = UInt8(h.bitPattern >> 8)
}
