import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaModelIO
import Foundation

/// Everything that decides the training trajectory (a checkpoint resumes only under the same options).
public struct TrainingOptions: Codable, Sendable, Equatable {
    public var rank = 16
    public var alpha: Float = 32
    public var dropout: Float = 0.05
    public var targets: [LoRATarget] = LoRATarget.allCases
    public var learningRate: Float = 2e-4
    public var epochs = 3
    /// Sequences per micro-batch.
    public var batch = 8
    public var gradientAccumulation = 1
    public var maxLength = 512
    public var validationFraction = 0.05
    public var seed: UInt64 = 0
    public var warmupFraction = 0.03
    public var weightDecay: Float = 0
    public var maxGradientNorm: Float = 1
    /// Sequences are packed into passes of at most this many tokens (bounds activation memory).
    public var maxPassTokens = 1024
    public var recompute = false
    public var evaluateEvery = 50
    public var checkpointEvery = 10
    /// Stop after this many updates (0: train all epochs).
    public var maxSteps = 0
    public init() {}
}

/// One line of `train_log.jsonl`.
public struct TrainingLogEntry: Codable, Sendable {
    public var step: Int
    public var epoch: Double
    public var loss: Double
    public var learningRate: Float
    public var gradientNorm: Float
    public var tokensPerSecond: Double
    public var answerTokens: Int
    public var examplesSeen: Int
    public var elapsedSeconds: Double
    public var validationLoss: Double?

    enum CodingKeys: String, CodingKey {
        case step, epoch, loss, learningRate = "lr", gradientNorm = "grad_norm", tokensPerSecond = "tokens_per_s"
        case answerTokens = "answer_tokens", examplesSeen = "examples_seen", elapsedSeconds = "elapsed_s", validationLoss = "val_loss"
    }
}

/// The LoRA training loop: packed micro-batches, gradient accumulation, clipping, AdamW with
/// warmup + cosine, validation loss, checkpoints that resume to the same final adapter.
public final class Trainer {
    public let backprop: DecoderBackprop
    public let options: TrainingOptions
    public let train: [TrainingSequence]
    public let validation: [TrainingSequence]
    public let outputDirectory: String
    public let optimizer: AdamW
    /// Identifies model + data + options; a checkpoint with another fingerprint is not resumed.
    public let fingerprint: String
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
    /// Called after every update (tests use it to stop mid-run).
    public var afterStep: ((Int) throws -> Void)?

