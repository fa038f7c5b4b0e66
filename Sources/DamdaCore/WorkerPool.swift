import CIntrinsics
import Foundation
import Synchronization

/// Helper threads that wait for work by spinning, then sleep.
///
/// Why: decoding one token on two cores runs about 75 parallel regions of 20–80 µs each. A
/// libdispatch worker took 15–20 µs to wake for each: `concurrentPerform` of two 20 µs halves
/// took 39–49 µs, no faster than one thread doing both. A helper spinning on a counter starts
/// within a microsecond (21 µs for the same pair). After about 0.2 ms without work a helper
/// sleeps on a condition variable, so an idle process does not hold the cores.
public final class WorkerPool: @unchecked Sendable {
    public static let shared = WorkerPool(helpers: max(0, min(Threads.available - 1, 15)))

    private let helpers: Int
    /// Region number << 16 | its width, published in one store: a helper that reads a region's
    /// number reads that region's width with it. (Kept apart, a helper sitting out a narrow region,
    /// possible with three or more cores, could pair its number with the next region's width and
    /// body, run that region's work twice, the second time after its caller had returned.)
    private let ticket = Atomic<Int>(0)
    private var regions = 0
    private let finished = Atomic<Int>(0)
    /// Held by the caller of `run` for its duration; a second caller (another thread, or a
    /// region started inside a region) gets `false` and goes to libdispatch instead.
    private let busy = Atomic<Bool>(false)
    private let sleepers = NSCondition()
    private var sleeping = 0
    private var started = false
    /// The running region's body, read by the helpers the region's width includes, which the
    /// caller waits for before it clears it.
    private var body: UnsafeRawPointer?

    init(helpers: Int) { self.helpers = helpers }

    /// Runs `body(0..<n)` with `body(0)` on this thread; false (nothing run) if the pool is in use
    /// or has too few helpers.
    func run(_ n: Int, _ work: (Int) -> Void) -> Bool {
        guard n - 1 <= helpers, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return false
        }
        defer { busy.store(false, ordering: .releasing) }
        if n <= 1 {
            if n == 1 { work(0) }
            return true
        }
        if !started { start() }
        withoutActuallyEscaping(work) { work in
            var box = work
            withUnsafePointer(to: &box) { pointer in
                body = UnsafeRawPointer(pointer)
                finished.store(0, ordering: .relaxed)
                regions += 1
                ticket.store(regions << 16 | n, ordering: .releasing)
                sleepers.lock()
                if sleeping > 0 { sleepers.broadcast() }
                sleepers.unlock()
                work(0)
                while finished.load(ordering: .acquiring) < n - 1 { pause() }
                body = nil
            }
        }
        return true
    }

    private func start() {
        started = true
        // Read before the first region's bump: a helper that starts late must still see it.
        let initial = ticket.load(ordering: .acquiring)
        for index in stride(from: 1, through: helpers, by: 1) {
            let thread = Thread { [unowned self] in self.loop(index, seen: initial) }
            thread.name = "damda-worker-\(index)"
            thread.start()
        }
    }

    private func loop(_ index: Int, seen initial: Int) {
        var seen = initial
        while true {
            var spins = 0
            var current = ticket.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins < 10_000 {  // about 0.2 ms of PAUSE on Zen 3
                    pause()
                } else {
                    sleepers.lock()
                    sleeping += 1
                    while ticket.load(ordering: .acquiring) == seen { sleepers.wait() }
                    sleeping -= 1
                    sleepers.unlock()
                    spins = 0
                }
                current = ticket.load(ordering: .acquiring)
            }
            seen = current
            // Helpers beyond this region's width sit it out (and must not touch `body`).
            guard index < current & 0xFFFF else { continue }
            // Call through the pointer inside its own scope, so this thread's copy of the
            // closure is released before the caller is told the region is done.
            do {
                let work = body!.assumingMemoryBound(to: ((Int) -> Void).self).pointee
                work(index)
            }
            finished.add(1, ordering: .releasing)
        }
    }

    @inline(__always) private func pause() { damda_pause() }
}
