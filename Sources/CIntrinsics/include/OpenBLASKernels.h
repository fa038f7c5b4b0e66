#ifndef DAMDA_OPENBLAS_KERNELS_H
#define DAMDA_OPENBLAS_KERNELS_H

// OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels by CPU model when it loads. A
// library older than the CPU does not know the model and falls back to Prescott's SSE3 kernels:
// Debian 12's OpenBLAS 0.3.21 does so on an Intel Xeon of family 6 model 207 (Emerald Rapids),
// where Damda's prefill then ran at a quarter of its speed. This re-selects the kernels by the
// CPU's features (AVX-512: SkylakeX; AVX2 + FMA: Haswell) when the library's own choice is an
// older class. It does nothing when OPENBLAS_CORETYPE is set (the user's choice stands) or the
// library was built for one target. Call it once, before the first BLAS call (it sets and unsets
// OPENBLAS_CORETYPE for OpenBLAS to read). Returns 1 when it switched the kernels.
int damda_openblas_match_cpu(void);

#endif
