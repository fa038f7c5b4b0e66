import CIntrinsics
import DamdaCore
import DamdaModelIO

/// A weight matrix as stored in the model file: `rows` outputs × `columns` inputs, each row in `type`'s layout.
public struct WeightMatrix: @unchecked Sendable {
    public let name: String
    public let type: TensorType
    public let rows: Int
    public let columns: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int
    let kernels: QuantKernels
    /// The same values laid out for decode (`DecodeRows`: int8 or nibble blocks with fp32 scales),
    /// for the sub-byte formats of a model's layers; when present, products and dequantization read
    /// it and the file's bytes are left alone.
    public private(set) var decodeRows: DecodeRows?

    /// Keeps the memory `data` points into alive when it is a copy in a `WeightArena`.
    private let storage: WeightArena?

    /// `arena`: give decode its own copy of this matrix there and hand the file's pages of it back to
    /// the page cache: the formats `DecodeRows.relays` names re-laid as `DecodeRows`, the rest copied
    /// as they are (so every byte decode streams sits in the arena's huge pages). nil keeps the
    /// file's bytes, and so does `relayout: false` for the sub-byte formats (`WeightLayout.file`).
    public init(_ file: GGUFFile, _ name: String, arena: WeightArena? = nil, relayout: Bool = true) throws {
        let info = try file.require(name)
        let arena = relayout || !DecodeRows.supports(info.type) ? arena : nil
        let relays = arena != nil && DecodeRows.relays(info.type)
        guard info.dims.count <= 2 || info.dims.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            throw GGUFError.badTensorShape(tensor: name, reason: "expected a matrix, got dims \(info.dims)")
        }
        let bytes = file.data(of: info)
        var data = UnsafeRawPointer(bytes.baseAddress!)
        var storage: WeightArena? = nil
        if let arena, !relays, file.isMapped {
            let copy = arena.allocate(byteCount: bytes.count)
            // In 4 MB slices, each slice's file pages dropped once copied, so the file's pages and
            // the copy are never resident together (178 MB for the default model's embedding).
            let slices = max(1, bytes.count / (4 << 20))
            parallelRanges(slices, threads: Threads.available) { range in
                for s in range {
                    let lo = s * bytes.count / slices, hi = (s + 1) * bytes.count / slices
                    (copy + lo).copyMemory(from: data + lo, byteCount: hi - lo)
                    file.releasePages(UnsafeRawBufferPointer(rebasing: bytes[lo..<hi]))
                }
            }
            data = UnsafeRawPointer(copy)
            storage = arena
        }
        self.init(name: name, type: info.type, rows: info.rows, columns: info.columns, data: data,
                  arena: relays ? arena : nil, storage: storage)
        if arena != nil { file.releasePages(of: info) }
    }

    /// A matrix over `data` (which must outlive it); `arena`: re-lay sub-byte formats as `DecodeRows` there.
    public init(name: String, type: TensorType, rows: Int, columns: Int, data: UnsafeRawPointer, arena: WeightArena? = nil) {
        self.init(name: name, type: type, rows: rows, columns: columns, data: data, arena: arena, storage: nil)
    }

    private init(name: String, type: TensorType, rows: Int, columns: Int, data: UnsafeRawPointer,
                 arena: WeightArena?, storage: WeightArena?) {
        self.name = name
        self.type = type
        self.rows = rows
        self.columns = columns
        self.data = data
        self.rowBytes = type.rowBytes(columns)!
        self.kernels = .of(type)
        self.storage = storage
        self.decodeRows = nil
        if let arena, DecodeRows.supports(type) { decodeRows = DecodeRows(self, arena: arena) }
    }

    @inline(__always) public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Bytes one product with a single token reads: the decode layout's where there is one.
    public var decodeBytes: Int { decodeRows?.byteCount ?? rows * rowBytes }

    public func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        if let decodeRows { decodeRows.dequantizeRow(r, into: y) } else { kernels.dequantize(row(r), y, columns) }
    }

    public func dequantizeRows(_ range: Range<Int>, into y: UnsafeMutablePointer<Float>) {
        for r in range { dequantizeRow(r, into: y + (r - range.lowerBound) * columns) }
    }
}

