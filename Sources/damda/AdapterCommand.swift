import ArgumentParser
import DamdaAssistant
import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaEval
import DamdaModelIO
import DamdaTraining
import Foundation

struct AdapterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "adapter", abstract: "Work with LoRA adapters.",
                                                    subcommands: [Merge.self, Export.self, Calibrate.self])

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

    struct Calibrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fit an adapter's refusal probe: when the retrieved sources lack the answer, read from the model's state at the prompt's end.",
            discussion: """
                Every answerable question (JSONL {id, question, answers, doc_id}) is asked through the assistant as it is and \
                again with its own document hidden from retrieval (--negatives); logistic regression over the adapter's residual stream \
                after --layer at each prompt's last position tells the two apart. The threshold is set on out-of-fold scores \
                (folds by article: a document id's part before its last '-') to refuse at most --answerable-refused of the answerable questions. Use questions the \
                adapter was not trained on, and keep the ones you evaluate on apart. Writes refusal-probe.json into the \
                adapter's folder (or --out), which ask, chat, serve, batch and eval then use (--refusal-probe auto).
                """)
        @OptionGroup var modelOptions: ModelOptions
        @OptionGroup var indexOptions: IndexOptions
        @Option(help: "Questions JSONL with answers and doc_id.") var qa: String
        @Option(help: "Answerable questions, spread evenly over the file (0: all).") var limit = 400
        @Option(help: "Of those, how many are also asked with their article hidden (default: all of them).") var unanswerable: Int?
        @Option(help: "0-based layer whose output the probe reads.") var layer = 9
        @Option(help: "Share of answerable questions the threshold may refuse (out of fold).") var answerableRefused = 0.05
        @Option(help: "Where to write the probe (default: refusal-probe.json in the adapter's folder).") var out: String?
        @Option(help: "Also write the fit's report (JSON) here.") var json: String?
        @Option(help: "What an unanswerable prompt hides: document (the question's own document; the rest of its article stays, so the sources are on the subject) or article (every document of its article, as `damda eval --unanswerable` does).")
        var negatives = "document"
        @Option(help: "Chunks retrieved per prompt, as the assistant that will use the probe retrieves (ask's --k).") var k = AssistantConfig().k
        @Option(help: "How those prompts are packed, as the assistant that will use the probe packs them (ask's --context): sentences or chunks.")
        var context = AssistantConfig().contextPacking.rawValue

        func run() async throws {
            try await failing {
                guard (0..<1).contains(answerableRefused) else { throw ValidationError("--answerable-refused must be in 0…1") }
                let packing = try contextPacking(context)
                guard k > 0 else { throw ValidationError("--k must be positive") }
                let path = try modelOptions.resolvedModel()
                guard !modelOptions.noAdapter else { throw ValidationError("a refusal probe reads an adapter's states: drop --no-adapter") }
                guard let adapterDirectory = try modelOptions.adapterChoice(modelPath: path, useDefault: true)?.directory else {
                    throw ValidationError("give --adapter DIR: only the default model has a default adapter")
                }
                let (all, skipped) = try EvalQuestion.readSkipping(qa, idPrefix: "q")
                if !skipped.isEmpty { note("skipped \(skipped.count) malformed lines (first: \(skipped[0]))") }
                let questions = EvalQuestion.evenlySpaced(all.filter { $0.documentID != nil && !$0.answers.isEmpty }, limit)
                guard !questions.isEmpty else { throw ValidationError("\(qa) has no answerable questions (answers and doc_id)") }
                let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: modelOptions.threads))
                guard idx.chunkCount > 0 else { throw ValidationError("the index at \(indexOptions.index) is empty: ingest the questions' documents first") }
                let model = try loadModel(path: path, threads: modelOptions.threads, weights: modelOptions.weights)
                guard let reader = model as? any LayerStateReading else { throw RefusalProbeError.unsupportedModel }
                guard (0..<reader.layerCount).contains(layer) else { throw ValidationError("--layer must be in 0..<\(reader.layerCount)") }
                var runner = EvalRunner(index: idx, model: model, modelName: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent,
                                        questions: questions, applyAdapter: adapterSwitcher(model: model, path: path))
                runner.unanswerable = min(unanswerable ?? questions.count, questions.count)
                var config = EvalConfiguration(name: "calibrate")
                config.adapter = adapterDirectory
                config.k = k
                config.context = packing
                var calibration = RefusalCalibration()
                calibration.layer = layer
                calibration.answerableBudget = answerableRefused
                guard let n = RefusalCalibration.Negatives(rawValue: negatives) else { throw ValidationError("--negatives must be document or article") }
                calibration.negatives = n
                let (examples, beforeModel, withoutGold, withGold) = try await calibration.collect(runner: runner, config: config)
                let trainedOn = "\(URL(fileURLWithPath: qa).lastPathComponent): \(questions.count) answerable questions, \(runner.unanswerable) of them also with their \(negatives) hidden; an index of \(try idx.store.documents().count) documents (\(idx.chunkCount) chunks)"
                let (probe, report) = try calibration.fit(examples, model: reader.stateSource,
                                                          adapterSHA256: try LoRAAdapter.weightsSHA256(directory: adapterDirectory), trainedOn: trainedOn,
                                                          refusedBeforeModel: beforeModel, answerableWithoutGold: withoutGold, unanswerableWithGold: withGold)
                let target = out ?? adapterDirectory + "/" + RefusalProbe.fileName
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                try encoder.encode(probe).write(to: URL(fileURLWithPath: target), options: .atomic)
                if let json { try jsonString(report).write(toFile: json, atomically: true, encoding: .utf8) }
                print(jsonString(report))
                note("wrote \(target)")
            }
        }

        func note(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
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
