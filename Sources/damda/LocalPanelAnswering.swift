import DamdaAssistant
import DamdaCore
import DamdaEngine
import DamdaEval
import DamdaModelIO
import DamdaRetrieval
import Foundation

/// How `damda serve` and `damda panel create --questions` answer a survey's configurations: the
/// eval's runner on a model copy of its own, loaded at the first survey, its adapter switched per
/// configuration. PanelJobs runs one survey at a time, so the copy is never shared.
final class LocalPanelAnswering: PanelAnswering, @unchecked Sendable {
    let index: SearchIndex
    let modelPath: String
    let threads: Int
    let lock = NSLock()
    var runner: EvalRunner?

    init(index: SearchIndex, modelPath: String, threads: Int) {
        self.index = index; self.modelPath = modelPath; self.threads = threads
    }

    func check(_ configs: [PanelConfigSpec]) throws {
        for c in configs {
            let e = try c.configuration()
            switch e.adapter {
            case "none": break
            case "default":
                guard DefaultAdapter.isDefaultModel(modelPath) else { throw EvalError.badConfiguration("\(e.name): adapter=default needs the default model; give adapter=DIR") }
                try DefaultAdapter.verify(directory: try DefaultAdapter.locate())
            default:
                guard FileManager.default.fileExists(atPath: e.adapter + "/adapter_config.json") else {
                    throw EvalError.badConfiguration("\(e.name): no adapter at \(e.adapter) (adapter_config.json missing)")
                }
            }
            if let t = e.template, !FileManager.default.fileExists(atPath: t) { throw EvalError.badConfiguration("\(e.name): no template file \(t)") }
            if e.usesRetrieval, index.chunkCount == 0 { throw EvalError.badConfiguration("\(e.name): the index is empty; ingest documents first") }
        }
    }

    func answers(_ configs: [PanelConfigSpec], questions: [BatchQuestion],
                 progress: @escaping @Sendable (Int, Int) -> Void) async throws -> [PanelConfigAnswers] {
        let runner = try lock.withLock { () throws -> EvalRunner in
            if let r = self.runner { return r }
            let model = try loadModel(path: modelPath, threads: threads)
            var r = EvalRunner(index: index, model: model, modelName: URL(fileURLWithPath: modelPath).deletingPathExtension().lastPathComponent,
                               questions: [], applyAdapter: adapterSwitcher(model: model, path: modelPath))
            r.progress = false
            self.runner = r
            return r
        }
        return try await runner.panelAnswers(try configs.map { try $0.configuration() }, questions: questions, progress: progress)
    }
}
