import DamdaCore
import DamdaDatasets
import DamdaEngine
import Foundation

/// `damda train`'s library entry point: a LoRA adapter initialized from the seed, trained on
/// token sequences with checkpoints in the output folder (a rerun resumes), and saved there in
/// Hugging Face PEFT format.
public struct FineTune {
    public var model: any AdaptableModel
    /// The base model's name written into adapter_config.json.
    public var baseModelName: String
    /// What a checkpoint must match to be resumed (the model's name and size).
    public var modelIdentity: String
    public var options = TrainingOptions()
    public var threads: Int
    public var outputDirectory: String
    /// Also save the adapter to OUT/step-N every N updates (0: only at the end).
    public var saveAdapterEvery = 0
    /// Delete the checkpoint and start over.
    public var fresh = false
    /// Fail unless there is a checkpoint to resume from.
    public var requireCheckpoint = false
    /// Called once before training with what is about to run.
    public var note: (String) -> Void = { _ in }
    /// Start from these weights instead of a fresh initialization (continue an adapter on new
    /// data). Its rank, alpha and targets must be the options'.
    public var initialAdapter: LoRAAdapter?

    public init(model: any AdaptableModel, baseModelName: String, modelIdentity: String, threads: Int, outputDirectory: String) {
        self.model = model; self.baseModelName = baseModelName; self.modelIdentity = modelIdentity
        self.threads = threads; self.outputDirectory = outputDirectory
    }

    public func run(_ sequences: [TrainingSequence]) throws -> TrainingSummary {
        let o = options
        guard o.rank > 0, o.batch > 0, o.gradientAccumulation > 0, o.epochs > 0, o.maxLength > 8, (0..<1).contains(o.dropout) else {
            throw TrainingError.badData("rank, batch, gradient accumulation and epochs must be positive, max length > 8, 0 ≤ dropout < 1")
        }
        guard !sequences.isEmpty else { throw TrainingError.badData("no examples left to train on") }
        let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: o.rank, alpha: o.alpha, targets: o.targets)
        if let start = initialAdapter {
            guard start.geometry == model.loraGeometry else { throw LoRAError.mismatch("the adapter to continue was trained for another model") }
            guard start.rank == o.rank, start.alpha == o.alpha, start.targets == adapter.targets else {
                throw TrainingError.badData("the adapter to continue has r \(start.rank), alpha \(start.alpha), targets " +
                                            "\(start.targets.map(\.rawValue).joined(separator: ",")); train with the same")
            }
            adapter.parameters.update(from: start.parameters, count: adapter.count)
        } else {
            adapter.initialize(seed: o.seed)
        }
        let backprop = try DecoderBackprop(model: model, adapter: adapter, dropout: o.dropout, recompute: o.recompute, threads: threads)
        let trainer = try Trainer(backprop: backprop, options: o, sequences: sequences, outputDirectory: outputDirectory,
                                  modelIdentity: modelIdentity)
        if fresh { try? FileManager.default.removeItem(atPath: trainer.checkpointPath) }
        if requireCheckpoint && !FileManager.default.fileExists(atPath: trainer.checkpointPath) {
            throw TrainingError.badCheckpoint("--resume: no checkpoint in \(outputDirectory)")
        }
        let answerTokens = sequences.reduce(0) { $0 + $1.answerTokens }
        note("training \(adapter.count) LoRA parameters (r \(o.rank), targets \(o.targets.map(\.rawValue).joined(separator: ","))) on " +
             "\(trainer.train.count) examples (\(trainer.validation.count) held out), \(answerTokens) answer tokens, \(trainer.totalSteps) updates")
        let model = self.model, out = outputDirectory, name = baseModelName, every = saveAdapterEvery
        if every > 0 {
            trainer.afterStep = { step in
                if step % every == 0 {
                    try adapter.save(to: out + "/step-\(step)", baseModel: name, dropout: o.dropout, rowOrder: model.huggingFaceRowOrder)
                }
            }
        }
        let entries = try trainer.run()
        try adapter.save(to: out, baseModel: name, dropout: o.dropout, rowOrder: model.huggingFaceRowOrder)
        let validations = entries.compactMap(\.validationLoss)
        let rates = entries.map(\.tokensPerSecond)
        return TrainingSummary(
            adapter: out, steps: trainer.totalSteps, examples: trainer.train.count, validationExamples: trainer.validation.count,
            trainableParameters: adapter.count, firstLoss: entries.first { $0.step > 0 }?.loss ?? 0, finalLoss: entries.last?.loss ?? 0,
            firstValidationLoss: validations.first ?? 0, finalValidationLoss: validations.last ?? 0,
            seconds: entries.last?.elapsedSeconds ?? 0, tokensPerSecond: rates.isEmpty ? 0 : rates.reduce(0, +) / Double(rates.count),
            peakRSSBytes: peakResidentBytes())
    }
}

/// What `damda train` prints when it is done.
public struct TrainingSummary: Codable, Sendable {
    public var adapter: String
    public var steps: Int
    public var examples: Int
    public var validationExamples: Int
    public var trainableParameters: Int
    public var firstLoss: Double
    public var finalLoss: Double
    public var firstValidationLoss: Double
    public var finalValidationLoss: Double
    public var seconds: Double
    public var tokensPerSecond: Double
    public var peakRSSBytes: Int64
    /// Filled in by the caller from the data report.
    public var skippedLines = 0
    public var skippedExamples = 0
    public var unanswerableExamples = 0

    enum CodingKeys: String, CodingKey {
        case adapter, steps, examples, seconds
        case validationExamples = "validation_examples", trainableParameters = "trainable_parameters"
        case firstLoss = "first_loss", finalLoss = "final_loss", firstValidationLoss = "first_val_loss", finalValidationLoss = "final_val_loss"
        case tokensPerSecond = "tokens_per_s", peakRSSBytes = "peak_rss_bytes"
        case skippedLines = "skipped_lines", skippedExamples = "skipped_examples", unanswerableExamples = "unanswerable_examples"
    }
}
