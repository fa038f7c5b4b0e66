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

// What every row of a screen shares: the vectors' block scales, built once when they fit (rows up
// to 1,024 values).
typedef struct { __m512 dxv[8][16]; int cached; } screen_scales;

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))
static inline void screen_setup(screen_scales *s, const float *dx, int count, int blocks) {
    const int pairs = blocks / 2;
    s->cached = pairs <= 16;
    if (s->cached)
        for (int v = 0; v < count; v++)
            for (int p = 0; p < pairs; p++) s->dxv[v][p] = pair_scales(dx + v * blocks, p);
}

// One row's screened products for `count` vectors: acc[v]'s 16 lanes sum to Σ_b d_w·d_x·Σ q·a.
// The row eight ahead is asked for, a cache line at a time, so its wait overlaps this row's arithmetic.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))
static inline void screen_row(const uint8_t *row, size_t row_bytes, int blocks, const uint8_t *xu, const float *dx, int count,
                              const screen_scales *s, __m512 acc[8]) {
    const int pairs = blocks / 2, n = blocks * 32;
    const __m512i ones = _mm512_set1_epi8(1);
    for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch((const char *)(row + 8 * row_bytes + o), _MM_HINT_T0);
    for (int v = 0; v < 8; v++) acc[v] = _mm512_setzero_ps();
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
            const __m512 scale = _mm512_mul_ps(dw, s->cached ? s->dxv[v][p] : pair_scales(dx + v * blocks, p));
            acc[v] = _mm512_fmadd_ps(sums, scale, acc[v]);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))
void damda_screen_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                const uint8_t *xu, const float *dx, int count,
                                const float *norm, const float *reach, float *low,
                                damda_kept_row *kept, long kept_stride, long *kept_count) {
    screen_scales scales;
    screen_setup(&scales, dx, count, blocks);
    float lows[8];
    for (int v = 0; v < count; v++) lows[v] = low[v];
    for (long r = r0; r < r1; r++) {
        __m512 acc[8];
        screen_row(matrix + (size_t)r * row_bytes, row_bytes, blocks, xu, dx, count, &scales, acc);
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

// Sampling's screen: the same screened products, written to scores[r * score_stride + v] for rows
// [r0, r1), and each vector's lower bound (score - norm[r] * reach[v]) counted in its histogram
// (histogram[v * 4096 + key], the key being the float's top 12 bits made order-preserving), so
// the caller finds its cut without another pass over the rows.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))
void damda_screen_q8_top_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                    const uint8_t *xu, const float *dx, int count,
                                    const float *norm, const float *reach, float *scores, long score_stride, uint32_t *histogram) {
    screen_scales scales;
    screen_setup(&scales, dx, count, blocks);
    float reaches[8] = {0};
    for (int v = 0; v < count; v++) reaches[v] = reach[v];
    const __m256 reachv = _mm256_loadu_ps(reaches);
    const __m256i signs = _mm256_set1_epi32((int)0x80000000u);
    for (long r = r0; r < r1; r++) {
        __m512 acc[8];
        screen_row(matrix + (size_t)r * row_bytes, row_bytes, blocks, xu, dx, count, &scales, acc);
        // The eight totals side by side in one register: halves added, then a tree of
        // horizontal adds (a quarter of the instructions of eight separate reductions).
        __m256 h[8];
        for (int v = 0; v < 8; v++) h[v] = _mm256_add_ps(_mm512_castps512_ps256(acc[v]), _mm512_extractf32x8_ps(acc[v], 1));
        const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
        const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(h[4], h[5]), _mm256_hadd_ps(h[6], h[7]));
        const __m256 totals = _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
        float t[8];
        _mm256_storeu_ps(t, totals);
        const __m256 lower = _mm256_fnmadd_ps(_mm256_set1_ps(norm[r]), reachv, totals);
        // Negative floats flip every bit, the rest only the sign bit: the keys sort as the floats do.
        const __m256i bits = _mm256_castps_si256(lower);
        const __m256i flip = _mm256_or_si256(_mm256_srai_epi32(bits, 31), signs);
        uint32_t keys[8];
        _mm256_storeu_si256((__m256i *)keys, _mm256_srli_epi32(_mm256_xor_si256(bits, flip), 20));
        float *out = scores + (size_t)r * score_stride;
        for (int v = 0; v < count; v++) {
            out[v] = t[v];
            histogram[(size_t)v * 4096 + keys[v]] += 1;
        }
    }
}
#else
int damda_has_avx512vnni(void) { return 0; }
void damda_screen_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                const uint8_t *xu, const float *dx, int count,
                                const float *norm, const float *reach, float *low,
                                damda_kept_row *kept, long kept_stride, long *kept_count) {}
void damda_screen_q8_top_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                    const uint8_t *xu, const float *dx, int count,
                                    const float *norm, const float *reach, float *scores, long score_stride, uint32_t *histogram) {}
#endif