/// How far ahead of the row being multiplied `matvec` asks for weights. The hardware prefetcher
/// alone left the LM head at 24–26 ms on one Zen 3 core, against 13–16 ms in cache and 15 ms to
/// merely stream it; asking 16 KB ahead brought it to 18–19 ms.
let matvecPrefetchBytes = 16 * 1024

/// Asks for the weights of a range of contiguous rows `matvecPrefetchBytes` ahead of the row being
/// multiplied, so the range streams in once, a fixed distance before the arithmetic reaches it.
struct RowPrefetcher {
    private var next: UnsafeRawPointer
    private let end: UnsafeRawPointer

    /// `first`: the range's first byte; `end`: one past its last.
    @inline(__always) init(from first: UnsafeRawPointer, to end: UnsafeRawPointer) {
        next = first + matvecPrefetchBytes
        self.end = end
    }

    /// Call before multiplying the row that ends at `rowEnd`.
    @inline(__always) mutating func ahead(ofRowEnding rowEnd: UnsafeRawPointer) {
        let limit = min(rowEnd + matvecPrefetchBytes, end)
        while next < limit { damda_prefetch(next); next += 64 }
    }
}

/// y = W x for one token: each row is dequantized in registers and dotted with x in fp32.
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, threads: Int) {
    matvec([w], x, [y], threads: threads)
}

/// yᵢ = Wᵢ x for matrices that read the same x (Q, K and V; gate and up): one parallel region
/// for all of them, their rows taken as one list and split evenly over the threads. Decode runs
/// about 130 products per token, each too short to hide a thread wake-up; grouping them cuts the
/// wake-ups by a third.
public func matvec(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, _ ys: [UnsafeMutablePointer<Float>], threads: Int) {
    precondition(ws.count == ys.count && !ws.isEmpty, "one output per matrix")
    let columns = ws[0].columns
    precondition(ws.allSatisfy { $0.columns == columns }, "matrices that share x have as many columns")
    let total = ws.reduce(0) { $0 + $1.rows }
    // Small matrices are not worth waking a second thread for.
    let bytes = ws.reduce(0) { $0 + $1.rows * $1.rowBytes }
    let t = bytes < 64 * 1024 ? 1 : threads
    let needsSums = ws.contains { $0.decodeRows?.needsBlockSums ?? false }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: needsSums ? columns / 32 : 1) { sums in
        if needsSums { DecodeRows.blockSums(x, blocks: columns / 32, into: sums.baseAddress!) }
        let blockSums = needsSums ? UnsafePointer(sums.baseAddress!) : nil
        parallelRanges(total, threads: t, granule: 16) { range in
            var first = 0
            for (w, y) in zip(ws, ys) {
                let lo = max(range.lowerBound - first, 0), hi = min(range.upperBound - first, w.rows)
                if lo < hi { multiplyRows(w, lo..<hi, x, y, blockSums: blockSums) }
                first += w.rows
            }
        }
    }
}

/// y[r] = W[r] · x for r in `range`.
@inline(__always)
func multiplyRows(_ w: WeightMatrix, _ range: Range<Int>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                  blockSums: UnsafePointer<Float>?) {
    if let rows = w.decodeRows { rows.multiplyRows(range, x, y, blockSums: blockSums); return }
    // File-layout Q5_0 on AVX-512: the kernel the batched pass uses, for one vector.
    if PairedVectors.available, PairedVectors.fusedFileLayout(w) == Int32(damda_rows_q5_0) {
        damda_q5_0_rows_avx512(w.row(0).assumingMemoryBound(to: UInt8.self), w.rowBytes, Int32(w.columns / 32),
                               range.lowerBound, range.upperBound, x, y)
        return
    }
    let dot = w.kernels.dot
    let cols = w.columns
    var prefetch = RowPrefetcher(from: w.row(range.lowerBound), to: w.row(range.upperBound))
    for r in range {
        prefetch.ahead(ofRowEnding: w.row(r + 1))
        y[r] = dot(w.row(r), x, cols)
    }
}

