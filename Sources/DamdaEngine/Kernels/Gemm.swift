import CIntrinsics
import COpenBLAS
import DamdaCore

/// Row-major fp32 matrix products through OpenBLAS, parallelized by Damda's own threads.
///
/// OpenBLAS is kept single-threaded: its pool would otherwise spin (`sched_yield`) against our
/// workers between calls, and products issued from inside our parallel loops (attention heads)
/// would queue for it. Measured on e5 ingest: ~45% of the time went to that contention.
public enum BLAS {
    /// Once, before the first product: OpenBLAS's kernels matched to the CPU
    /// (`damda_openblas_match_cpu`: an OpenBLAS older than the CPU falls back to SSE3 kernels), and
    /// its own pool kept to one thread.
    private static let configured: Void = {
        _ = damda_openblas_match_cpu()
        openblas_set_num_threads(1)
    }()

    /// Makes that choice now (model loading calls it, before a server runs threads: the match sets
    /// OPENBLAS_CORETYPE for a moment).
    public static func prepare() { _ = configured }

    /// The kernel set OpenBLAS runs, after that choice ("SkylakeX", "Haswell", ...), for benchmarks' records.
    public static var kernels: String {
        prepare()
        return String(cString: openblas_get_corename())
    }

    /// Products below this many multiply-adds are not worth waking a second thread for.
    static let parallelThreshold = 1 << 20

    /// C = alpha · op(A) · op(B) + beta · C with C [m × n] and op(A) [m × k], split across `threads`
    /// along the larger of m and n so each thread packs its own share of the bigger operand.
    public static func gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                            _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                            _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, threads: Int) {
        guard m > 0, n > 0 else { return }
        if threads <= 1 || m * n * k < parallelThreshold {
            serial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if n >= m {
            parallelRanges(n, threads: threads, granule: 16) { cols in
                let bp = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                serial(transA, transB, m, cols.count, k, alpha, a, lda, bp, ldb, beta, c + cols.lowerBound, ldc)
            }
        } else {
            parallelRanges(m, threads: threads, granule: 16) { rows in
                let ap = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                serial(transA, transB, rows.count, n, k, alpha, ap, lda, b, ldb, beta, c + rows.lowerBound * ldc, ldc)
            }
        }
    }

    /// One thread's product (for callers already inside a parallel loop).
    @inline(__always)
    public static func serial(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                              _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                              _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        prepare()
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
