import DamdaCore
import DamdaDatasets
import DamdaEngine
import DamdaModelIO
import DamdaTestSupport
import DamdaTraining
import Foundation
import XCTest

/// A tiny Gemma 3 written once for these tests.
enum TinyTrainingModel {
    static var path: String { TinyModels.trainingGemmaPath }

    /// Alpaca lines in the tiny vocabulary (its pieces are Korean syllables, "the", "is", digits).
    static func alpacaLines(_ n: Int) -> String {
        let outputs = ["안녕하세요", "보험금을", "the 12", "is 0", "안녕 안녕", "보험금 21"]
        return (0..<n).map { i in
            "{\"instruction\": \"보험 \(i % 7)\", \"input\": \"\(i % 3 == 0 ? "하세요" : "")\", \"output\": \"\(outputs[i % outputs.count])\"}"
        }.joined(separator: "\n") + "\n"
    }
}

final class TrainingLoopTests: XCTestCase {
    func sequences(_ model: Gemma3Model, count: Int) -> [TrainingSequence] {
        let r = ExampleRenderer(tokenizer: model.tokenizer, conversation: .gemma)
        return TinyTrainingModel.alpacaLines(count).split(separator: "\n").map { line in
            let o = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: String]
            return r.render(.instruction(instruction: o["instruction"]!, input: o["input"]!, output: o["output"]!))!
        }
    }

    func makeTrainer(_ dir: URL, options: TrainingOptions) throws -> (Trainer, LoRAAdapter) {
        let model = try Gemma3Model(path: TinyTrainingModel.path, threads: 1)
        let adapter = LoRAAdapter(geometry: model.loraGeometry, rank: options.rank, alpha: options.alpha, targets: options.targets)
        adapter.initialize(seed: options.seed)
        let bp = try DecoderBackprop(model: model, adapter: adapter, dropout: options.dropout, threads: 1)
        let trainer = try Trainer(backprop: bp, options: options, sequences: sequences(model, count: 24), outputDirectory: dir.path, modelIdentity: "tiny")
        trainer.log = { _ in }
        return (trainer, adapter)
    }

    func testLossFallsAndValidationIsTracked() throws {
        let dir = try temporaryDirectory("train-loop")
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = TrainingOptions()
        o.rank = 4; o.alpha = 8; o.learningRate = 5e-2; o.epochs = 8; o.batch = 4; o.validationFraction = 0.2; o.evaluateEvery = 5
        o.maxGradientNorm = 0  // the random model's logits are huge: clipping would make every step tiny
        let (trainer, _) = try makeTrainer(dir, options: o)
        XCTAssertEqual(trainer.validation.count, 5)
        let all = try trainer.run(progress: false)
        XCTAssertEqual(all.first?.step, 0, "step 0 logs the base model's validation loss")
        let log = all.filter { $0.step > 0 }
        XCTAssertEqual(log.count, trainer.totalSteps)
        let first = log.prefix(3).map(\.loss).reduce(0, +) / 3, last = log.suffix(3).map(\.loss).reduce(0, +) / 3
        XCTAssertLessThan(last, 0.95 * first, "training loss should fall (the random model starts near 520 nats): \(first) → \(last)")
        let vals = all.compactMap(\.validationLoss)
        XCTAssertGreaterThanOrEqual(vals.count, 2)
        XCTAssertLessThan(vals.last!, vals.first!)
        // Warmup then cosine decay to ~0 at the end.
        XCTAssertLessThan(log.last!.learningRate, 0.1 * o.learningRate)
        let lines = try String(contentsOfFile: trainer.logPath, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, all.count)
    }

    /// Stopping after a checkpoint and running again ends with the same adapter, bit for bit.
    func testResumeReachesTheSameAdapter() throws {
        let dirA = try temporaryDirectory("train-a"), dirB = try temporaryDirectory("train-b")
        defer { try? FileManager.default.removeItem(at: dirA); try? FileManager.default.removeItem(at: dirB) }
        var o = TrainingOptions()
        o.rank = 4; o.alpha = 8; o.learningRate = 3e-3; o.epochs = 2; o.batch = 3; o.dropout = 0.1; o.checkpointEvery = 3; o.validationFraction = 0.1
        let (straight, adapterA) = try makeTrainer(dirA, options: o)
        try straight.run(progress: false)

        struct Stop: Error {}
        let (interrupted, _) = try makeTrainer(dirB, options: o)
        interrupted.afterStep = { if $0 == 7 { throw Stop() } }
        XCTAssertThrowsError(try interrupted.run(progress: false))
        XCTAssertEqual(try Checkpoint.load(interrupted.checkpointPath)?.step, 6)
        let (resumed, adapterB) = try makeTrainer(dirB, options: o)
        let log = try resumed.run(progress: false)
        XCTAssertEqual(log.count, straight.totalSteps + 1)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: adapterB.parameters, count: adapterB.count)),
                       Array(UnsafeBufferPointer(start: adapterA.parameters, count: adapterA.count)))

        // A checkpoint of another run (different options) is refused, not silently resumed.
        var other = o
        other.learningRate = 1e-3
        let (mismatched, _) = try makeTrainer(dirB, options: other)
        XCTAssertThrowsError(try mismatched.run(progress: false)) { e in
            XCTAssertTrue((e as! DamdaError).message.contains("belongs to another run"))
        }
        // A damaged checkpoint is an error too.
        try Data("DAMDA-LORA-CKPT1garbage".utf8).write(to: URL(fileURLWithPath: resumed.checkpointPath))
        XCTAssertThrowsError(try Checkpoint.load(resumed.checkpointPath))
    }

    /// Continuing an adapter (`damda train --from-adapter`) starts from its weights: the first
    /// validation loss is the one it ended on, and a shape it was not trained with is refused.
    func testContinuingAnAdapterStartsWhereItEnded() throws {
        let first = try temporaryDirectory("train-first"), second = try temporaryDirectory("train-second")
        defer { try? FileManager.default.removeItem(at: first); try? FileManager.default.removeItem(at: second) }
        let model = try Gemma3Model(path: TinyTrainingModel.path, threads: 1)
        var o = TrainingOptions()
        o.rank = 4; o.alpha = 8; o.learningRate = 3e-3; o.epochs = 1; o.batch = 4; o.validationFraction = 0.2; o.evaluateEvery = 1
        func fineTune(_ dir: URL) -> FineTune {
            var f = FineTune(model: model, baseModelName: "tiny", modelIdentity: "tiny", threads: 1, outputDirectory: dir.path)
            f.options = o
            return f
        }
        let seqs = sequences(model, count: 24)
        let ended = try fineTune(first).run(seqs)
        let trained = try LoRAAdapter.load(directory: first.path, geometry: model.loraGeometry).adapter

        var continued = fineTune(second)
        continued.initialAdapter = trained
        let summary = try continued.run(seqs)
        XCTAssertEqual(summary.firstValidationLoss, ended.finalValidationLoss, accuracy: 1e-9)
        XCTAssertLessThan(summary.firstValidationLoss, ended.firstValidationLoss)

        var otherRank = fineTune(try temporaryDirectory("train-third"))
        otherRank.options.rank = 8
        otherRank.initialAdapter = trained
        XCTAssertThrowsError(try otherRank.run(seqs)) { e in
            XCTAssertTrue((e as! DamdaError).message.contains("r 4"), "\(e)")
        }
    }

    /// The real thing: `damda train` killed with SIGKILL mid-run, then the same command again.
    func testKilledTrainingResumesToTheSameAdapter() throws {
        let damda = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("damda").path
        let candidates = [damda, repositoryRoot.appendingPathComponent(".build/release/damda").path]
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("damda binary not built")
        }
        let dir = try temporaryDirectory("train-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data.jsonl").path
        try TinyTrainingModel.alpacaLines(64).write(toFile: data, atomically: true, encoding: .utf8)
        func command(_ out: String) -> [String] {
            ["train", "--model", TinyTrainingModel.path, "--data", data, "--out", dir.appendingPathComponent(out).path, "--threads", "1",
             "--rank", "4", "--alpha", "8", "--epochs", "8", "--batch", "2", "--save-every", "4", "--lr", "2e-3", "--seed", "3"]
        }
        func launch(_ out: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = command(out)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        let straight = try launch("straight")
        straight.waitUntilExit()
        XCTAssertEqual(straight.terminationStatus, 0)

        let killed = try launch("killed")
        let log = dir.appendingPathComponent("killed/train_log.jsonl").path
        // Kill once a checkpoint exists and a few more steps have run past it.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let steps = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").count ?? 0
            if steps >= 6 { break }
            usleep(2000)
        }
        kill(killed.processIdentifier, SIGKILL)
        killed.waitUntilExit()
        XCTAssertEqual(killed.terminationReason, .uncaughtSignal, "the run finished before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("killed/adapter_model.safetensors").path))
        let resumed = try launch("killed")
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)
        let a = try Data(contentsOf: dir.appendingPathComponent("straight/adapter_model.safetensors"))
        let b = try Data(contentsOf: dir.appendingPathComponent("killed/adapter_model.safetensors"))
        XCTAssertEqual(a, b, "resumed adapter differs from the uninterrupted one")
        let steps = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").count
        let straightSteps = try String(contentsOfFile: dir.appendingPathComponent("straight/train_log.jsonl").path, encoding: .utf8).split(separator: "\n").count
        XCTAssertEqual(steps, straightSteps)
    }
}
