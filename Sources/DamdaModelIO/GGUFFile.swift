import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One tensor's description; `dataOffset` is absolute in the file.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// Dimensions innermost-first, as GGUF stores them: `[columns, rows]` for a matrix.
    public let dims: [Int]
    public let type: TensorType
    public let dataOffset: Int
    public let byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
    /// Row length (innermost dimension).
    public var columns: Int { dims.first ?? 1 }
    /// Number of rows (product of the outer dimensions).
    public var rows: Int { dims.dropFirst().reduce(1, *) }
}

/// A GGUF model file, memory-mapped read-only. Every count, offset and size in the header is
/// checked against the file size before use, so a corrupt file raises `GGUFError`, never traps.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order (a writer reproduces them in this order).
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let fileSize: Int
    private let tensorIndex: [String: Int]
    private let base: UnsafeRawPointer
    private let mappedLength: Int

    public convenience init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size >= 4 else { throw GGUFError.truncated(at: 0, need: 24, fileSize: size) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw GGUFError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        do {
            try self.init(path: path, base: UnsafeRawPointer(p), size: size, mapped: true)
        } catch {
            munmap(p, size)
            throw error
        }
    }

    /// Parses a GGUF image held in memory (tests mutate headers this way).
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: bytes.count) } }
        do {
            try self.init(path: name, base: UnsafeRawPointer(p), size: bytes.count, mapped: false)
        } catch {
            p.deallocate()
            throw error
        }
    }

    /// Whether the tensors are a mapping of the file (else a copy in memory).
    public let isMapped: Bool

    private init(path: String, base: UnsafeRawPointer, size: Int, mapped: Bool) throws {
        self.path = path
        self.base = base
        self.mappedLength = size
        self.fileSize = size
        self.isMapped = mapped
        var r = Reader(base: base, size: size)
        let magic = try r.u32()
        guard magic == 0x4655_4747 else { throw GGUFError.badMagic(path: path, found: magic) }
        version = try r.u32()
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        let tensorCount = try r.u64()
        let kvCount = try r.u64()
        // Each KV needs at least 8+1+4 bytes, each tensor info at least 8+1+4+8+4+8.
        guard kvCount <= UInt64(size / 13) else { throw GGUFError.absurdCount(what: "metadata entries", value: kvCount) }
        guard tensorCount <= UInt64(size / 33) else { throw GGUFError.absurdCount(what: "tensors", value: tensorCount) }

        var meta: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(Int(kvCount))
        for _ in 0..<Int(kvCount) {
            let key = try r.string()
            let rawType = try r.u32()
            guard let type = GGUFValueType(rawValue: rawType) else { throw GGUFError.unknownValueType(rawType, key: key) }
            let value = try r.value(type, key: key)
            guard meta[key] == nil else { throw GGUFError.duplicate(key) }
            meta[key] = value
            keys.append(key)
        }
        metadata = meta
        metadataKeys = keys

        var align = 32
        if let a = meta["general.alignment"]?.int {
            guard a > 0, a & (a - 1) == 0, a <= 1 << 20 else { throw GGUFError.absurdCount(what: "byte alignment", value: UInt64(max(a, 0))) }
            align = a
        }
        alignment = align

        struct Pending { let name: String; let dims: [Int]; let type: TensorType; let offset: UInt64 }
        var pending: [Pending] = []
        pending.reserveCapacity(Int(tensorCount))
        var index: [String: Int] = [:]
        for _ in 0..<Int(tensorCount) {
            let name = try r.string()
            let nDims = try r.u32()
            guard (1...4).contains(nDims) else {
                throw GGUFError.badTensorShape(tensor: name, reason: "\(nDims) dimensions (1 to 4 allowed)")
            }
            var dims: [Int] = []
            var elements: UInt64 = 1
            for _ in 0..<Int(nDims) {
                let d = try r.u64()
                guard d > 0, d <= UInt64(Int32.max) else { throw GGUFError.badTensorShape(tensor: name, reason: "dimension \(d)") }
                let (m, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, m <= UInt64(size) * 8 else { throw GGUFError.badTensorShape(tensor: name, reason: "more elements than the file can hold") }
                elements = m
                dims.append(Int(d))
            }
            let rawType = try r.u32()
            guard let type = TensorType(rawValue: rawType) else { throw GGUFError.unknownTensorType(rawType, tensor: name) }
            guard dims[0] % type.blockSize == 0 else {
                throw GGUFError.badTensorShape(tensor: name, reason: "row of \(dims[0]) is not a multiple of \(type.name)'s block of \(type.blockSize)")
            }
            let offset = try r.u64()
            guard index[name] == nil else { throw GGUFError.duplicate(name) }
            index[name] = pending.count
            pending.append(Pending(name: name, dims: dims, type: type, offset: offset))
        }
        let dataStart = (r.offset + align - 1) / align * align
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(pending.count)
        for p in pending {
            let elements = p.dims.reduce(1, *)
            let bytes = elements / p.type.blockSize * p.type.blockBytes
            guard p.offset <= UInt64(size), p.offset % UInt64(align) == 0 else {
                throw GGUFError.tensorOutOfBounds(tensor: p.name, end: Int(clamping: p.offset), fileSize: size)
            }
            let start = dataStart + Int(p.offset)
            guard start <= size, bytes <= size - start else {
                throw GGUFError.tensorOutOfBounds(tensor: p.name, end: start + bytes, fileSize: size)
            }
            infos.append(GGUFTensorInfo(name: p.name, dims: p.dims, type: p.type, dataOffset: start, byteCount: bytes))
        }
        tensors = infos
        tensorIndex = index
        // Everything in the header has been copied out (metadata arrays packed): its pages, about
        // 7 MB for a 262,144-token vocabulary, need not stay resident for the life of the model.
        releasePages(UnsafeRawBufferPointer(start: base, count: dataStart))
    }

    deinit {
        if isMapped { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) } else { base.deallocate() }
    }

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// Raw bytes of a tensor; valid while this file object lives.
    public func data(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + info.dataOffset, count: info.byteCount)
    }

    /// Drops this process's resident pages of a tensor that has been copied elsewhere; the bytes
    /// stay in the page cache and come back on the next read. Only whole pages inside the tensor
    /// go, so neighbours sharing an edge page keep theirs. No effect on in-memory images.
    public func releasePages(of info: GGUFTensorInfo) {
        releasePages(data(of: info))
    }

    /// The same for any byte range of the file's data (a part of a tensor copied so far).
    public func releasePages(_ bytes: UnsafeRawBufferPointer) {
        guard isMapped, let start = bytes.baseAddress else { return }
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        let lo = UInt(bitPattern: start), hi = lo + UInt(bytes.count)
        let first = (lo + page - 1) / page * page, last = hi / page * page
        guard last > first, let p = UnsafeMutableRawPointer(bitPattern: first) else { return }
        madvise(p, Int(last - first), MADV_DONTNEED)
    }

    public func require(_ name: String) throws -> GGUFTensorInfo {
        guard let t = tensorInfo(name) else { throw GGUFError.missingTensor(name) }
        return t
    }

    // MARK: typed metadata access

    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let i = v.int else { throw GGUFError.wrongKeyType(key: key, expected: "an integer") }
        return i
    }
    public func int(_ key: String, default d: Int) throws -> Int {
        metadata[key] == nil ? d : try int(key)
    }
    public func double(_ key: String, default d: Double) throws -> Double {
        guard let v = metadata[key] else { return d }
        guard let x = v.double else { throw GGUFError.wrongKeyType(key: key, expected: "a number") }
        return x
    }
    public func string(_ key: String) throws -> String {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let s = v.string else { throw GGUFError.wrongKeyType(key: key, expected: "a string") }
        return s
    }
    public func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = metadata[key] else { return d }
        guard let b = v.bool else { throw GGUFError.wrongKeyType(key: key, expected: "a boolean") }
        return b
    }
}

