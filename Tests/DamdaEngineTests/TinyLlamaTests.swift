import DamdaTestSupport
import DamdaEngine
import Foundation
import XCTest

/// Tiny random Llama and Qwen 2 models against the independent NumPy oracle `tools/llama_ref.py`.
final class TinyLlamaTests: XCTestCase {
    func check(_ arch: String) throws {
        let path = NSTemporaryDirectory() + "damda-tiny-\(arch)-\(getpid()).gguf"
        let npy = NSTemporaryDirectory() + "damda-tiny-\(arch)-\(getpid()).npy"
        defer { try? FileManager.default.removeItem(atPath: path); try? FileManager.default.removeItem(atPath: npy) }
        try TinyModels.writeLlama(to: path, architecture: arch)
        let model = try loadModel(path: path, threads: 2)
        let ids: [Int32] = [2, 300, 301, 280, 290, 266, 270, 271, 300, 299, 285]
        let tool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/llama_ref.py").path
        _ = try TinyModels.python([tool, "--model", path, "--ids", ids.map(String.init).joined(separator: ","),
                                   "--logits-out", npy, "--all-logits"])
        let ref = try TinyModels.readNPY(URL(fileURLWithPath: npy))
        let ours = try model.forward(ids, cache: model.makeCache(capacity: 32), logits: .all)
        XCTAssertEqual(ours.count, ref.count)
        var maxDiff: Float = 0, maxMag: Float = 0
        for i in ours.indices { maxDiff = max(maxDiff, abs(ours[i] - ref[i])); maxMag = max(maxMag, abs(ref[i])) }
        XCTAssertLessThan(maxDiff, 1e-4 * max(maxMag, 1), "\(arch): max |Δ| \(maxDiff) over logits up to \(maxMag)")
        // Incremental decode agrees with the batched pass.
        let cache = model.makeCache(capacity: 32)
        var inc = try model.forward(Array(ids.prefix(4)), cache: cache, logits: .all)
        for t in ids.dropFirst(4) { inc += try model.forward([t], cache: cache, logits: .all) }
        for i in stride(from: 0, to: ours.count, by: 97) { XCTAssertEqual(inc[i], ours[i], accuracy: 1e-3) }
    }

    func testLlamaMatchesReference() throws { try check("llama") }
    func testQwen2MatchesReference() throws { try check("qwen2") }
}
