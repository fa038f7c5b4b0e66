import CPrefetch
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

    public init(_ file: GGUFFile, _ name: String) throws {
        let info = try file.require(name)
        guard info.dims.count <= 2 || info.dims.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            throw GGUFError.badTensorShape(tensor: name, reason: "expected a matrix, got dims \(info.dims)")
        }
        self.init(name: name, type: info.type, rows: info.rows, columns: info.columns, data: file.data(of: info).baseAddress!)
    }

    public init(name: String, type: TensorType, rows: Int, columns: Int, data: UnsafeRawPointer) {
        self.name = name
        self.type = type
        self.rows = rows
        self.columns = columns
        self.data = data
        self.rowBytes = type.rowBytes(columns)!
        self.kernels = .of(type)
    }

    @inline(__always) public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    public func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        kernels.dequantize(row(r), y, columns)
    }

    public func dequantizeRows(_ range: Range<Int>, into y: UnsafeMutablePointer<Float>) {
        for r in range { kernels.dequantize(row(r), y + (r - range.lowerBound) * columns, columns) }
    }
}

/// How far ahead of the row being multiplied `matvec` asks for weights. The hardware prefetcher
/// alone left the LM head at 24–26 ms on one Zen 3 core, against 13–16 ms in cache and 15 ms to
/// merely stream it; asking 16 KB ahead brought it to 18–19 ms.
let matvecPrefetchBytes = 16 * 1024

/// y = W x for one token: each row is dequantized in registers and dotted with x in fp32.
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, threads: Int) {
    let dot = w.kernels.dot
    let cols = w.columns, rowBytes = w.rowBytes
    // Small matrices are not worth waking a second thread for.
    let t = w.rows * rowBytes < 64 * 1024 ? 1 : threads
    parallelRanges(w.rows, threads: t, granule: 16) { range in
        // Rows are contiguous: prefetching each row's span, shifted ahead, streams the whole range
        // once, a fixed distance before the arithmetic reaches it.
        let end = w.row(range.upperBound)
        var next = w.row(range.lowerBound) + matvecPrefetchBytes
        for r in range {
            let limit = min(w.row(r + 1) + matvecPrefetchBytes, end)
            while next < limit { damda_prefetch(next); next += 64 }
            y[r] = dot(w.row(r), x, cols)
        }
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

/// Y[tokens × rows] = X[tokens × columns] · Wᵀ. One token uses `matvec`; more dequantize W to fp32
/// once (weights reused across all tokens) and multiply with OpenBLAS sgemm, all in fp32.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ y: UnsafeMutablePointer<Float>,
                   threads: Int, scratch: Scratch) {
    if tokens < 4 {
        for t in 0..<tokens { matvec(w, x + t * w.columns, y + t * w.rows, threads: threads) }
        return
    }
    let wf: UnsafePointer<Float>
    if w.type == .f32 {
        wf = w.data.assumingMemoryBound(to: Float.self)
    } else {
        let buf = scratch.reserve(w.rows * w.columns)
        parallelRanges(w.rows, threads: threads, granule: 32) { range in
            w.dequantizeRows(range, into: buf + range.lowerBound * w.columns)
        }
        wf = UnsafePointer(buf)
    }
    BLAS.gemm(false, true, tokens, w.rows, w.columns, 1, x, w.columns, wf, w.columns, 0, y, w.rows, threads: threads)
}
