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
}
