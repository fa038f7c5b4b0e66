// The greedy head's 16-bit screen for decode batches with AVX-512 VNNI, compiled for that
// instruction set alone and chosen at run time (the rest of the build targets AVX2). Each vector is
// rounded to int16 with one scale, each row's weights to q·f with one scale (below), and their
// products summed exactly in int32 with one VPDPWSSD per 32 weights and vector: no per-block
// conversion or scaling, which the int8 screen pays per vector. See GreedyHead.swift for the bound.
#include "ScreenQ8.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

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

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,evex512,f16c,fma")))

// A row's weights as the 16-bit screen multiplies them: block b's int8 values times f[b] =
// round(255·d_b / max|d|), so q·f fits int16 and one scale (max|d| / 255) serves the whole row.
// Returns max|d| (0 for a row of zero scales, whose factors are then 0). The scales are read
// sixteen at a time with one gather (they lie 34 bytes apart; loaded one by one they cost twice).
TARGET float damda_screen16_row_factors(const uint8_t *row, int blocks, int16_t *factors) {
    const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(34));
    float scales[blocks + 15];
    __m512 largest = _mm512_setzero_ps();
    for (int b = 0; b < blocks; b += 16) {
        const int m = blocks - b < 16 ? blocks - b : 16;
        const __mmask16 k = (__mmask16)((1u << m) - 1);
        const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, offsets, row + (size_t)b * 34, 1);
        const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        _mm512_storeu_ps(scales + b, d);
        largest = _mm512_max_ps(largest, _mm512_abs_ps(d));
    }
    const float dmax = _mm512_reduce_max_ps(largest);
    const __m512 k = _mm512_set1_ps(dmax > 0 ? 255.0f / dmax : 0);
    for (int b = 0; b < blocks; b += 16) {
        const int m = blocks - b < 16 ? blocks - b : 16;
        // Rounded to nearest, ties to even (the default rounding mode), as every caller rounds them.
        const __m256i f = _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(scales + b), k)));
        _mm256_mask_storeu_epi16(factors + b, (__mmask16)((1u << m) - 1), f);
    }
    return dmax;
}

// One row's screened products for `count` vectors (a constant where it is inlined, so the
// accumulators stay in registers), as exact integers: Σ (q·f)·x per vector, the 16 int32 lanes of
// acc[v] summing to it. Each lane adds 2·blocks products of at most 32,640·X (|q| ≤ 128,
// |f| ≤ 255), which the caller's bound X on |x| keeps below 2³¹. The row eight ahead is asked
// for, a cache line at a time. Row r's factors and max|d| come from the table formed once
// (`factors`, `row_scales`) or, without one, are formed here from its scales.
TARGET __attribute__((always_inline)) static inline float screen16_row(const uint8_t *matrix, size_t row_bytes, int blocks, long r,
                                                                      const uint8_t *factors_table, const float *row_scales,
                                                                      const int16_t *x, const int count, __m512i acc[8]) {
    const uint8_t *row = matrix + (size_t)r * row_bytes;
    for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch((const char *)(row + 8 * row_bytes + o), _MM_HINT_T0);
    const uint8_t *table = factors_table ? factors_table + (size_t)r * blocks : 0;
    int16_t factors[blocks + 16];
    const float dmax = table ? row_scales[r] : damda_screen16_row_factors(row, blocks, factors);
    const int n = blocks * 32;
    for (int v = 0; v < 8; v++) acc[v] = _mm512_setzero_si512();
    for (int b = 0; b < blocks; b++) {
        const __m512i q = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(row + (size_t)b * 34 + 2)));
        const __m512i w = _mm512_mullo_epi16(q, _mm512_set1_epi16(table ? table[b] : factors[b]));
        for (int v = 0; v < count; v++)
            acc[v] = _mm512_dpwssd_epi32(acc[v], w, _mm512_loadu_si512((const void *)(x + (size_t)v * n + b * 32)));
    }
    return dmax;
}

// The eight vectors' screened logits side by side: each acc[v]'s lanes in fp32 (exact below 2²⁴,
// else within 2⁻²⁴ of each lane, far inside the bound's margin), summed by a tree of horizontal
// adds, times the row's scale max|d|/255 and each vector's scale dx[v].
TARGET static inline __m256 screen16_totals(const __m512i acc[8], float dmax, __m256 dxv) {
    __m256 h[8];
    for (int v = 0; v < 8; v++) {
        const __m512 f = _mm512_cvtepi32_ps(acc[v]);
        h[v] = _mm256_add_ps(_mm512_castps512_ps256(f), _mm512_extractf32x8_ps(f, 1));
    }
    const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(h[4], h[5]), _mm256_hadd_ps(h[6], h[7]));
    const __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
    return _mm256_mul_ps(sums, _mm256_mul_ps(_mm256_set1_ps(dmax / 255.0f), dxv));
}

