import Foundation
import CIntrinsics
import COpenBLAS
import DamdaCore

/// Row-major fp32 matrix products, parallelized by Damda's own threads: Damda's AVX-512 kernel
/// (`damda_sgemm_avx512`) where the processor runs it, OpenBLAS otherwise.
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

    /// Whether products run on Damda's AVX-512 kernel. OpenBLAS picks its kernels
    /// per process (OPENBLAS_CORETYPE, or its CPU table, which an older library may not know): with
    /// its AVX2 kernels on an AVX-512 machine, a 512-token prefill ran at 0.90× llama.cpp's, with its
    /// AVX-512 ones 1.4–1.6×. The own kernel makes that rate independent of OpenBLAS's choice.
    /// `DAMDA_AVX512_GEMM=0` (or `DAMDA_AVX512=0`, every AVX-512 kernel) keeps OpenBLAS, for comparing.
    public static let ownAVX512: Bool = {
        let environment = ProcessInfo.processInfo.environment
        return environment["DAMDA_AVX512_GEMM"] != "0" && environment["DAMDA_AVX512"] != "0" && damda_has_avx512() != 0
    }()

    /// The kernels products run on, for benchmarks' records: "damda-avx512", or `openBLASKernels`.
    public static var kernels: String { ownAVX512 ? "damda-avx512" : openBLASKernels }

    /// The kernel set OpenBLAS runs, after that choice ("SkylakeX", "Haswell", ...), whether or not
    /// products go through it.
    public static var openBLASKernels: String {
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
        // The own kernel's tiles are 32 columns wide: shares in whole tiles waste no lanes.
        let granule = ownAVX512 ? 32 : 16
        if n >= m {
            parallelRanges(n, threads: threads, granule: granule) { cols in
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
        guard m > 0, n > 0 else { return }
        if ownAVX512 {
            damda_sgemm_avx512(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        prepare()
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
