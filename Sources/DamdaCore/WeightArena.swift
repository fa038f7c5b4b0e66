import Foundation

/// Memory for the weights decode streams once per token, handed out from a few large anonymous
/// regions the kernel may back with 2 MB pages (`MADV_HUGEPAGE`).
///
/// Why: on one Zen 3 core a streaming read of 178 MB ran at 11–12 GB/s from 4 KB pages (file
/// mapping or heap) and 15 GB/s from 2 MB pages; the hardware prefetchers stop at every 4 KB page
/// boundary, and decode is mostly such reads. A layer's matrices are 0.1–1.5 MB each, smaller than
/// one huge page, so they share chunks instead of each getting its own mapping.
///
/// Memory lives as long as the arena: everything allocated from it is released together, when
/// the last object holding the arena goes.
public final class WeightArena: @unchecked Sendable {
    public static let hugePageBytes = 2 << 20
    /// Bytes per chunk beyond oversized requests: small enough that the unused tail of the last
    /// chunk costs little (untouched pages are never faulted in), large enough for few mappings.
    public static let chunkBytes = 32 << 20

    /// Whether arenas ask for huge pages: yes unless `DAMDA_HUGEPAGES=0` (for comparing the two).
    public static let hugePagesEnabled = ProcessInfo.processInfo.environment["DAMDA_HUGEPAGES"] != "0"

    private let lock = NSLock()
    private var chunks: [(base: UnsafeMutableRawPointer, length: Int)] = []
    private var cursor = 0, end = 0
    private let hugePages: Bool

    public init(hugePages: Bool = WeightArena.hugePagesEnabled) {
        self.hugePages = hugePages
    }

    deinit {
        for c in chunks { munmap(c.base, c.length) }
    }

    /// Bytes mapped so far.
    public var reservedBytes: Int { lock.withLock { chunks.reduce(0) { $0 + $1.length } } }

    /// Zero-filled memory aligned to `alignment` (a power of two up to 2 MB), valid while the arena lives.
    public func allocate(byteCount: Int, alignment: Int = 64) -> UnsafeMutableRawPointer {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0 && alignment <= Self.hugePageBytes)
        let bytes = max(byteCount, 1)
        return lock.withLock {
            var start = (cursor + alignment - 1) & ~(alignment - 1)
            if chunks.isEmpty || start + bytes > end {
                let chunk = mapChunk(minimum: bytes)
                chunks.append(chunk)
                start = Int(bitPattern: chunk.base)
                end = start + chunk.length
            }
            cursor = start + bytes
            return UnsafeMutableRawPointer(bitPattern: start)!
        }
    }

    /// Maps a 2 MB-aligned chunk: over-map by one huge page, then unmap the unaligned ends.
    private func mapChunk(minimum: Int) -> (base: UnsafeMutableRawPointer, length: Int) {
        let huge = Self.hugePageBytes
        let length = (max(minimum, Self.chunkBytes) + huge - 1) / huge * huge
        guard let raw = mmap(nil, length + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else {
            fatalError("WeightArena: cannot map \(length) bytes: \(String(cString: strerror(errno)))")
        }
        let address = UInt(bitPattern: raw)
        let aligned = (address + UInt(huge) - 1) / UInt(huge) * UInt(huge)
        let head = Int(aligned - address), tail = huge - head
        if head > 0 { munmap(raw, head) }
        let base = UnsafeMutableRawPointer(bitPattern: aligned)!
        if tail > 0 { munmap(base + length, tail) }
        if hugePages { madvise(base, length, MADV_HUGEPAGE) }
        return (base, length)
    }
}
