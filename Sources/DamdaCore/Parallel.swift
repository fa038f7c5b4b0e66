import Foundation
import Dispatch

/// Runs `body(0) … body(n − 1)` concurrently, `body(0)` on the calling thread; returns when all
/// have finished. Goes through `WorkerPool` when it is free, else libdispatch.
public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    if n <= 1 { if n == 1 { body(0) }; return }
    if WorkerPool.shared.run(n, body) { return }
    withoutActuallyEscaping(body) { body in DispatchQueue.concurrentPerform(iterations: n, execute: body) }
}

/// Splits `0..<count` into `threads` contiguous ranges and runs them concurrently.
/// Contiguous ranges keep each thread streaming its own part of a weight matrix.
@inlinable
public func parallelRanges(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    let n = max(1, min(threads, count))
    if n == 1 { body(0..<count); return }
    parallelFor(n) { t in
        let lo = count * t / n, hi = count * (t + 1) / n
        if lo < hi { body(lo..<hi) }
    }
}

/// Like `parallelRanges` but ranges are rounded to multiples of `granule` (e.g. rows handled in groups).
@inlinable
public func parallelRanges(_ count: Int, threads: Int, granule: Int, _ body: (Range<Int>) -> Void) {
    let groups = (count + granule - 1) / granule
    parallelRanges(groups, threads: threads) { g in
        body((g.lowerBound * granule)..<min(g.upperBound * granule, count))
    }
}

/// `[f(0), f(1), …, f(count − 1)]`, computed in `threads` contiguous ranges.
@inlinable
public func parallelMap<T>(_ count: Int, threads: Int, _ f: (Int) -> T) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        let base = buffer.baseAddress
        parallelRanges(count, threads: threads) { range in
            for i in range { (base! + i).initialize(to: f(i)) }
        }
        initialized = count
    }
}

/// Peak resident set size of this process in bytes (VmHWM), or 0 where unavailable.
public func peakResidentBytes() -> Int64 {
    #if os(Linux)
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int64($0) }.first ?? 0
        return kb * 1024
    }
    #endif
    return 0
}
