import Foundation

/// Streaming read rate, the ceiling of decode (every weight is read once per token). Lives here,
/// compiled with the kernels' AVX2 flags, so the loop reads like the kernels do.
public enum MemoryBandwidth {
    /// GB/s of each of `passes` reads of `count` bytes at `buffer`, split over `threads`.
    public static func readRates(_ buffer: UnsafeRawPointer, count: Int, threads: Int, passes: Int) -> [Double] {
        let vectors = count / 128
        let clock = ContinuousClock()
        return (0..<max(passes, 1)).map { _ in
            let t0 = clock.now
            parallelRanges(vectors, threads: threads) { range in
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
            return Double(vectors * 128) / (clock.now - t0).seconds / 1e9
        }
    }
}
