import DamdaModelIO
import XCTest

final class GGUFTests: XCTestCase {
    func sampleWriter() -> GGUFWriter {
        var w = GGUFWriter()
        w.set("general.architecture", .string("gemma3"))
        w.set("general.name", .string("테스트 모델"))
        w.set("test.u8", .uint8(7)); w.set("test.i8", .int8(-7)); w.set("test.u16", .uint16(65000)); w.set("test.i16", .int16(-300))
        w.set("test.u32", .uint32(4_000_000_000)); w.set("test.i32", .int32(-5)); w.set("test.u64", .uint64(1 << 40))
        w.set("test.i64", .int64(-(1 << 40))); w.set("test.f32", .float32(0.5)); w.set("test.f64", .float64(-2.25))
        w.set("test.bool", .bool(true))
        w.set("test.strings", .array(.string, [.string("a"), .string("한글"), .string("")]))
        w.set("test.floats", .array(.float32, [.float32(1), .float32(-1)]))
        w.set("test.ints", .array(.int32, [.int32(-3), .int32(1 << 30)]))
        w.set("test.bools", .array(.bool, [.bool(true), .bool(false)]))
        w.set("test.u64s", .array(.uint64, [.uint64(1 << 40)]))
        w.addTensor("a.weight", dims: [4, 2], floats: [1, 2, 3, 4, 5, 6, 7, 8])
        w.addTensor("b.weight", dims: [32], type: .q8_0, bytes: [0x00, 0x3C] + (0..<32).map { UInt8($0) })
        return w
    }

    func testRoundTripEveryValueType() throws {
        let w = sampleWriter()
        let f = try GGUFFile(bytes: w.encoded())
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
        XCTAssertEqual(f.metadata["general.name"], .string("테스트 모델"))
        XCTAssertEqual(f.metadata["test.u16"], .uint16(65000))
        XCTAssertEqual(f.metadata["test.i64"], .int64(-(1 << 40)))
        XCTAssertEqual(f.metadata["test.f64"], .float64(-2.25))
        XCTAssertEqual(f.metadata["test.bool"], .bool(true))
        XCTAssertEqual(f.metadata["test.strings"]?.array?.compactMap(\.string), ["a", "한글", ""])
        // Arrays stay packed; elements come back as the values written.
        let strings = try XCTUnwrap(f.metadata["test.strings"]?.array)
        XCTAssertEqual(Array(strings.utf8(at: 1)), Array("한글".utf8))
        XCTAssertEqual(f.metadata["test.floats"], .array(.float32, [.float32(1), .float32(-1)]))
        XCTAssertEqual(f.metadata["test.ints"]?.array?.map(\.int), [-3, 1 << 30])
        XCTAssertEqual(f.metadata["test.bools"]?.array?.map(\.bool), [true, false])
        XCTAssertEqual(f.metadata["test.u64s"]?.array?.first, .uint64(1 << 40))
        // Written again from what was read, the file is the same bytes.
        var again = GGUFWriter()
        for key in f.metadataKeys { again.set(key, f.metadata[key]!) }
        var first = GGUFWriter()
        for (key, value) in w.metadata { first.set(key, value) }
        XCTAssertEqual(again.encoded(), first.encoded())
        XCTAssertEqual(try f.int("test.u32"), 4_000_000_000)
        let a = try f.require("a.weight")
        XCTAssertEqual(a.dims, [4, 2]); XCTAssertEqual(a.rows, 2); XCTAssertEqual(a.columns, 4)
        XCTAssertEqual(a.dataOffset % 32, 0)
        let floats = Array(f.data(of: a).bindMemory(to: Float.self))
        XCTAssertEqual(floats, [1, 2, 3, 4, 5, 6, 7, 8])
        let b = try f.require("b.weight")
        XCTAssertEqual(b.type, .q8_0); XCTAssertEqual(b.byteCount, 34)
        XCTAssertEqual(Array(f.data(of: b)).suffix(3), [29, 30, 31])
    }

