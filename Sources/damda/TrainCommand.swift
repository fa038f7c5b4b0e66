import ArgumentParser
import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaModelIO
import DamdaRetrieval
import DamdaTraining
import Foundation

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune a LoRA adapter on the quantized model (QLoRA, CPU); writes a Hugging Face PEFT adapter.",
        discussion: """
            Running the same command again after a kill resumes from the last checkpoint in --out and ends with the \
            same adapter as an uninterrupted run. Formats: alpaca (instruction, input, output), chat (messages), \
            rag (question, context, answer) rendered with the assistant's prompt template. With --rag --index, each \
            example's context is retrieved like the assistant's: the gold chunk among retrieved distractors, shuffled, \
            within the prompt budget; --unanswerable adds distractor-only examples answered "답변을 찾을 수 없습니다." \
            With --context sentences, the question's own hits are packed by sentences, breadth first, as the assistant \
            serves them, the gold chunk's answer sentence among them.
            """)
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Training data (JSONL).") var data: String
    @Option(help: "alpaca, chat or rag (default: guessed from the first line).") var format: String?
    @Flag(help: "Build RAG contexts by retrieval over --index (gold chunk + retrieved distractors).") var rag = false
    @Option(help: "Index for --rag (built from the same documents the assistant serves).") var index: String?
    @Option(help: "Share of RAG examples turned unanswerable (distractors only, refusal answer).") var unanswerable = 0.15
    @Option(help: "Prompt token budget for RAG contexts (the assistant's --budget-tokens).") var budgetTokens = 512
    @Option(help: "How RAG contexts share the budget: chunks (the gold chunk and two distractors, whole) or sentences (the question's own hits packed breadth first, as the assistant serves).")
    var context = ContextPacking.chunks.rawValue
    @Option(help: "Prompt template file (default: the Korean RAG format the assistant uses).") var template: String?
    @Flag(help: "Render RAG prompts inside the chat template (train for `ask --chat`).") var chat = false
    @Option(help: "Output folder: adapter_config.json, adapter_model.safetensors, checkpoint.bin, train_log.jsonl.") var out: String
    @Option(help: "Continue this adapter (a PEFT folder, e.g. models/ko-rag): start from its weights, rank, alpha and targets instead of a fresh initialization.")
    var fromAdapter: String?
    @Option(help: "LoRA rank.") var rank = 16
    @Option(help: "LoRA alpha (scale = alpha / rank).") var alpha: Float = 32
    @Option(help: "Dropout on the LoRA input.") var dropout: Float = 0.05
    @Option(help: "Adapted projections: q,k,v,o,gate,up,down (or all).") var targets = "q,k,v,o,gate,up,down"
    @Option(help: "Peak learning rate.") var lr: Float = 2e-4
    @Option(help: "Passes over the training data.") var epochs = 3
    @Option(help: "Sequences per micro-batch.") var batch = 8
    @Option(help: "Micro-batches per update.") var gradAccum = 1
    @Option(help: "Longest sequence in tokens.") var maxLen = 512
    @Option(help: "What to do with longer examples: drop, or prompt (cut the oldest prompt tokens).") var truncation = "drop"
    @Option(help: "Share of examples held out for validation loss.") var valFraction = 0.05
    @Option(help: "Seed for initialization, data order, dropout and the validation split.") var seed: UInt64 = 0
    @Option(help: "Warmup as a share of all updates (then cosine decay).") var warmup = 0.03
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0
    @Option(help: "Clip the global gradient norm to this (0: off).") var maxGradNorm: Float = 1
    @Option(help: "Pack sequences into passes of at most this many tokens (bounds activation memory).") var maxPassTokens = 1024
    @Flag(help: "Recompute activations layer by layer in backward (less memory, more time).") var recompute = false
    @Option(help: "Validation loss every N updates.") var evalEvery = 50
    @Option(help: "Checkpoint every N updates.") var saveEvery = 10
    @Option(help: "Stop after N updates (0: all epochs).") var maxSteps = 0
    @Option(help: "Also write the adapter to OUT/step-N every N updates (for learning curves).") var saveAdapterEvery = 0
    @Option(help: "Use only the first N examples (0: all).") var limit = 0
    @Flag(help: "Require a checkpoint in --out to resume from (resuming is automatic when one matches).") var resume = false
    @Flag(help: "Delete the checkpoint in --out and start over.") var fresh = false

    func run() async throws {
        try await failing {
            let fmt = try format.map { f -> TrainingFormat in
                guard let v = TrainingFormat(rawValue: f) else { throw ValidationError("--format must be alpaca, chat or rag") }
                return v
            } ?? guessFormat()
            guard let policy = TruncationPolicy(rawValue: truncation) else { throw ValidationError("--truncation must be drop or prompt") }
            if rag && (fmt != .rag || index == nil) { throw ValidationError("--rag needs --format rag data and --index DIR") }
            let packing = try contextPacking(context)
            var (records, report) = try TrainingDataReader.read(data, format: fmt)
            if limit > 0 { records = Array(records.prefix(limit)) }
            for p in report.problems { FileHandle.standardError.write("skipped \(p)\n".data(using: .utf8)!) }

            if modelOptions.adapter != nil {
                throw ValidationError("train does not apply a frozen adapter; --from-adapter DIR continues training one")
            }
            let (loaded, path, name, _) = try modelOptions.load()
            guard let model = loaded as? any AdaptableModel else { throw TrainingError.unsupported("this model cannot be trained") }
            let start = try fromAdapter.map {
                try LoRAAdapter.load(directory: $0, geometry: model.loraGeometry, rowOrder: model.huggingFaceRowOrder).adapter
            }
            let ragPrompt = RAGPrompt(tokenizer: model.tokenizer, template: try template.map { try PromptTemplate(file: $0) } ?? .korean,
                                      chat: chat ? model.chatTemplate : nil)
            let renderer = ExampleRenderer(ragPrompt: ragPrompt, conversation: model.chatTemplate)
            var set: TrainingSet
            if rag, let dir = index {
                let idx = try SearchIndex(directory: dir, embedder: try embedderIfIndexed(dir, threads: modelOptions.threads))
                var sampler = RAGContextSampler(index: idx, prompt: ragPrompt, budgetTokens: budgetTokens,
                                                mode: idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25)
                sampler.builder.packing = packing
                set = try RAGTrainingSet(sampler: sampler, renderer: renderer, unanswerableShare: unanswerable, maxLength: maxLen)
                    .build(records, seed: seed)
            } else {
                set = TrainingSet.rendered(records, renderer: renderer)
            }
            set.truncate(to: maxLen, policy: policy)
            if set.withoutContext > 0 {
                note("skipped \(set.withoutContext) examples without a usable context\(rag ? " (no gold chunk holding the answer fits the budget)" : " (give \"context\", or use --rag --index)")")
            }
            if set.tooLong > 0 { note("skipped \(set.tooLong) examples longer than --max-len \(maxLen)") }
            if set.unanswerable > 0 { note("\(set.unanswerable) examples made unanswerable") }

            var options = TrainingOptions()
            options.rank = start?.rank ?? rank; options.alpha = start?.alpha ?? alpha; options.dropout = dropout
            options.targets = try start?.targets ?? LoRATarget.parseList(targets)
            options.learningRate = lr; options.epochs = epochs; options.batch = batch; options.gradientAccumulation = gradAccum
            options.maxLength = maxLen; options.validationFraction = valFraction; options.seed = seed; options.warmupFraction = warmup
            options.weightDecay = weightDecay; options.maxGradientNorm = maxGradNorm; options.maxPassTokens = maxPassTokens
            options.recompute = recompute; options.evaluateEvery = evalEvery; options.checkpointEvery = saveEvery; options.maxSteps = maxSteps
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            // A checkpoint resumes only the run it was written by: the starting adapter is part of that run.
            let startIdentity = try fromAdapter.map { ":from:" + (try LoRAAdapter.weightsSHA256(directory: $0)) } ?? ""
            var fineTune = FineTune(model: model, baseModelName: name, modelIdentity: "\(name):\(size)\(startIdentity)",
                                    threads: modelOptions.threads, outputDirectory: out)
            fineTune.initialAdapter = start
            fineTune.options = options
            fineTune.saveAdapterEvery = saveAdapterEvery
            fineTune.fresh = fresh
            fineTune.requireCheckpoint = resume
            fineTune.note = note
            var summary = try fineTune.run(set.sequences)
            summary.skippedLines = report.skipped
            summary.skippedExamples = set.skipped
            summary.unanswerableExamples = set.unanswerable
            print(jsonString(summary))
        }
    }

    func note(_ line: String) { FileHandle.standardError.write((line + "\n").data(using: .utf8)!) }

    func guessFormat() throws -> TrainingFormat {
        guard let text = try? String(contentsOfFile: data, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }),
              let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TrainingError.badData("\(data): cannot read a JSON object on its first line; give --format")
        }
        if o["messages"] != nil { return .chat }
        if o["instruction"] != nil { return .alpaca }
        if o["question"] != nil { return .rag }
        throw TrainingError.badData("\(data): first line has none of instruction, messages, question; give --format")
    }
}
