import DamdaCore
import DamdaEngine
import DamdaModelIO
import Foundation

/// Folds a LoRA adapter into the base weights, W' = W + (alpha/r)·B·A, and writes a GGUF that the
/// engine and llama.cpp load without the adapter. Adapted matrices become F16, F32 or Q8_0; every
/// other tensor and all metadata are copied unchanged.
public enum AdapterMerge {
    public static let ggufNames: [LoRATarget: String] = [
        .q: "attn_q", .k: "attn_k", .v: "attn_v", .o: "attn_output", .gate: "ffn_gate", .up: "ffn_up", .down: "ffn_down",
    ]

    public static func merge(model: any AdaptableModel, adapter: LoRAAdapter, type: TensorType, to path: String,
                             progress: ((Int, Int) -> Void)? = nil) throws {
        guard [.f16, .f32, .q8_0].contains(type) else { throw LoRAError.badAdapter("merged weights can be f16, f32 or q8_0") }
        let file = model.file
        var merged: [String: (LoRATarget, Int)] = [:]
        for layer in 0..<model.loraGeometry.layers { for t in adapter.targets { merged["blk.\(layer).\(ggufNames[t]!).weight"] = (t, layer) } }
        var w = GGUFWriter()
        w.alignment = file.alignment
        for key in file.metadataKeys { w.set(key, file.metadata[key]!) }
        if case let .string(name)? = file.metadata["general.name"] { w.set("general.name", .string(name + " + LoRA")) }
        for (i, info) in file.tensors.enumerated() {
            if let (t, layer) = merged[info.name] {
                let W = WeightMatrix(name: info.name, type: info.type, rows: info.rows, columns: info.columns, data: file.data(of: info).baseAddress!)
                var values = [Float](repeating: 0, count: info.rows * info.columns)
                values.withUnsafeMutableBufferPointer { W.dequantizeRows(0..<info.rows, into: $0.baseAddress!) }
                let delta = adapter.delta(layer: layer, t)!
                for j in values.indices { values[j] += delta[j] }
                w.addTensor(info.name, dims: info.dims, type: type, bytes: encode(values, as: type))
            } else {
                w.addTensor(info.name, dims: info.dims, type: info.type, bytes: Array(file.data(of: info)))
            }
            progress?(i + 1, file.tensors.count)
        }
        try w.write(to: path)
    }

    static func encode(_ values: [Float], as type: TensorType) -> [UInt8] {
        switch type {
        case .f32: return values.withUnsafeBytes { Array($0) }
        case .f16: return values.map { Float16($0) }.withUnsafeBytes { Array($0) }
        default: return quantizeQ8_0(values)
        }
    }

    /// ggml's Q8_0: blocks of 32 values as an f16 scale d = max|x|/127 and 32 int8 quants round(x/d).
    public static func quantizeQ8_0(_ x: [Float]) -> [UInt8] {
        precondition(x.count % 32 == 0, "Q8_0 rows are whole blocks of 32")
        var out = [UInt8](repeating: 0, count: x.count / 32 * 34)
        for b in 0..<(x.count / 32) {
            let block = x[(b * 32)..<(b * 32 + 32)]
            let amax = block.map(abs).max() ?? 0
            let d = amax / 127
            let id: Float = d > 0 ? 1 / d : 0
            let bits = Float16(d).bitPattern
            out[b * 34] = UInt8(bits & 0xFF); out[b * 34 + 1] = UInt8(bits >> 8)
            for (j, v) in block.enumerated() { out[b * 34 + 2 + j] = UInt8(bitPattern: Int8((v * id).rounded())) }
        }
        return out
    }
}