/// Bounds-checked little-endian cursor over the mapped header.
struct Reader {
    let base: UnsafeRawPointer
    let size: Int
    var offset = 0

    mutating func need(_ n: Int) throws {
        guard n >= 0, n <= size - offset else { throw GGUFError.truncated(at: offset, need: n, fileSize: size) }
    }
    mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        let v = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }
    mutating func u32() throws -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws -> UInt64 { try load(UInt64.self) }

    /// A length-prefixed string's bytes, checked to be UTF-8.
    mutating func stringBytes() throws -> UnsafeRawBufferPointer {
        let n = try u64()
        guard n <= UInt64(size - offset) else { throw GGUFError.truncated(at: offset, need: Int(clamping: n), fileSize: size) }
        let buf = UnsafeRawBufferPointer(start: base + offset, count: Int(n))
        guard String(validating: buf, as: UTF8.self) != nil else { throw GGUFError.badString(at: offset) }
        offset += Int(n)
        return buf
    }

    mutating func string() throws -> String { String(decoding: try stringBytes(), as: UTF8.self) }

    mutating func value(_ type: GGUFValueType, key: String) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(UInt8.self))
        case .int8: return .int8(try load(Int8.self))
        case .uint16: return .uint16(try load(UInt16.self))
        case .int16: return .int16(try load(Int16.self))
        case .uint32: return .uint32(try load(UInt32.self))
        case .int32: return .int32(try load(Int32.self))
        case .uint64: return .uint64(try load(UInt64.self))
        case .int64: return .int64(try load(Int64.self))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self)))
        case .bool:
            let b = try load(UInt8.self)
            return .bool(b != 0)
        case .string: return .string(try string())
        case .array:
            let rawType = try u32()
            guard let et = GGUFValueType(rawValue: rawType) else { throw GGUFError.unknownValueType(rawType, key: key) }
            let count = try u64()
            guard et != .array else { throw GGUFError.unknownValueType(9, key: key + " (nested array)") }
            let minSize = UInt64(et.fixedSize ?? 8)
            guard count <= UInt64(size - offset) / minSize else { throw GGUFError.absurdCount(what: "elements in '\(key)'", value: count) }
            if let width = et.fixedSize {
                let n = Int(count) * width
                try need(n)
                let bytes = [UInt8](UnsafeRawBufferPointer(start: base + offset, count: n))
                offset += n
                return .array(GGUFArray(elementType: et, count: Int(count), bytes: bytes, ends: []))
            }
            // Strings, packed as they are read.
            var bytes: [UInt8] = [], ends: [Int] = []
            ends.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                bytes.append(contentsOf: try stringBytes())
                ends.append(bytes.count)
            }
            return .array(GGUFArray(elementType: .string, count: Int(count), bytes: bytes, ends: ends))
        }
    }
}
