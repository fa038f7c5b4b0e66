import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaTestSupport
import DamdaTraining
import Foundation
import XCTest

final class AdapterFormatTests: XCTestCase {
    func randomAdapter(_ model: Gemma3Model, targets: [LoRATarget] = LoRATarget.allCases, seed: UInt64 = 4) -> LoRAAdapter {
        let a = LoRAAdapter(geometry: model.loraGeometry, rank: 4, alpha: 8, targets: targets)
        var rng = SplitMix64(seed: seed)
        for i in 0..<a.count { a.parameters[i] = rng.gaussian() * 0.05 }
        return a
    }

    /// Hugging Face's own `safetensors` reads what we write (PEFT names and shapes) and we read what it writes.
    func testPEFTAdapterRoundTripsThroughPythonSafetensors() throws {
        let model = try Gemma3Model(path: TinyTrainingModel.path, threads: 1)
        let adapter = randomAdapter(model, targets: [.q, .v, .down])
        let dir = try temporaryDirectory("peft")
        defer { try? FileManager.default.removeItem(at: dir) }
        try adapter.save(to: dir.path, baseModel: "tiny-gemma3", dropout: 0.05)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["r"] as? Int, 4)
        XCTAssertEqual(config["lora_alpha"] as? Double, 8)
        XCTAssertEqual(config["target_modules"] as? [String], ["q_proj", "v_proj", "down_proj"])
        XCTAssertEqual(config["base_model_name_or_path"] as? String, "tiny-gemma3")