// Up to eight per-vector values as 8 lanes (lanes past `count` 0).
TARGET static inline __m256 lanes(const float *values, int count) {
    float t[8] = {0};
    for (int v = 0; v < count; v++) t[v] = values[v];
    return _mm256_loadu_ps(t);
}

TARGET __attribute__((always_inline)) static inline void screen16_keep(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                                                      const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, const int count,
                                         const float *norm, const float *werr, const float *reach, const float *xhat, float *low,
                                         damda_kept_row *kept, long kept_stride, long *kept_count) {
    const __m256 dxv = lanes(dx, count), reachv = lanes(reach, count), xhatv = lanes(xhat, count);
    float lows[8];
    for (int v = 0; v < count; v++) lows[v] = low[v];
    for (long r = r0; r < r1; r++) {
        __m512i acc[8];
        const float dmax = screen16_row(matrix, row_bytes, blocks, r, factors, row_scales, x, count, acc);
        float s[8], bound[8];
        _mm256_storeu_ps(s, screen16_totals(acc, dmax, dxv));
        _mm256_storeu_ps(bound, _mm256_fmadd_ps(_mm256_set1_ps(norm[r]), reachv, _mm256_mul_ps(_mm256_set1_ps(werr[r]), xhatv)));
        for (int v = 0; v < count; v++) {
            if (s[v] - bound[v] > lows[v]) lows[v] = s[v] - bound[v];
            if (s[v] + bound[v] >= lows[v]) {
                damda_kept_row *k = kept + (size_t)v * kept_stride + kept_count[v];
                k->row = (int32_t)r;
                k->upper = s[v] + bound[v];
                kept_count[v] += 1;
            }
        }
    }
    for (int v = 0; v < count; v++) low[v] = lows[v];
}

TARGET __attribute__((always_inline)) static inline void screen16_top(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                                                     const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, const int count,
                                             const float *norm, const float *werr, const float *reach, const float *xhat,
                                             float *scores, long score_stride, uint32_t *histogram) {
    const __m256 dxv = lanes(dx, count), reachv = lanes(reach, count), xhatv = lanes(xhat, count);
    const __m256i signs = _mm256_set1_epi32((int)0x80000000u);
    for (long r = r0; r < r1; r++) {
        __m512i acc[8];
        const float dmax = screen16_row(matrix, row_bytes, blocks, r, factors, row_scales, x, count, acc);
        const __m256 totals = screen16_totals(acc, dmax, dxv);
        float t[8];
        _mm256_storeu_ps(t, totals);
        const __m256 bound = _mm256_fmadd_ps(_mm256_set1_ps(norm[r]), reachv, _mm256_mul_ps(_mm256_set1_ps(werr[r]), xhatv));
        const __m256 lower = _mm256_sub_ps(totals, bound);
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
// The exported screens: one copy of each loop per vector count.
#define COUNTS(call) switch (count) { \
    case 1: call(1); break; case 2: call(2); break; case 3: call(3); break; case 4: call(4); break; \
    case 5: call(5); break; case 6: call(6); break; case 7: call(7); break; default: call(8); break; }

TARGET void damda_screen16_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                         const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, int count,
                                         const float *norm, const float *werr, const float *reach, const float *xhat, float *low,
                                         damda_kept_row *kept, long kept_stride, long *kept_count) {
#define KEEP(c) screen16_keep(matrix, row_bytes, blocks, r0, r1, factors, row_scales, x, dx, c, norm, werr, reach, xhat, low, kept, kept_stride, kept_count)
    COUNTS(KEEP)
#undef KEEP
}

TARGET void damda_screen16_q8_top_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                             const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, int count,
                                             const float *norm, const float *werr, const float *reach, const float *xhat,
                                             float *scores, long score_stride, uint32_t *histogram) {
#define TOP(c) screen16_top(matrix, row_bytes, blocks, r0, r1, factors, row_scales, x, dx, c, norm, werr, reach, xhat, scores, score_stride, histogram)
    COUNTS(TOP)
#undef TOP
}
#else
int damda_has_avx512vnni(void) { return 0; }
float damda_screen16_row_factors(const uint8_t *row, int blocks, int16_t *factors) { return 0; }
void damda_screen16_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                  const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, int count,
                                  const float *norm, const float *werr, const float *reach, const float *xhat, float *low,
                                  damda_kept_row *kept, long kept_stride, long *kept_count) {}
void damda_screen16_q8_top_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                      const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, int count,
                                      const float *norm, const float *werr, const float *reach, const float *xhat,
                                      float *scores, long score_stride, uint32_t *histogram) {}
#endif
