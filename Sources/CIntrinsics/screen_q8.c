// The greedy head's int8 screen with AVX-512 VNNI, compiled for that instruction set alone and
// chosen at run time (the rest of the build targets AVX2). See GreedyHead.swift for the bound
// that makes any exact-integer screen safe: the products here are the same integers as the AVX2
// screen's, only summed in another order, which the bound's fp32 margin covers.
#include "ScreenQ8.h"
#if defined(__x86_64__)
#include <immintrin.h>

int damda_has_avx512vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))
static inline float half_to_float(const uint8_t *p) {
    uint16_t h;
    __builtin_memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// One vector's block scales for block pair p as 16 lanes: d_x[2p] in the low 8, d_x[2p+1] in the high 8.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))
static inline __m512 pair_scales(const float *dx, int p) {
    return _mm512_insertf32x8(_mm512_set1_ps(dx[2 * p]), _mm256_set1_ps(dx[2 * p + 1]), 1);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))
void damda_screen_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                const uint8_t *xu, const float *dx, int count,
                                const float *norm, const float *reach, float *low,
                                damda_kept_row *kept, long kept_stride, long *kept_count) {
    const int pairs = blocks / 2, n = blocks * 32;
    const __m512i ones = _mm512_set1_epi8(1);
    // The scales are the same for every row: built once when they fit (rows up to 1,024 values).
    __m512 dxv[8][16];
    const int cached = pairs <= 16;
    if (cached)
        for (int v = 0; v < count; v++)
            for (int p = 0; p < pairs; p++) dxv[v][p] = pair_scales(dx + v * blocks, p);
    float lows[8];
    for (int v = 0; v < count; v++) lows[v] = low[v];
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = matrix + (size_t)r * row_bytes;
        // The row eight ahead, a cache line at a time, so its wait overlaps this row's arithmetic.
        for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch((const char *)(row + 8 * row_bytes + o), _MM_HINT_T0);
        __m512 acc[8];
        for (int v = 0; v < count; v++) acc[v] = _mm512_setzero_ps();
        for (int p = 0; p < pairs; p++) {
            const uint8_t *b0 = row + (size_t)(2 * p) * 34, *b1 = b0 + 34;
            const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
                                                 _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
            // (x + 128)·w summed in fours, minus 128·Σw over the same four: exactly Σ x·w per lane.
            const __m512i wsum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, w);
            const __m512i correction = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(wsum, 7));
            const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(half_to_float(b0)), _mm256_set1_ps(half_to_float(b1)), 1);
            for (int v = 0; v < count; v++) {
                const __m512i a = _mm512_loadu_si512((const void *)(xu + (size_t)v * n + p * 64));
                const __m512 sums = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(correction, a, w));
                const __m512 scale = _mm512_mul_ps(dw, cached ? dxv[v][p] : pair_scales(dx + v * blocks, p));
                acc[v] = _mm512_fmadd_ps(sums, scale, acc[v]);
            }
        }
        for (int v = 0; v < count; v++) {
            const float s = _mm512_reduce_add_ps(acc[v]);
            const float bound = norm[r] * reach[v];
            if (s - bound > lows[v]) lows[v] = s - bound;
            if (s + bound >= lows[v]) {
                damda_kept_row *k = kept + (size_t)v * kept_stride + kept_count[v];
                k->row = (int32_t)r;
                k->upper = s + bound;
                kept_count[v] += 1;
            }
        }
    }
    for (int v = 0; v < count; v++) low[v] = lows[v];
}
#else
int damda_has_avx512vnni(void) { return 0; }
void damda_screen_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                const uint8_t *xu, const float *dx, int count,
                                const float *norm, const float *reach, float *low,
                                damda_kept_row *kept, long kept_stride, long *kept_count) {}
#endif