    public var stepsPerEpoch: Int { max(1, (train.count + sequencesPerStep - 1) / sequencesPerStep) }
    public var sequencesPerStep: Int { options.batch * options.gradientAccumulation }
    public var totalSteps: Int {
        let all = stepsPerEpoch * options.epochs
        return options.maxSteps > 0 ? min(all, options.maxSteps) : all
    }

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: options.learningRate, warmupSteps: Int((Double(totalSteps) * options.warmupFraction).rounded(.up)),
                             totalSteps: totalSteps)
    }

    public var checkpointPath: String { outputDirectory + "/checkpoint.bin" }
    public var logPath: String { outputDirectory + "/train_log.jsonl" }

    public init(backprop: DecoderBackprop, options: TrainingOptions, sequences: [TrainingSequence], outputDirectory: String, modelIdentity: String) throws {
        guard !sequences.isEmpty else { throw TrainingError.badData("no training examples") }
        self.backprop = backprop; self.options = options; self.outputDirectory = outputDirectory
        // A fixed, seeded validation split.
        var rng = SplitMix64(seed: options.seed ^ 0x5EED_0F_0A11)
        let order = Array(sequences.indices).shuffled(using: &rng)
        let nVal = options.validationFraction > 0 && sequences.count >= 2
            ? max(1, min(sequences.count - 1, Int((Double(sequences.count) * options.validationFraction).rounded()))) : 0
        validation = order.prefix(nVal).sorted().map { sequences[$0] }
        train = order.dropFirst(nVal).sorted().map { sequences[$0] }
        optimizer = AdamW(count: backprop.adapter.count, weightDecay: options.weightDecay)
        var hasher = FNV1a()
        hasher.add(modelIdentity)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]  // key order must not vary between runs
        hasher.add(String(decoding: try encoder.encode(options), as: UTF8.self))
        for s in sequences { s.ids.withUnsafeBytes { hasher.add($0) }; hasher.add(s.isAnswer.map { $0 ? "1" : "0" }.joined()) }
        fingerprint = String(format: "%016llx", hasher.value)
    }

    /// The sequences of update `step`: each epoch walks a seeded shuffle of the training set.
    func sequences(forStep step: Int) -> [TrainingSequence] {
        let epoch = step / stepsPerEpoch, within = step % stepsPerEpoch
        var rng = SplitMix64(seed: options.seed &+ UInt64(epoch + 1) &* 0x9E37_79B9_7F4A_7C15)
        let order = Array(train.indices).shuffled(using: &rng)
        let lo = within * sequencesPerStep
        return order[lo..<min(lo + sequencesPerStep, order.count)].map { train[$0] }
    }

    /// Packs sequences into passes of at most `maxPassTokens` tokens (a longer sequence gets its own pass).
    func passes(_ seqs: [TrainingSequence]) -> [PackedBatch] {
        var out: [PackedBatch] = []
        var current = PackedBatch()
        for s in seqs {
            if !current.tokens.isEmpty && current.tokens.count + s.ids.count - 1 > options.maxPassTokens {
                out.append(current); current = PackedBatch()
            }
            current.append(s)
        }
        if !current.tokens.isEmpty { out.append(current) }
        return out
    }

    /// Mean cross-entropy per answer token on the validation split (dropout off).
    public func validationLoss() throws -> Double? {
        guard !validation.isEmpty else { return nil }
        let saved = backprop.dropout
        backprop.dropout = 0
        defer { backprop.dropout = saved }
        var sum = 0.0, tokens = 0
        for pass in passes(validation) {
            let r = try backprop.loss(pass)
            sum += r.lossSum; tokens += r.tokens
        }
        return tokens > 0 ? sum / Double(tokens) : nil
    }

    /// Trains to the last step, resuming from the checkpoint when it matches; writes the adapter.
    @discardableResult
    public func run(progress: Bool = true) throws -> [TrainingLogEntry] {
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        var start = 0
        var entries: [TrainingLogEntry] = []
        if let ckpt = try Checkpoint.load(checkpointPath) {
            guard ckpt.fingerprint == fingerprint else {
                throw TrainingError.badCheckpoint("\(checkpointPath) belongs to another run (different model, data or options): use --fresh to start over or another --out")
            }
            try ckpt.restore(into: backprop.adapter, optimizer)
            start = ckpt.step
            entries = readLog().filter { $0.step <= start }
            log("resuming from step \(start) of \(totalSteps) (\(checkpointPath))")
        }
        if start == 0, let v = try validationLoss() {
            // Step 0: the base model's validation loss, the point every later one is compared with.
            entries = [TrainingLogEntry(step: 0, epoch: 0, loss: v, learningRate: 0, gradientNorm: 0, tokensPerSecond: 0,
                                        answerTokens: 0, examplesSeen: 0, elapsedSeconds: 0, validationLoss: v)]
        }
        writeLog(entries)
        let bar = progress ? ProgressBar(total: Int64(totalSteps), label: "train", unit: "step") : nil
        bar?.update(to: Int64(start))
        let schedule = self.schedule
        let clock = ContinuousClock()
        let began = clock.now
        let elapsedBefore = entries.last?.elapsedSeconds ?? 0
        for step in start..<totalSteps {
            let stepStart = clock.now
            let batch = sequences(forStep: step)
            let passes = passes(batch)
            let answerTokens = passes.reduce(0) { $0 + $1.lossTokens }
            backprop.zeroGradients()
            var lossSum = 0.0, tokens = 0
            for (i, pass) in passes.enumerated() {
                let seed = options.seed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(i + 1) &* 0xD1B5_4A32_D192_ED03)
                let r = try backprop.accumulate(pass, lossScale: 1 / Float(max(answerTokens, 1)), dropoutSeed: seed)
                lossSum += r.lossSum
                tokens += pass.tokens.count
            }
            let norm = clipGradientNorm(backprop.gradients, count: backprop.adapter.count, maxNorm: options.maxGradientNorm)
            let lr = schedule.rate(at: step)
            optimizer.update(backprop.adapter.parameters, gradients: backprop.gradients, learningRate: lr)
            let seconds = (clock.now - stepStart).seconds
            var entry = TrainingLogEntry(
                step: step + 1, epoch: Double(step + 1) / Double(stepsPerEpoch), loss: lossSum / Double(max(answerTokens, 1)),
                learningRate: lr, gradientNorm: norm, tokensPerSecond: Double(tokens) / max(seconds, 1e-9), answerTokens: answerTokens,
                examplesSeen: min((step + 1) * sequencesPerStep, train.count * options.epochs),
                elapsedSeconds: elapsedBefore + (clock.now - began).seconds, validationLoss: nil)
            if (step + 1) % options.evaluateEvery == 0 || step + 1 == totalSteps { entry.validationLoss = try validationLoss() }
            entries.append(entry)
            appendLog(entry)
            bar?.detail = String(format: " loss %.3f%@ %.0f tok/s", entry.loss, entry.validationLoss.map { String(format: " val %.3f", $0) } ?? "", entry.tokensPerSecond)
            bar?.update(to: Int64(step + 1))
            if (step + 1) % options.checkpointEvery == 0 || step + 1 == totalSteps {
                try Checkpoint(step: step + 1, fingerprint: fingerprint, adapter: backprop.adapter, optimizer: optimizer).save(checkpointPath)
            }
            try afterStep?(step + 1)
        }
        bar?.finish()
        return entries
    }

    func readLog() -> [TrainingLogEntry] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(TrainingLogEntry.self, from: Data($0.utf8)) }
    }

    func writeLog(_ entries: [TrainingLogEntry]) {
        let text = entries.map { jsonLine($0) }.joined()
        try? atomicWrite(Data(text.utf8), to: logPath)
    }

    func appendLog(_ e: TrainingLogEntry) {
        guard let h = FileHandle(forWritingAtPath: logPath) else { return }
        h.seekToEndOfFile()
        h.write(Data(jsonLine(e).utf8))
        try? h.close()
    }

    func jsonLine(_ e: TrainingLogEntry) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try! enc.encode(e), as: UTF8.self) + "\n"
    }
}

