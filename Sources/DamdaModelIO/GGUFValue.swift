/// A GGUF metadata value. Arrays keep their element type so a writer can reproduce them.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFArray)

    /// An array of `type` holding `values` (each of that type).
    public static func array(_ type: GGUFValueType, _ values: [GGUFValue]) -> GGUFValue {
        .array(GGUFArray(type, values))
    }

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    /// Any integer type as Int (nil for non-integers or values that do not fit).
    public var int: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        default: nil
        }
    }

    /// Floats and integers as Double.
    public var double: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: int.map(Double.init)
        }
    }

    public var bool: Bool? { if case let .bool(v) = self { v } else { nil } }
    public var string: String? { if case let .string(v) = self { v } else { nil } }
    public var array: GGUFArray? { if case let .array(v) = self { v } else { nil } }

    /// Appends the value as GGUF stores it after its type: little-endian scalars, a string's
    /// length and bytes, an array's element type, count and elements.
    public func encode(into out: inout [UInt8]) {
        func le<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) } }
        switch self {
        case let .uint8(x): out.append(x)
        case let .int8(x): out.append(UInt8(bitPattern: x))
        case let .uint16(x): le(x)
        case let .int16(x): le(x)
        case let .uint32(x): le(x)
        case let .int32(x): le(x)
        case let .uint64(x): le(x)
        case let .int64(x): le(x)
        case let .float32(x): le(x.bitPattern)
        case let .float64(x): le(x.bitPattern)
        case let .bool(x): out.append(x ? 1 : 0)
        case let .string(x): le(UInt64(x.utf8.count)); out.append(contentsOf: x.utf8)
        case let .array(a): le(a.elementType.rawValue); le(UInt64(a.count)); out.append(contentsOf: a.encodedElements())
        }
    }
}

public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Fixed encoded size, nil for string and array.
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }
}

/// A GGUF metadata array, packed: fixed-size elements as their little-endian bytes, strings as
/// their UTF-8 bytes one after another with the end of each. A tokenizer's three 262,144-element
/// arrays take about 5 MB this way; as `[GGUFValue]` (24 bytes an element, plus a heap string per
/// token over 15 bytes) they took about 34 MB for the whole life of the model.
public struct GGUFArray: Sendable, Equatable, RandomAccessCollection {
    public let elementType: GGUFValueType
    public let count: Int
    /// Fixed-size elements' bytes, or every string's UTF-8 bytes.
    let bytes: [UInt8]
    /// Strings only: string i is `bytes[ends[i - 1]..<ends[i]]` (from 0 for the first).
    let ends: [Int]

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// Packs `values`; each must be of `type` (arrays do not nest in GGUF).
    public init(_ type: GGUFValueType, _ values: [GGUFValue]) {
        precondition(type != .array, "GGUF arrays do not nest")
        var bytes: [UInt8] = [], ends: [Int] = []
        for v in values {
            precondition(v.type == type, "a \(v.type) value in an array of \(type)")
            // Strings are packed without their length prefix; `ends` marks where each stops.
            if case let .string(x) = v { bytes.append(contentsOf: x.utf8); ends.append(bytes.count) } else { v.encode(into: &bytes) }
        }
        self.init(elementType: type, count: values.count, bytes: bytes, ends: ends)
    }

    /// Already packed (the file reader's path); `ends` is empty unless `elementType` is `.string`.
    init(elementType: GGUFValueType, count: Int, bytes: [UInt8], ends: [Int]) {
        self.elementType = elementType
        self.count = count
        self.bytes = bytes
        self.ends = ends
    }

    /// A string element's UTF-8 bytes (empty for other types).
    public func utf8(at i: Int) -> ArraySlice<UInt8> {
        guard elementType == .string else { return [] }
        return bytes[(i == 0 ? 0 : ends[i - 1])..<ends[i]]
    }

    public subscript(i: Int) -> GGUFValue {
        precondition(i >= 0 && i < count, "index \(i) out of \(count)")
        func load<T: FixedWidthInteger>(_: T.Type) -> T {
            T(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self) })
        }
        switch elementType {
        case .uint8: return .uint8(bytes[i])
        case .int8: return .int8(Int8(bitPattern: bytes[i]))
        case .uint16: return .uint16(load(UInt16.self))
        case .int16: return .int16(load(Int16.self))
        case .uint32: return .uint32(load(UInt32.self))
        case .int32: return .int32(load(Int32.self))
        case .uint64: return .uint64(load(UInt64.self))
        case .int64: return .int64(load(Int64.self))
        case .float32: return .float32(Float(bitPattern: load(UInt32.self)))
        case .float64: return .float64(Double(bitPattern: load(UInt64.self)))
        case .bool: return .bool(bytes[i] != 0)
        // The reader validated every string's UTF-8.
        case .string: return .string(String(decoding: utf8(at: i), as: UTF8.self))
        case .array: preconditionFailure("GGUF arrays do not nest")
        }
    }

    /// The elements as GGUF encodes them after the type and count.
    func encodedElements() -> [UInt8] {
        guard elementType == .string else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8 * count)
        for i in 0..<count {
            let s = utf8(at: i)
            withUnsafeBytes(of: UInt64(s.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: s)
        }
        return out
    }
}
