import DamdaCore
import DamdaModelIO
import Foundation

/// `adapter_config.json` as Hugging Face PEFT writes it for a LoRA adapter.
public struct PEFTAdapterConfig: Codable, Sendable {
    public var peftType = "LORA"
    public var taskType = "CAUSAL_LM"
    public var r: Int
    public var loraAlpha: Float
    public var loraDropout: Float
    public var targetModules: [String]
    public var baseModelNameOrPath: String
    public var bias = "none"
    public var fanInFanOut = false
    public var inferenceMode = true
    public var useRslora: Bool? = false
    public var useDora: Bool? = false
    public var initLoraWeights = true

    enum CodingKeys: String, CodingKey {
        case peftType = "peft_type", taskType = "task_type", r, loraAlpha = "lora_alpha", loraDropout = "lora_dropout"
        case targetModules = "target_modules", baseModelNameOrPath = "base_model_name_or_path", bias
        case fanInFanOut = "fan_in_fan_out", inferenceMode = "inference_mode", useRslora = "use_rslora", useDora = "use_dora"
        case initLoraWeights = "init_lora_weights"
    }

    public init(r: Int, loraAlpha: Float, loraDropout: Float, targetModules: [String], baseModelNameOrPath: String) {
        self.r = r; self.loraAlpha = loraAlpha; self.loraDropout = loraDropout
        self.targetModules = targetModules; self.baseModelNameOrPath = baseModelNameOrPath
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        peftType = try c.decodeIfPresent(String.self, forKey: .peftType) ?? "LORA"
        taskType = try c.decodeIfPresent(String.self, forKey: .taskType) ?? "CAUSAL_LM"
        r = try c.decode(Int.self, forKey: .r)
        loraAlpha = try c.decodeIfPresent(Float.self, forKey: .loraAlpha) ?? 8
        loraDropout = try c.decodeIfPresent(Float.self, forKey: .loraDropout) ?? 0
        if let list = try? c.decode([String].self, forKey: .targetModules) {
            targetModules = list
        } else {
            throw LoRAError.badAdapter("target_modules must be a list of module names (a regular expression is not supported)")
        }
        baseModelNameOrPath = try c.decodeIfPresent(String.self, forKey: .baseModelNameOrPath) ?? ""
        bias = try c.decodeIfPresent(String.self, forKey: .bias) ?? "none"
        fanInFanOut = try c.decodeIfPresent(Bool.self, forKey: .fanInFanOut) ?? false
        inferenceMode = try c.decodeIfPresent(Bool.self, forKey: .inferenceMode) ?? true
        useRslora = try c.decodeIfPresent(Bool.self, forKey: .useRslora)
        useDora = try c.decodeIfPresent(Bool.self, forKey: .useDora)
        initLoraWeights = (try? c.decodeIfPresent(Bool.self, forKey: .initLoraWeights)) ?? true
    }
}

extension LoRAAdapter {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"

    /// SHA-256 of an adapter folder's weights file: the adapter's identity (a refusal probe records
    /// it; a training checkpoint continued from the adapter includes it).
    public static func weightsSHA256(directory: String) throws -> String {
        try ModelFetcher.sha256(of: URL(fileURLWithPath: directory + "/" + weightsFile))
    }

    /// PEFT's name for one matrix of a causal LM's layer (`…layers.N.self_attn.q_proj.lora_A.weight`).
    public static func tensorName(layer: Int, _ t: LoRATarget, _ matrix: String) -> String {
        "base_model.model.model.layers.\(layer).\(t.modulePath).lora_\(matrix).weight"
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `directory` (created if needed).
    /// `rowOrder` maps GGUF rows to Hugging Face rows where a model permutes them (Llama's Q/K), so
    /// the file holds B in Hugging Face's order.
    /// `dtype` F16 or BF16 halves the file (a shipped adapter); loading converts back to fp32.
    public func save(to directory: String, baseModel: String, dropout: Float, rowOrder: [LoRATarget: [Int]] = [:],
                     dtype: String = "F32") throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var tensors: [String: Safetensors.Tensor] = [:]
        for (layer, slots) in slots.enumerated() {
            for t in targets {
                let s = slots[t]!
                tensors[Self.tensorName(layer: layer, t, "A")] = .init(shape: [rank, s.input], floats: Array(UnsafeBufferPointer(start: parameters + s.a, count: rank * s.input)))
                var b = Array(UnsafeBufferPointer(start: parameters + s.b, count: s.output * rank))
                if let order = rowOrder[t] {
                    var hf = b
                    for g in 0..<s.output { for j in 0..<rank { hf[order[g] * rank + j] = b[g * rank + j] } }
                    b = hf
                }
                tensors[Self.tensorName(layer: layer, t, "B")] = .init(shape: [s.output, rank], floats: b)
            }
        }
        for name in tensors.keys { tensors[name]!.dtype = dtype }
        try Safetensors.write(tensors, to: directory + "/" + Self.weightsFile)
        let config = PEFTAdapterConfig(r: rank, loraAlpha: alpha, loraDropout: dropout,
                                       targetModules: targets.map(\.moduleName), baseModelNameOrPath: baseModel)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try atomicWrite(try encoder.encode(config), to: directory + "/" + Self.configFile)
    }

