import Foundation

/// Builds a GGUF v3 file: metadata in insertion order, tensors aligned to `alignment`.
/// Written to a temporary file and renamed into place, so a kill mid-write leaves no partial model.
public struct GGUFWriter {
    public struct Tensor {
        public let name: String
        public let dims: [Int]
        public let type: TensorType
        public let bytes: [UInt8]
    }

    public var alignment = 32
    public private(set) var metadata: [(String, GGUFValue)] = []
    private(set) var tensors: [Tensor] = []

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) { metadata[i].1 = value } else { metadata.append((key, value)) }
    }

    /// Adds a tensor; `dims` innermost-first (`[columns, rows]`), `bytes` already in `type`'s layout.
    public mutating func addTensor(_ name: String, dims: [Int], type: TensorType, bytes: [UInt8]) {
        tensors.append(Tensor(name: name, dims: dims, type: type, bytes: bytes))
    }

    public mutating func addTensor(_ name: String, dims: [Int], floats: [Float]) {
        let bytes = floats.withUnsafeBytes { Array($0) }
        addTensor(name, dims: dims, type: .f32, bytes: bytes)
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out.append(contentsOf: s.utf8) }
        u32(0x4655_4747); u32(3); u64(UInt64(tensors.count))
        var meta = metadata
        if alignment != 32, !meta.contains(where: { $0.0 == "general.alignment" }) {
            meta.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        u64(UInt64(meta.count))
        for (k, v) in meta { str(k); u32(v.type.rawValue); v.encode(into: &out) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.bytes.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            str(t.name); u32(UInt32(t.dims.count))
            for d in t.dims { u64(UInt64(d)) }
            u32(t.type.rawValue); u64(UInt64(off))
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out.append(contentsOf: t.bytes)
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try Data(encoded()).write(to: tmp)
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(at: url) }
            try FileManager.default.moveItem(at: tmp, to: url)
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw GGUFError.writeFailed(path: path, reason: "\(error)")
        }
    }
}
