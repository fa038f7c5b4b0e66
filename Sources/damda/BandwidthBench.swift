import ArgumentParser
import DamdaCore
import Foundation

/// Memory read bandwidth, the ceiling of decode: every weight is read once per token, so
/// bytes per token ÷ this rate bounds tokens per second.
struct BandwidthBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bandwidth", abstract: "Streaming read bandwidth of N threads over a buffer larger than the caches (JSON).")
    @Option(help: "Reading threads.") var threads = Threads.available
    @Option(help: "Buffer size in MB.") var megabytes = 256
    @Option(help: "Passes; the median is reported.") var repetitions = 7
    @Option(help: "Bytes a decode step reads, for the bound it prints (default: Gemma 3 270M Q4_K_M's 246 MB).")
    var bytesPerToken = 246_000_000
    @Flag(help: "Print JSON (the only output format).") var json = false

    func run() async throws {
        let count = max(megabytes, 1) << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 1, count: count)
        let vectors = count / 32
        var rates: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<max(repetitions, 1) {
            let t0 = clock.now
            parallelRanges(vectors / 4, threads: threads) { range in
                // Four independent sums so the loop is bound by loads, not by add latency.
                var a = SIMD8<Int32>(), b = a, c = a, d = a
                for i in range {
                    let p = buffer + i * 128
                    a &+= p.loadUnaligned(as: SIMD8<Int32>.self)
                    b &+= p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Int32>.self)
                    c &+= p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Int32>.self)
                    d &+= p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Int32>.self)
                }
                if (a &+ b &+ c &+ d).wrappedSum() == 42 { print("") }  // keeps the loads
            }
            rates.append(Double(count) / (clock.now - t0).seconds / 1e9)
        }
        let median = rates.sorted()[rates.count / 2]
        printJSON([
            "threads": threads, "buffer_bytes": count,
            "read_gb_per_s": (median * 10).rounded() / 10,
            "runs_gb_per_s": rates.map { ($0 * 10).rounded() / 10 },
            "bytes_per_token": bytesPerToken,
            "decode_bound_tokens_per_s": (median * 1e9 / Double(bytesPerToken) * 10).rounded() / 10,
        ])
    }
}
