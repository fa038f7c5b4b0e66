import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

/// How the assistant decides, once per answer, to refuse: the adapter's refusal probe (read from
/// the model's state at the prompt's end) when it ships one, else the refusal's first-token
/// probability against the adapter's calibrated threshold (`assistant.json`), else greedy argmax.
public enum RefusalSettings {
    /// `probe`: auto (the adapter folder's `refusal-probe.json` when there is one), off, or a file.
    /// `threshold`: auto (the probe's own, else the adapter's first-token threshold), off (no gate:
    /// greedy argmax, the probe unused), or a probability in 0…1 applied to whichever gate is used.
    public static func resolve(probe: String, threshold: String, adapterDirectory: String?,
                               model: any LanguageModel) throws -> (probe: RefusalProbe?, threshold: Float?) {
        if threshold == "off" { return (nil, nil) }
        let explicit: Float?
        if threshold == "auto" {
            explicit = nil
        } else {
            guard let t = Float(threshold), (0...1).contains(t) else { throw RefusalSettingsError.badThreshold(threshold) }
            explicit = t
        }
        let probePath: String?
        switch probe {
        case "off": probePath = nil
        case "auto": probePath = adapterDirectory.map { $0 + "/" + RefusalProbe.fileName }.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        default: probePath = probe
        }
        if let probePath {
            let chosen = try read(probePath, model: model, adapterDirectory: adapterDirectory)
            return (chosen, explicit ?? chosen.threshold)
        }
        return (nil, try explicit ?? adapterDirectory.flatMap { try AdapterSettings.read(directory: $0)?.refusalThreshold })
    }

    /// Sets `config`'s refusal probe and threshold as `resolve` decides, and the first-token
    /// threshold for answers without sources (the explicit one, else the adapter's calibrated one).
    public static func apply(probe: String, threshold: String, adapterDirectory: String?, model: any LanguageModel,
                             to config: inout AssistantConfig) throws {
        (config.refusalProbe, config.refusalThreshold) = try resolve(probe: probe, threshold: threshold,
                                                                     adapterDirectory: adapterDirectory, model: model)
        config.refusalThresholdWithoutSources = config.refusalProbe == nil ? config.refusalThreshold
            : try resolve(probe: "off", threshold: threshold, adapterDirectory: adapterDirectory, model: model).threshold
    }

    /// Reads a probe and checks that it reads this model with this adapter.
    public static func read(_ path: String, model: any LanguageModel, adapterDirectory: String?) throws -> RefusalProbe {
        guard let reader = model as? any LayerStateReading else { throw RefusalProbeError.unsupportedModel }
        return try RefusalProbe.read(path, model: reader.stateSource, width: reader.stateWidth, layers: reader.layerCount,
                                     adapterSHA256: try adapterDirectory.map { try LoRAAdapter.weightsSHA256(directory: $0) })
    }
}

public enum RefusalSettingsError: DamdaError {
    case badThreshold(String)
    public var message: String {
        switch self {
        case let .badThreshold(t): "--refusal-threshold must be auto, off or a number in 0…1, not \"\(t)\""
        }
    }
}
