// fp32 matrix product with AVX-512, for prefill's and training's products (see SgemmAVX512.h).
//
// Why not OpenBLAS alone: its kernels are chosen per process from OPENBLAS_CORETYPE or its own
// CPU table, and a machine that pins the AVX2 ones (or an OpenBLAS older than the CPU) runs
// prefill at half the AVX-512 rate. This is the BLIS / GotoBLAS loop nest: B packed in blocks
// of 256 × 1024 (kept in L2 and L3), A in blocks of 196 × 256, and a 14 × 32 register tile (28 of
// the 32 vector registers accumulate; each step does 28 FMAs for two loads and 14 broadcasts).
#include "SgemmAVX512.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>

// Only the explicit FMAs fuse: alpha and beta are applied with separate multiplies and adds.
#pragma STDC FP_CONTRACT OFF

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,evex512,fma")))

enum { MR = 14, NR = 32, KC = 256, MC = 14 * MR, NC = 32 * NR };

// How a tile's accumulators start and how they leave.
enum { start_zero, start_c, start_beta_c };
enum { finish_store, finish_alpha, finish_alpha_beta, finish_alpha_add };

// A thread's packing buffers, freed when the thread exits (libdispatch's workers come and go).
typedef struct { float *a, *b; } buffers;
static pthread_key_t buffers_key;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;

static void free_buffers(void *p) {
    buffers *t = p;
    free(t->a);
    free(t->b);
    free(t);
}

static void make_buffers_key(void) { pthread_key_create(&buffers_key, free_buffers); }

static buffers *thread_buffers(void) {
    pthread_once(&buffers_once, make_buffers_key);
    buffers *t = pthread_getspecific(buffers_key);
    if (t) return t;
    t = malloc(sizeof *t);
    if (!t) return 0;
    t->a = aligned_alloc(64, sizeof(float) * MC * KC);
    t->b = aligned_alloc(64, sizeof(float) * KC * NC);
    if (!t->a || !t->b || pthread_setspecific(buffers_key, t) != 0) {
        free_buffers(t);
        return 0;
    }
    return t;
}

// dst[c · dst_stride + r] = src[r · ld + c] for c < cols (≤ 16) and the first lanes of `store`,
// rows past `rows` (≤ 16) read as zero: a 16 × 16 transpose in registers (pairs of rows
// interleaved, then quadruples, then 128-bit lanes), since strided scalar copies took a quarter
// of the product's time.
AVX512 static inline void transpose16(const float *src, long ld, int rows, int cols, float *dst, long dst_stride,
                                      __mmask16 store) {
    __mmask16 load = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(load, src + i * ld) : _mm512_setzero_ps();
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4i + j]'s 128-bit lane L: rows 4i..4i+3 of column 4L + j.
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[j + 4] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        t[j + 8] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[j + 12] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    }
    for (int j = 0; j < 4; j++) {
        __m512 column[4] = {
            _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88), _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0x88),
            _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD), _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0xDD)};
        for (int l = 0; l < 4; l++)
            if (4 * l + j < cols) _mm512_mask_storeu_ps(dst + (4 * l + j) * dst_stride, store, column[l]);
    }
}

// op(A)'s first mc rows and kc columns as micro-panels of MR rows: [panel][kk][MR], rows past mc
// zero. `a` points at op(A)[i0][p0]: A itself (m × k), or with trans_a its transpose (A is k × m).
AVX512 static void pack_a(int trans_a, const float *a, long lda, long mc, long kc, float *dst) {
    for (long i = 0; i < mc; i += MR) {
        int rows = mc - i < MR ? (int)(mc - i) : MR;
        if (trans_a) {
            // op(A)'s column p is A's row p: each is already a panel row.
            const __mmask16 m = (__mmask16)((1u << rows) - 1);
            for (long p = 0; p < kc; p++)
                _mm512_mask_storeu_ps(dst + i * kc + p * MR, (1u << MR) - 1, _mm512_maskz_loadu_ps(m, a + p * lda + i));
        } else {
            for (long p = 0; p < kc; p += 16)
                transpose16(a + i * lda + p, lda, rows, kc - p < 16 ? (int)(kc - p) : 16, dst + i * kc + p * MR, MR,
                            (1u << MR) - 1);
        }
    }
}

