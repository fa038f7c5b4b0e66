import ArgumentParser
import DamdaCore
import DamdaEngine
import DamdaModelIO
import DamdaTraining
import Foundation

struct AdapterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "adapter", abstract: "Work with LoRA adapters.",
                                                    subcommands: [Merge.self, Export.self])

    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fold an adapter into the base weights and write a GGUF (loadable by Damda and llama.cpp).")
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: "Output GGUF path.") var out: String
        @Option(help: "Type of the merged matrices: f16, f32 or q8_0.") var type = "f16"

        func run() async throws {
            try await failing {
                guard modelOptions.adapter != nil else { throw ValidationError("give --adapter DIR") }
                guard let t = TensorType(name: type), [.f16, .f32, .q8_0].contains(t) else {
                    throw ValidationError("--type must be f16, f32 or q8_0")
                }
                let (model, _, _, _) = try modelOptions.load()
                guard let adaptable = model as? any AdaptableModel, let adapter = adaptable.adapter else { throw LoRAError.badAdapter("this model cannot take adapters") }
                let bar = ProgressBar(total: Int64(adaptable.file.tensors.count), label: "merge", unit: "tensors")
                try AdapterMerge.merge(model: adaptable, adapter: adapter, type: t, to: out) { done, _ in bar.update(to: Int64(done)) }
                bar.finish()
                let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
                printJSON(["out": out, "type": t.name, "bytes": size, "merged_matrices": adapter.targets.count * adaptable.loraGeometry.layers])
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an adapter again in another precision (f16 or bf16 halves the file; loading converts to fp32).")
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: "Output folder.") var out: String
        @Option(help: "Tensor type: f16, bf16 or f32.") var dtype = "f16"

        func run() async throws {
            try await failing {
                guard let dir = modelOptions.adapter else { throw ValidationError("give --adapter DIR") }
                let types = ["f16": "F16", "bf16": "BF16", "f32": "F32"]
                guard let t = types[dtype.lowercased()] else { throw ValidationError("--dtype must be f16, bf16 or f32") }
                let (model, _, _, _) = try modelOptions.load()
                guard let adaptable = model as? any AdaptableModel, let adapter = adaptable.adapter else { throw LoRAError.badAdapter("this model cannot take adapters") }
                // The weights are already loaded on the model; only the config's metadata is needed again.
                let config = try JSONDecoder().decode(PEFTAdapterConfig.self,
                                                      from: Data(contentsOf: URL(fileURLWithPath: dir + "/" + LoRAAdapter.configFile)))
                try adapter.save(to: out, baseModel: config.baseModelNameOrPath, dropout: config.loraDropout,
                                 rowOrder: adaptable.huggingFaceRowOrder, dtype: t)
                let weights = out + "/" + LoRAAdapter.weightsFile
                let size = (try? FileManager.default.attributesOfItem(atPath: weights)[.size] as? Int) ?? 0
                printJSON(["out": out, "dtype": t, "bytes": size, "sha256": try ModelFetcher.sha256(of: URL(fileURLWithPath: weights))])
            }
        }
    }
}
