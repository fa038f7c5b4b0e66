#ifndef DAMDA_SGEMM_AVX512_H
#define DAMDA_SGEMM_AVX512_H

// C = alpha · op(A) · op(B) + beta · C in fp32 on one thread, all row-major: op(A) is m × k, A
// itself (row stride lda) or, when trans_a is nonzero, Aᵀ with A k × m; op(B) is Bᵀ with B n × k
// when trans_b is nonzero (a weight matrix, one output per row), else B itself, k × n; C is
// m × n. Call only where damda_has_avx512() says the processor runs AVX-512 F/BW/VL/DQ.
//
// Each C element is one chain of fused multiply-adds over k in order: with alpha = 1 it starts
// from 0 (beta = 0), beta · C or C and is never split, so the result does not depend on which
// thread computes which part of C, nor on the tile it falls in. With alpha ≠ 1 and k above the
// kernel's block of 256, each block's chain is scaled and added to C in turn.
//
// beta = 0 never reads C (it may hold anything). Packing buffers (1.2 MB) are kept per thread,
// allocated on its first call and freed when it exits.
void damda_sgemm_avx512(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                        const float *b, long ldb, float beta, float *c, long ldc);

#endif
