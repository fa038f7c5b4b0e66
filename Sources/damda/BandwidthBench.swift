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
    @Option(help: "Bytes a decode step reads, for the bound it prints (default: Gemma 3 270M Q4_K_M in Damda's decode layout).")
    var bytesPerToken = 283_596_800
    @Flag(help: "Print JSON (the only output format).") var json = false

    func run() async throws {
        let count = max(megabytes, 1) << 20
        // Decode's weights sit in 2 MB pages (WeightArena); 4 KB pages are measured beside them,
        // pass for pass in turn, so drift in the machine's speed hits both alike.
        let hugeArena = WeightArena(hugePages: true), smallArena = WeightArena(hugePages: false)
        let hugeBuffer = filledBuffer(count: count, arena: hugeArena), smallBuffer = filledBuffer(count: count, arena: smallArena)
        var huge: [Double] = [], small: [Double] = []
        for _ in 0..<max(repetitions, 1) {
            huge += MemoryBandwidth.readRates(hugeBuffer, count: count, threads: threads, passes: 1)
            small += MemoryBandwidth.readRates(smallBuffer, count: count, threads: threads, passes: 1)
        }
        func median(_ r: [Double]) -> Double { r.sorted()[r.count / 2] }
        func rounded(_ x: Double) -> Double { (x * 10).rounded() / 10 }
        printJSON([
            "threads": threads, "buffer_bytes": count,
            "read_gb_per_s": rounded(median(huge)),
            "runs_gb_per_s": huge.map(rounded),
            "read_gb_per_s_4k_pages": rounded(median(small)),
            "runs_gb_per_s_4k_pages": small.map(rounded),
            "bytes_per_token": bytesPerToken,
            "decode_bound_tokens_per_s": rounded(median(huge) * 1e9 / Double(bytesPerToken)),
        ])
    }

    private func filledBuffer(count: Int, arena: WeightArena) -> UnsafeRawPointer {
        let buffer = arena.allocate(byteCount: count, alignment: WeightArena.hugePageBytes)
        buffer.initializeMemory(as: UInt8.self, repeating: 1, count: count)
        return UnsafeRawPointer(buffer)
    }
}