/// Adapter, optimizer moments and the step reached; the data order and dropout masks are
/// functions of (seed, step), so the step is the whole data position and RNG state.
public struct Checkpoint {
    static let magic = Array("DAMDA-LORA-CKPT1".utf8)
    public var step: Int
    public var fingerprint: String
    var parameters: [Float], m: [Float], v: [Float]
    var adamStep: Int

    public init(step: Int, fingerprint: String, adapter: LoRAAdapter, optimizer: AdamW) {
        self.step = step; self.fingerprint = fingerprint
        parameters = Array(UnsafeBufferPointer(start: adapter.parameters, count: adapter.count))
        m = Array(UnsafeBufferPointer(start: optimizer.m, count: optimizer.count))
        v = Array(UnsafeBufferPointer(start: optimizer.v, count: optimizer.count))
        adamStep = optimizer.step
    }

    public func save(_ path: String) throws {
        var d = Data(Self.magic)
        let header = try JSONSerialization.data(withJSONObject: [
            "step": step, "fingerprint": fingerprint, "adam_step": adamStep, "count": parameters.count,
            "rng": ["scheme": "splitmix64(seed, step)", "next_step": step],
        ] as [String: Any], options: [.sortedKeys])
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(header)
        for a in [parameters, m, v] { a.withUnsafeBytes { d.append(contentsOf: $0) } }
        try atomicWrite(d, to: path)
    }

    /// nil when there is no checkpoint; a damaged one is an error (never silently ignored).
    public static func load(_ path: String) throws -> Checkpoint? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let d = FileManager.default.contents(atPath: path), d.count > magic.count + 8, Array(d.prefix(magic.count)) == magic else {
            throw TrainingError.badCheckpoint("\(path) is not a Damda LoRA checkpoint")
        }
        let n = d.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: magic.count, as: UInt64.self))) }
        let hStart = magic.count + 8
        guard n > 0, hStart + n <= d.count,
              let h = try? JSONSerialization.jsonObject(with: d.subdata(in: hStart..<(hStart + n))) as? [String: Any],
              let step = h["step"] as? Int, let fp = h["fingerprint"] as? String, let adamStep = h["adam_step"] as? Int, let count = h["count"] as? Int,
              d.count == hStart + n + 3 * count * 4 else {
            throw TrainingError.badCheckpoint("\(path) is truncated or damaged")
        }
        func floats(_ i: Int) -> [Float] {
            d.subdata(in: (hStart + n + i * count * 4)..<(hStart + n + (i + 1) * count * 4)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return Checkpoint(step: step, fingerprint: fp, parameters: floats(0), m: floats(1), v: floats(2), adamStep: adamStep)
    }

    init(step: Int, fingerprint: String, parameters: [Float], m: [Float], v: [Float], adamStep: Int) {
        self.step = step; self.fingerprint = fingerprint; self.parameters = parameters; self.m = m; self.v = v; self.adamStep = adamStep
    }

    func restore(into adapter: LoRAAdapter, _ optimizer: AdamW) throws {
        guard parameters.count == adapter.count else { throw TrainingError.badCheckpoint("size \(parameters.count) does not match the adapter's \(adapter.count)") }
        adapter.parameters.update(from: parameters, count: parameters.count)
        optimizer.m.update(from: m, count: m.count)
        optimizer.v.update(from: v, count: v.count)
        optimizer.step = adamStep
    }
}

/// 64-bit FNV-1a, for fingerprints.
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ bytes: UnsafeRawBufferPointer) { for b in bytes { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 } }
    mutating func add(_ s: String) { var s = s; s.withUTF8 { add(UnsafeRawBufferPointer($0)) } }
}
