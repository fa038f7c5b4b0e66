import DamdaModelIO
import Foundation
import XCTest

/// The default model, or a skip when it was not fetched (CI fetches it first, and fails instead).
public func defaultModelPath() throws -> String {
    if let p = try? ModelCache.resolveModel(nil), FileManager.default.fileExists(atPath: p) { return p }
    if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("CI must fetch the default model first (damda model fetch)") }
    throw XCTSkip("default model not fetched: run `damda model fetch`")
}

/// The repository's root (for samples/ and ../shared/).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh temporary directory, removed by the caller.
public func temporaryDirectory(_ label: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