        let script = """
            import json, sys
            from safetensors.numpy import load_file, save_file
            t = load_file(sys.argv[1])
            print(json.dumps({k: list(v.shape) for k, v in t.items()}))
            t = {k: (v * 2 if ".lora_B." in k else v) for k, v in t.items()}
            save_file(t, sys.argv[2], metadata={"format": "pt"})
            """
        let scriptPath = dir.appendingPathComponent("roundtrip.py").path
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let back = try temporaryDirectory("peft-back")
        defer { try? FileManager.default.removeItem(at: back) }
        try FileManager.default.copyItem(at: dir.appendingPathComponent("adapter_config.json"), to: back.appendingPathComponent("adapter_config.json"))
        let out = try TinyModels.python([scriptPath, dir.appendingPathComponent("adapter_model.safetensors").path,
                                         back.appendingPathComponent("adapter_model.safetensors").path])
        let shapes = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: [Int]]
        let c = model.config
        XCTAssertEqual(shapes.count, c.layers * 3 * 2)
        XCTAssertEqual(shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"], [4, c.embedding])
        XCTAssertEqual(shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"], [c.heads * c.headDim, 4])
        XCTAssertEqual(shapes["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"], [4, c.feedForward])
        XCTAssertEqual(shapes["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"], [c.kvHeads * c.valueDim, 4])

        let (loaded, _) = try LoRAAdapter.load(directory: back.path, geometry: model.loraGeometry)
        for layer in 0..<c.layers {
            for t in adapter.targets {
                let s = adapter.slots[layer][t]!
                XCTAssertEqual(Array(UnsafeBufferPointer(start: loaded.parameters + s.a, count: 4 * s.input)),
                               Array(UnsafeBufferPointer(start: adapter.parameters + s.a, count: 4 * s.input)))
                XCTAssertEqual(Array(UnsafeBufferPointer(start: loaded.parameters + s.b, count: 4 * s.output)),
                               Array(UnsafeBufferPointer(start: adapter.parameters + s.b, count: 4 * s.output)).map { $0 * 2 })
            }
        }
        // Bad adapters are clear errors.
        try "{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"q_proj\"]}".write(toFile: back.appendingPathComponent("adapter_config.json").path, atomically: true, encoding: .utf8)
        XCTAssertNoThrow(try LoRAAdapter.load(directory: back.path, geometry: model.loraGeometry))
        try "{\"peft_type\": \"LORA\", \"r\": 8, \"target_modules\": [\"q_proj\"]}".write(toFile: back.appendingPathComponent("adapter_config.json").path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LoRAAdapter.load(directory: back.path, geometry: model.loraGeometry)) { e in
            XCTAssertTrue((e as! DamdaError).message.contains("shape"))
        }
        try Data([1, 2, 3]).write(to: back.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertThrowsError(try LoRAAdapter.load(directory: back.path, geometry: model.loraGeometry))
    }

    /// Llama GGUFs permute Q/K rows: the file holds B in Hugging Face order and loads back to GGUF order.
    func testLlamaAdapterRowsFollowHuggingFaceOrder() throws {
        let dir = try temporaryDirectory("llama-peft")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.gguf").path
        try TinyModels.writeLlama(to: path, architecture: "llama")
        let model = try LlamaModel(file: try GGUFFile(path: path), threads: 1)
        let order = model.huggingFaceRowOrder
        XCTAssertEqual(order[.q]?.count, model.config.heads * model.config.headDim)
        let half = model.config.headDim / 2
        let firstRows: [Int] = Array(order[.q]!.prefix(4))
        XCTAssertEqual(firstRows, [0, half, 1, half + 1])
        let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: 2, alpha: 4, targets: [.q, .k, .v])
        var rng = SplitMix64(seed: 1)
        for i in 0..<adapter.count { adapter.parameters[i] = rng.gaussian() }
        try adapter.save(to: dir.appendingPathComponent("a").path, baseModel: "tiny", dropout: 0, rowOrder: order)
        let (file, _) = try Safetensors.read(dir.appendingPathComponent("a/adapter_model.safetensors").path)
        let s = adapter.slots[0][.q]!
        let hfB = file["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]!.floats
        // GGUF row 1 (pair partner of row 0) is Hugging Face row headDim/2.
        XCTAssertEqual(Array(hfB[(model.config.headDim / 2 * 2)..<(model.config.headDim / 2 * 2 + 2)]),
                       Array(UnsafeBufferPointer(start: adapter.parameters + s.b + 2, count: 2)))
        let (back, _) = try LoRAAdapter.load(directory: dir.appendingPathComponent("a").path, geometry: model.loraGeometry, rowOrder: order)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: back.parameters, count: back.count)), Array(UnsafeBufferPointer(start: adapter.parameters, count: adapter.count)))
    }

    /// Merging into F32 weights gives the same logits as applying the adapter at run time;
    /// F16 and Q8_0 merges load and stay close.
    func testMergedModelMatchesAdapterAtRunTime() throws {
        let model = try Gemma3Model(path: TinyTrainingModel.path, threads: 1)
        let adapter = randomAdapter(model)
        let dir = try temporaryDirectory("merge")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokens: [Int32] = [2, 300, 301, 302, 280, 290, 310]
        model.adapter = adapter
        let expected = try model.forward(tokens, cache: model.makeCache(capacity: 16), logits: .all)
        model.adapter = nil
        let base = try model.forward(tokens, cache: model.makeCache(capacity: 16), logits: .all)
        let shift = zip(expected, base).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(shift, 0.05, "the adapter should change the logits")
        for (type, tolerance) in [(TensorType.f32, Float(2e-3)), (.f16, 0.05), (.q8_0, 0.3)] {
            let path = dir.appendingPathComponent("merged-\(type.name).gguf").path
            try AdapterMerge.merge(model: model, adapter: adapter, type: type, to: path)
            let merged = try Gemma3Model(path: path, threads: 1)
            XCTAssertEqual(merged.file.tensorInfo("blk.0.attn_q.weight")?.type, type)
            XCTAssertEqual(merged.file.tensorInfo("token_embd.weight")?.type, model.file.tensorInfo("token_embd.weight")?.type)
            let got = try merged.forward(tokens, cache: merged.makeCache(capacity: 16), logits: .all)
            let diff = zip(got, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(diff, tolerance, "\(type): max |Δlogit| \(diff)")
        }
    }

    /// F16 and BF16 adapters are half the size, Python's safetensors reads their dtype, and they
    /// load back to the rounded values.
    func testHalfPrecisionAdaptersRoundTrip() throws {
        let model = try Gemma3Model(path: TinyTrainingModel.path, threads: 1)
        let adapter = randomAdapter(model, targets: [.q, .down])
        let dir = try temporaryDirectory("peft-half")
        defer { try? FileManager.default.removeItem(at: dir) }
        try adapter.save(to: dir.appendingPathComponent("f32").path, baseModel: "tiny", dropout: 0)
        for dtype in ["F16", "BF16"] {
            let out = dir.appendingPathComponent(dtype).path
            try adapter.save(to: out, baseModel: "tiny", dropout: 0, dtype: dtype)
            let full = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("f32/adapter_model.safetensors").path)[.size] as! Int
            let half = try FileManager.default.attributesOfItem(atPath: out + "/adapter_model.safetensors")[.size] as! Int
            XCTAssertLessThan(Double(half), 0.55 * Double(full))
            if dtype == "F16" {   // NumPy has no bfloat16
                let script = "import sys; from safetensors.numpy import load_file; print(sorted({str(v.dtype) for v in load_file(sys.argv[1]).values()}))"
                let printed = try TinyModels.python(["-c", script, out + "/adapter_model.safetensors"])
                XCTAssertTrue(printed.contains("float16"), printed)
            }
            let (back, _) = try LoRAAdapter.load(directory: out, geometry: model.loraGeometry)
            for i in 0..<adapter.count {
                let x = adapter.parameters[i]
                let expected = dtype == "F16" ? Float(Float16(x)) : Float(bitPattern: UInt32(Safetensors.bfloat16Bits(x)) << 16)
                XCTAssertEqual(back.parameters[i], expected, "\(dtype) value \(i)")
            }
        }
    }

    /// A damaged, truncated or incomplete adapter, or one for another model, is an error that names
    /// the file and says what to do; nothing falls back to the base model.
    func testBadAdapterFilesAreClearErrors() throws {
        let model = try Gemma3Model(path: TinyTrainingModel.path, threads: 1)
        let dir = try temporaryDirectory("peft-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good").path
        try randomAdapter(model, targets: [.q, .v]).save(to: good, baseModel: "tiny-gemma3", dropout: 0, dtype: "F16")
        let weights = good + "/adapter_model.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: weights))
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return (error as? DamdaError)?.message ?? "\(error)" }
        }
        func load(_ d: String) throws { _ = try LoRAAdapter.load(directory: d, geometry: model.loraGeometry) }

        // Truncated: the header promises more bytes than the file has.
        let truncated = dir.appendingPathComponent("truncated").path
        try FileManager.default.copyItem(atPath: good, toPath: truncated)
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: truncated + "/adapter_model.safetensors"))
        var m = message { try load(truncated) }
        XCTAssertTrue(m.contains(truncated + "/adapter_model.safetensors") && m.contains("damaged or truncated"), m)

        // Corrupt header bytes.
        var corrupt = bytes
        for i in 8..<40 { corrupt[i] = 0xFF }
        try corrupt.write(to: URL(fileURLWithPath: truncated + "/adapter_model.safetensors"))
        m = message { try load(truncated) }
        XCTAssertTrue(m.contains("not a valid safetensors file") && m.contains("retrain"), m)

        // Weights missing.
        try FileManager.default.removeItem(atPath: truncated + "/adapter_model.safetensors")
        m = message { try load(truncated) }
        XCTAssertTrue(m.contains("adapter_model.safetensors not found"), m)

        // Whole folder missing.
        m = message { try load(dir.appendingPathComponent("nowhere").path) }
        XCTAssertTrue(m.contains("adapter_config.json not found"), m)

        // An adapter of another model: wider projections, or fewer layers.
        var wider = model.loraGeometry
        wider.dims[.q] = (input: wider.dims[.q]!.input, output: 2 * wider.dims[.q]!.output)
        m = message { _ = try LoRAAdapter.load(directory: good, geometry: wider) }
        XCTAssertTrue(m.contains("does not fit this model") && m.contains("trained for tiny-gemma3") && m.contains(weights), m)
        var shallower = model.loraGeometry
        shallower.layers -= 1
        m = message { _ = try LoRAAdapter.load(directory: good, geometry: shallower) }
        XCTAssertTrue(m.contains("more layers") && m.contains("trained for tiny-gemma3"), m)
    }

    /// The shipped default adapter's file is checked against its SHA-256; a changed byte is refused.
    func testDefaultAdapterChecksumIsEnforced() throws {
        let shipped = try DefaultAdapter.locate()
        XCTAssertNoThrow(try DefaultAdapter.verify(directory: shipped))
        let dir = try temporaryDirectory("peft-tampered")
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("ko-rag").path
        try FileManager.default.copyItem(atPath: shipped, toPath: copy)
        let path = copy + "/adapter_model.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 1] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try DefaultAdapter.verify(directory: copy)) { e in
            let m = (e as! DamdaError).message
            XCTAssertTrue(m.contains(path) && m.contains("--no-adapter"), m)
        }
        // Without its checksum file the adapter is not used either.
        try FileManager.default.removeItem(atPath: copy + "/" + DefaultAdapter.checksumFile)
        XCTAssertThrowsError(try DefaultAdapter.verify(directory: copy)) { e in
            XCTAssertTrue((e as! DamdaError).message.contains(DefaultAdapter.checksumFile))
        }
        XCTAssertTrue(DefaultAdapter.isDefaultModel("/x/gemma-3-270m-q4_k_m.gguf"))
        XCTAssertFalse(DefaultAdapter.isDefaultModel("/x/other.gguf"))
    }
}