    /// Reads a PEFT LoRA adapter directory for a model with `geometry`.
    public static func load(directory: String, geometry: LoRAGeometry, rowOrder: [LoRATarget: [Int]] = [:]) throws -> (adapter: LoRAAdapter, config: PEFTAdapterConfig) {
        let configPath = directory + "/" + configFile
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw LoRAError.badAdapter("\(configPath) not found: an adapter is a folder with adapter_config.json and adapter_model.safetensors")
        }
        let config: PEFTAdapterConfig
        do { config = try JSONDecoder().decode(PEFTAdapterConfig.self, from: data) } catch let e as LoRAError { throw e } catch {
            throw LoRAError.badAdapter("\(configPath) is not a PEFT adapter config: \(error)")
        }
        guard config.peftType == "LORA" else { throw LoRAError.badAdapter("peft_type is \(config.peftType); only LORA is supported") }
        guard config.useRslora != true, config.useDora != true else { throw LoRAError.badAdapter("rsLoRA and DoRA adapters are not supported") }
        guard config.r > 0 else { throw LoRAError.badAdapter("r must be positive") }
        let targets = try config.targetModules.map { name -> LoRATarget in
            guard let t = LoRATarget(moduleName: name) else { throw LoRAError.unknownTarget(name) }
            return t
        }
        let weightsPath = directory + "/" + weightsFile
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            throw LoRAError.badAdapter("\(weightsPath) not found: the adapter folder holds a config but no weights; copy the whole folder, or retrain it")
        }
        let tensors: [String: Safetensors.Tensor]
        do { tensors = try Safetensors.read(weightsPath).tensors } catch let e as Safetensors.Failure {
            throw LoRAError.badAdapter("\(e.message) — the file is damaged or truncated: copy it again or retrain the adapter")
        }
        // Key by the part from "layers." on, so Gemma3ForCausalLM and …ForConditionalGeneration prefixes both load.
        var bySuffix: [String: Safetensors.Tensor] = [:]
        for (name, t) in tensors { if let r = name.range(of: "layers.") { bySuffix[String(name[r.lowerBound...])] = t } }
        let adapter = LoRAAdapter(geometry: geometry, rank: config.r, alpha: config.loraAlpha, targets: targets)
        for layer in 0..<geometry.layers {
            for t in adapter.targets {
                let s = adapter.slots[layer][t]!
                for (matrix, shape, offset) in [("A", [config.r, s.input], s.a), ("B", [s.output, config.r], s.b)] {
                    let key = "layers.\(layer).\(t.modulePath).lora_\(matrix).weight"
                    guard let tensor = bySuffix[key] else {
                        throw LoRAError.mismatch("\(weightsPath) has no tensor \(key)\(Self.trainedFor(config)); use it with the model it was trained for")
                    }
                    guard tensor.shape == shape else {
                        throw LoRAError.mismatch("\(weightsPath): \(key) has shape \(tensor.shape), this model needs \(shape)\(Self.trainedFor(config)); use it with the model it was trained for")
                    }
                    var values = tensor.floats
                    if matrix == "B", let order = rowOrder[t] {
                        for g in 0..<s.output { for j in 0..<config.r { values[g * config.r + j] = tensor.floats[order[g] * config.r + j] } }
                    }
                    (adapter.parameters + offset).update(from: values, count: values.count)
                }
            }
        }
        if bySuffix.keys.contains(where: { k in k.hasPrefix("layers.\(geometry.layers).") }) {
            throw LoRAError.mismatch("\(weightsPath) has more layers than the model's \(geometry.layers)\(Self.trainedFor(config)); use it with the model it was trained for")
        }
        return (adapter, config)
    }

    static func trainedFor(_ config: PEFTAdapterConfig) -> String {
        config.baseModelNameOrPath.isEmpty ? "" : " (it was trained for \(config.baseModelNameOrPath))"
    }
}

/// Loads the PEFT adapter in `directory` onto `model` (replacing any adapter it had).
public func applyAdapter(directory: String, to model: any LanguageModel) throws {
    guard let adaptable = model as? any AdaptableModel else { throw LoRAError.badAdapter("this model cannot take adapters") }
    adaptable.adapter = try LoRAAdapter.load(directory: directory, geometry: adaptable.loraGeometry, rowOrder: adaptable.huggingFaceRowOrder).adapter
}