// op(B)'s first nc columns and kc rows (from `b`, which points at op(B)[p0][j0]) as micro-panels
// of NR columns: [panel][kk][NR], columns past nc zero.
AVX512 static void pack_b(int trans_b, const float *b, long ldb, long nc, long kc, float *dst) {
    for (long j = 0; j < nc; j += NR) {
        long cols = nc - j < NR ? nc - j : NR;
        float *panel = dst + j * kc;
        if (trans_b) {
            // B's rows are op(B)'s columns: 16 of them at a time, transposed into the panel.
            for (int h = 0; h < NR; h += 16) {
                int rows = cols - h < 0 ? 0 : cols - h < 16 ? (int)(cols - h) : 16;
                for (long p = 0; p < kc; p += 16)
                    transpose16(b + (j + h) * ldb + p, ldb, rows, kc - p < 16 ? (int)(kc - p) : 16, panel + p * NR + h,
                                NR, 0xFFFF);
            }
        } else {
            __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
            __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
            for (long p = 0; p < kc; p++) {
                const float *src = b + p * ldb + j;
                _mm512_store_ps(panel + p * NR, _mm512_maskz_loadu_ps(m0, src));
                _mm512_store_ps(panel + p * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
            }
        }
    }
}

// One MR × NR tile of C (its first mr rows and nr columns are real) from one A and one B micro-panel.
AVX512 static void tile(long kc, const float *restrict pa, const float *restrict pb, float *c, long ldc, int mr,
                        int nr, int start, int finish, float alpha, float beta) {
    __m512 lo[MR], hi[MR];
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (start == start_zero || i >= mr) {
            lo[i] = _mm512_setzero_ps();
            hi[i] = _mm512_setzero_ps();
        } else {
            lo[i] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
            hi[i] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
            if (start == start_beta_c) {
                lo[i] = _mm512_mul_ps(_mm512_set1_ps(beta), lo[i]);
                hi[i] = _mm512_mul_ps(_mm512_set1_ps(beta), hi[i]);
            }
        }
    }
    for (long p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(pb + p * NR), b1 = _mm512_load_ps(pb + p * NR + 16);
        const float *ap = pa + p * MR;
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512 av = _mm512_set1_ps(ap[i]);
            lo[i] = _mm512_fmadd_ps(av, b0, lo[i]);
            hi[i] = _mm512_fmadd_ps(av, b1, hi[i]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        __m512 x0 = lo[i], x1 = hi[i];
        if (finish != finish_store) {
            x0 = _mm512_mul_ps(va, x0);
            x1 = _mm512_mul_ps(va, x1);
            if (finish == finish_alpha_beta) {
                x0 = _mm512_add_ps(x0, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, row)));
                x1 = _mm512_add_ps(x1, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16)));
            } else if (finish == finish_alpha_add) {
                x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, row));
                x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, row + 16));
            }
        }
        _mm512_mask_storeu_ps(row, m0, x0);
        _mm512_mask_storeu_ps(row + 16, m1, x1);
    }
}

AVX512 void damda_sgemm_avx512(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                               const float *b, long ldb, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    buffers *t = k > 0 ? thread_buffers() : 0;
    if (!t) {
        // Nothing to sum (or no memory for the panels): C = beta · C, done plainly.
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return;
    }
    float *packed_a = t->a, *packed_b = t->b;
    for (long j0 = 0; j0 < n; j0 += NC) {
        long nc = n - j0 < NC ? n - j0 : NC;
        for (long p0 = 0; p0 < k; p0 += KC) {
            long kc = k - p0 < KC ? k - p0 : KC;
            int first = p0 == 0;
            int start, finish;
            if (alpha == 1) {
                start = !first ? start_c : beta == 0 ? start_zero : beta == 1 ? start_c : start_beta_c;
                finish = finish_store;
            } else {
                start = start_zero;
                finish = !first ? finish_alpha_add : beta == 0 ? finish_alpha : finish_alpha_beta;
            }
            pack_b(trans_b, trans_b ? b + j0 * ldb + p0 : b + p0 * ldb + j0, ldb, nc, kc, packed_b);
            for (long i0 = 0; i0 < m; i0 += MC) {
                long mc = m - i0 < MC ? m - i0 : MC;
                pack_a(trans_a, trans_a ? a + p0 * lda + i0 : a + i0 * lda + p0, lda, mc, kc, packed_a);
                for (long j = 0; j < nc; j += NR) {
                    int nr = nc - j < NR ? (int)(nc - j) : NR;
                    for (long i = 0; i < mc; i += MR) {
                        int mr = mc - i < MR ? (int)(mc - i) : MR;
                        tile(kc, packed_a + i * kc, packed_b + j * kc, c + (i0 + i) * ldc + j0 + j, ldc, mr, nr, start,
                             finish, alpha, beta);
                    }
                }
            }
        }
    }
}

#else
void damda_sgemm_avx512(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                        const float *b, long ldb, float beta, float *c, long ldc) {
    (void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)beta;
    (void)c; (void)ldc;
}
#endif