    func testWriteToDiskAndMap() throws {
        let path = NSTemporaryDirectory() + "damda-gguf-\(UUID()).gguf"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try sampleWriter().write(to: path)
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.tensors.count, 2)
        XCTAssertEqual(f.fileSize, sampleWriter().encoded().count)
    }

    func expectError(_ bytes: [UInt8], _ check: (GGUFError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try GGUFFile(bytes: bytes)
            XCTFail("parsed a corrupt file", file: file, line: line)
        } catch let e as GGUFError {
            XCTAssertTrue(check(e), "unexpected error: \(e.message)", file: file, line: line)
            XCTAssertFalse(e.message.isEmpty)
        } catch {
            XCTFail("untyped error \(error)", file: file, line: line)
        }
    }

    func testWrongMagic() {
        var b = sampleWriter().encoded()
        b[0] = UInt8(ascii: "X")
        expectError(b) { if case .badMagic = $0 { true } else { false } }
    }

    func testUnsupportedVersion() {
        var b = sampleWriter().encoded()
        b[4] = 1
        expectError(b) { if case .unsupportedVersion(1) = $0 { true } else { false } }
    }

    func testTruncatedEverywhere() throws {
        let full = sampleWriter().encoded()
        // Every prefix that cuts the header or a tensor's data must fail cleanly (trailing
        // alignment padding after the last tensor is optional).
        let dataEnd = try GGUFFile(bytes: full).tensors.map { $0.dataOffset + $0.byteCount }.max()!
        for n in 0..<dataEnd {
            XCTAssertThrowsError(try GGUFFile(bytes: Array(full.prefix(n))), "prefix \(n)")
        }
    }

    func testAbsurdCounts() {
        var b = sampleWriter().encoded()
        for i in 8..<16 { b[i] = 0xFF }  // tensor count
        expectError(b) { if case .absurdCount = $0 { true } else { false } }
        b = sampleWriter().encoded()
        for i in 16..<24 { b[i] = 0x7F }  // kv count
        expectError(b) { if case .absurdCount = $0 { true } else { false } }
    }

    func testUnknownTensorType() {
        var w = GGUFWriter()
        w.addTensor("x", dims: [4], floats: [1, 2, 3, 4])
        var b = w.encoded()
        // The type field sits right before the 8-byte offset at the end of the only tensor info.
        let infoEnd = 24 + 8 + 1 + 4 + 8 + 4 + 8
        b[infoEnd - 12] = 99
        expectError(b) { if case .unknownTensorType(99, _) = $0 { true } else { false } }
    }

    func testTensorPastEndOfFile() {
        var w = GGUFWriter()
        w.addTensor("x", dims: [4], floats: [1, 2, 3, 4])
        var b = w.encoded()
        let infoEnd = 24 + 8 + 1 + 4 + 8 + 4 + 8
        b[infoEnd - 8] = 0; b[infoEnd - 7] = 0x10  // offset 4096
        expectError(b) { if case .tensorOutOfBounds = $0 { true } else { false } }
    }

    /// Every byte of the header set to several values: the parser throws or succeeds, never traps.
    func testByteMutationsNeverCrash() throws {
        let full = sampleWriter().encoded()
        let headerEnd = full.count - 64
        var parsed = 0, rejected = 0
        for i in 0..<headerEnd {
            for v: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0xFF, full[i] ^ 0x20] where v != full[i] {
                var b = full
                b[i] = v
                do { _ = try GGUFFile(bytes: b); parsed += 1 } catch is GGUFError { rejected += 1 }
            }
        }
        XCTAssertGreaterThan(rejected, 100)
        XCTAssertGreaterThan(parsed, 0)  // e.g. a changed metadata value is still a valid file
    }

    func testMutatedRealModelHeaderNeverCrashes() throws {
        let path = FileManager.default.homeDirectoryForCurrentUser.path + "/.cache/damda/models/gemma-3-270m-q4_k_m.gguf"
        guard let h = FileHandle(forReadingAtPath: path) else { throw XCTSkip("default model not fetched") }
        // The first KB holds the header start: magic, counts and the first metadata entries.
        let head = Array(h.readData(ofLength: 1024))
        try h.close()
        var rng = SystemRandomNumberGenerator()
        for i in 0..<head.count {
            var b = head
            b[i] = UInt8.random(in: 0...255, using: &rng)
            XCTAssertThrowsError(try GGUFFile(bytes: b))  // truncated at 1 KB, so it must throw
        }
    }
}
