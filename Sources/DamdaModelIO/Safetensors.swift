import DamdaCore
import Foundation

/// Hugging Face safetensors: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian data.
public enum Safetensors {
    public struct Tensor: Sendable {
        public var dtype: String
        public var shape: [Int]
        public var floats: [Float]
        public init(shape: [Int], floats: [Float]) { dtype = "F32"; self.shape = shape; self.floats = floats }
    }

    public enum Failure: DamdaError {
        case malformed(String, String)
        public var message: String {
            switch self { case let .malformed(path, why): "\(path): not a valid safetensors file: \(why)" }
        }
    }

    /// Writes tensors in their `dtype` (F32, F16 or BF16; values are rounded to nearest-even from
    /// fp32), sorted by name as the Python package does, to a temporary file renamed into place.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = ["format": "pt"], to path: String) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            precondition(t.shape.reduce(1, *) == t.floats.count, "shape of \(name) does not match its values")
            precondition(["F32", "F16", "BF16"].contains(t.dtype), "safetensors writer: dtype \(t.dtype) of \(name)")
            let width = t.dtype == "F32" ? 4 : 2
            header[name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + width * t.floats.count]]
            offset += width * t.floats.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            let t = tensors[name]!
            switch t.dtype {
            case "F16": t.floats.map { Float16($0).bitPattern.littleEndian }.withUnsafeBytes { out.append(contentsOf: $0) }
            case "BF16": t.floats.map { bfloat16Bits($0).littleEndian }.withUnsafeBytes { out.append(contentsOf: $0) }
            default: t.floats.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        try atomicWrite(out, to: path)
    }

    /// fp32 → bfloat16, round to nearest even (NaN stays NaN), as PyTorch converts.
    public static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }

    /// Reads every tensor as fp32 (F32, F16 and BF16 accepted).
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure.malformed(path, "cannot read it") }
        guard data.count >= 8 else { throw Failure.malformed(path, "shorter than its 8-byte header length") }
        let n = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n <= UInt64(data.count - 8) else { throw Failure.malformed(path, "header length \(n) exceeds the file") }
        let start = 8 + Int(n)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<start)) as? [String: Any] else {
            throw Failure.malformed(path, "the header is not a JSON object")
        }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" { metadata = value as? [String: String] ?? [:]; continue }
            guard let o = value as? [String: Any], let dtype = o["dtype"] as? String, let shape = o["shape"] as? [Int],
                  let offsets = o["data_offsets"] as? [Int], offsets.count == 2 else {
                throw Failure.malformed(path, "entry '\(name)' lacks dtype, shape or data_offsets")
            }
            let count = shape.reduce(1, *)
            let width: Int
            switch dtype {
            case "F32": width = 4
            case "F16", "BF16": width = 2
            default: throw Failure.malformed(path, "tensor '\(name)' has dtype \(dtype) (F32, F16, BF16 are read)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[1] - offsets[0] == count * width,
                  start + offsets[1] <= data.count else {
                throw Failure.malformed(path, "tensor '\(name)' has byte range \(offsets) for shape \(shape) \(dtype)")
            }
            var floats = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                let base = raw.baseAddress! + start + offsets[0]
                for i in 0..<count {
                    switch dtype {
                    case "F32": floats[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    case "F16": floats[i] = Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                    default: floats[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                    }
                }
            }
            tensors[name] = Tensor(shape: shape, floats: floats)
            tensors[name]!.dtype = dtype
        }
        return (tensors, metadata)
    }
}

/// Writes to `path.tmp-PID` and renames over `path`: a kill mid-write leaves the old file or none.
public func atomicWrite(_ data: Data, to path: String) throws {
    let tmp = path + ".tmp-\(getpid())"
    try data.write(to: URL(fileURLWithPath: tmp))
    if rename(tmp, path) != 0 {
        try? FileManager.default.removeItem(atPath: tmp)
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
    }
}