/// Reusable fp32 scratch memory for dequantized weight tiles.
public final class Scratch: @unchecked Sendable {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int
    public init(_ n: Int = 0) { capacity = max(n, 1); pointer = .allocate(capacity: capacity) }
    deinit { pointer.deallocate() }
    func reserve(_ n: Int) -> UnsafeMutablePointer<Float> {
        if n > capacity { pointer.deallocate(); capacity = n; pointer = .allocate(capacity: n) }
        return pointer
    }
}

/// Prompts shorter than this run their products as batched matrix × vector passes (`matvecBatch`,
/// the decode kernels, weights read once for all tokens) instead of dequantizing every weight to
/// fp32 for sgemm, a fixed ~40 ms on the default model. Measured on an AMD EPYC (Zen 3), 2 threads:
/// 8 tokens prefill at 198 tokens/s batched against 176 through sgemm, 16 tokens at 213 against 263.
public let matvecBatchTokens = 12

/// `matmul` for matrices that read the same X (Q, K and V; gate and up); a few tokens go
/// through the grouped `matvecBatch`.
public func matmul(_ ws: [WeightMatrix], _ x: UnsafePointer<Float>, tokens: Int, _ ys: [UnsafeMutablePointer<Float>],
                   threads: Int, scratch: Scratch) {
    if tokens < matvecBatchTokens {
        matvecBatch(ws, x, count: tokens, ys, threads: threads)
        return
    }
    for (w, y) in zip(ws, ys) { matmul(w, x, tokens: tokens, y, threads: threads, scratch: scratch) }
}

/// Y[tokens × rows] = X[tokens × columns] · Wᵀ. One token uses `matvec`; more dequantize W to fp32
/// once (weights reused across all tokens) and multiply with `BLAS.gemm`, all in fp32.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ y: UnsafeMutablePointer<Float>,
                   threads: Int, scratch: Scratch) {
    if tokens < matvecBatchTokens {
        matvecBatch([w], x, count: tokens, [y], threads: threads)
        return
    }
    if w.type == .f32 {
        BLAS.gemm(false, true, tokens, w.rows, w.columns, 1, x, w.columns, w.data.assumingMemoryBound(to: Float.self), w.columns,
                  0, y, w.rows, threads: threads)
        return
    }
    // Rows in slices of at most `matmulScratchFloats` weights, each dequantized and multiplied
    // in turn into its columns of Y, so the fp32 copy held at the peak of a prefill is half the
    // feed-forward matrix's. Y is as one product's to rounding, as the threads' split of the
    // columns already is (bit for bit with Damda's AVX-512 kernel and with OpenBLAS's AVX-512
    // kernels; its Haswell kernels differ in the last bit for 3% of a 512 × 2048 × 640 product
    // split in two).
    let slices = (w.rows * w.columns + matmulScratchFloats - 1) / matmulScratchFloats
    let sliceRows = (w.rows + slices - 1) / slices
    let buf = scratch.reserve(sliceRows * w.columns)
    for first in stride(from: 0, to: w.rows, by: sliceRows) {
        let rows = min(sliceRows, w.rows - first)
        parallelRanges(rows, threads: threads, granule: 32) { range in
            w.dequantizeRows((first + range.lowerBound)..<(first + range.upperBound), into: buf + range.lowerBound * w.columns)
        }
        BLAS.gemm(false, true, tokens, rows, w.columns, 1, x, w.columns, buf, w.columns, 0, y + first, w.rows, threads: threads)
    }
}

/// The most weights `matmul` dequantizes to fp32 at once (4 MiB): Gemma 3 270M's 2048 × 640
/// feed-forward matrices go in two slices, 2.5 MiB less at the peak of a 512-token prefill.
let matmulScratchFloats = 1 << 20
