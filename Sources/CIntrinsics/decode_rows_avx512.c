// A DecodeRows or file-layout Q8_0 or Q5_0 matrix × several vectors with AVX-512, compiled for that
// instruction set alone and chosen at run time (the rest of the build targets AVX2). A 16-lane
// register carries two vectors' eight-lane accumulators, so each weight block is widened to fp32
// once for up to eight vectors and every arithmetic instruction does two vectors' work, while each
// lane still takes the Swift kernel's operations in its order (see DecodeRowsAVX512.h): the
// products are unchanged.
#include "DecodeRowsAVX512.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

// Separate multiplies and adds stay separate, as in Swift: only the explicit FMAs fuse.
#pragma STDC FP_CONTRACT OFF

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,evex512,fma,f16c"), always_inline))

int damda_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

// Eight bytes at p as int8 values (or two nibble fields, below), the eight repeated in both halves.
AVX512 static inline __m128i eight_bytes_twice(const uint8_t *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return _mm_set1_epi64x(v);
}

AVX512 static inline __m512 int8s(const uint8_t *p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(eight_bytes_twice(p))); }

// One block's four 8-value groups (values 0–7, 8–15, 16–23, 24–31), each twice, as Swift's
// `bytesBlock` / `nibblesBlock` / `q5Values` convert them. `p` points past Q8_0's and Q5_0's f16 scale.
AVX512 static inline void block_values(const uint8_t *p, int layout, __m512 q[4]) {
    if (layout == damda_rows_q5_0) {
        // Value v is its nibble + 16 · (bit v of the fifth bits) − 16: where the bit is clear, the
        // nibble with every higher bit set (nibble − 16 in two's complement). Group g's bits are
        // byte g, repeated for both halves of the register as a lane mask. Exact integers, so the
        // floats equal Swift's nibble-plus-table sums.
        uint32_t qh;
        memcpy(&qh, p, 4);
        const __m512i lo = _mm512_cvtepu8_epi32(eight_bytes_twice(p + 4)), hi = _mm512_cvtepu8_epi32(eight_bytes_twice(p + 12));
        const __m512i low4 = _mm512_set1_epi32(0xF), high = _mm512_set1_epi32(-16);
        const __m512i nib[4] = {_mm512_and_si512(lo, low4), _mm512_and_si512(hi, low4), _mm512_srli_epi32(lo, 4), _mm512_srli_epi32(hi, 4)};
        for (int g = 0; g < 4; g++) {
            const __mmask16 clear = (__mmask16)~(((qh >> (8 * g)) & 0xFF) * 0x0101u);
            q[g] = _mm512_cvtepi32_ps(_mm512_mask_or_epi32(nib[g], clear, nib[g], high));
        }
    } else if (layout == damda_rows_nibbles) {
        const __m512i lo = _mm512_cvtepu8_epi32(eight_bytes_twice(p)), hi = _mm512_cvtepu8_epi32(eight_bytes_twice(p + 8));
        const __m512i low4 = _mm512_set1_epi32(0xF);
        q[0] = _mm512_cvtepi32_ps(_mm512_and_si512(lo, low4));
        q[1] = _mm512_cvtepi32_ps(_mm512_and_si512(hi, low4));
        q[2] = _mm512_cvtepi32_ps(_mm512_srli_epi32(lo, 4));
        q[3] = _mm512_cvtepi32_ps(_mm512_srli_epi32(hi, 4));
    } else {
        q[0] = int8s(p); q[1] = int8s(p + 8); q[2] = int8s(p + 16); q[3] = int8s(p + 24);
    }
}

// (q0·x0 + q1·x8) and (q2·x16 + q3·x24) for one pair, as Swift's `sum` forms them before adding.
AVX512 static inline void halves(const __m512 q[4], const float *x, int pairs, __m512 *h0, __m512 *h1) {
    const long step = (long)pairs * 16;
    *h0 = _mm512_fmadd_ps(q[1], _mm512_loadu_ps(x + step), _mm512_mul_ps(q[0], _mm512_loadu_ps(x)));
    *h1 = _mm512_fmadd_ps(q[3], _mm512_loadu_ps(x + 3 * step), _mm512_mul_ps(q[2], _mm512_loadu_ps(x + 2 * step)));
}

// Swift's SIMD8<Float>.sum(): -0, then each lane added in index order.
static inline float sum8(const float *v) {
    float s = -0.0f;
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}

AVX512 static inline void store_pair(__m512 acc, float *y, long y_stride, long r, int p, int vectors) {
    float lanes[16];
    _mm512_storeu_ps(lanes, acc);
    y[(long)(2 * p) * y_stride + r] = sum8(lanes);
    if (2 * p + 1 < vectors) y[(long)(2 * p + 1) * y_stride + r] = sum8(lanes + 8);
}

// A block's scale: an fp32 at `scale_at`, or Q8_0's and Q5_0's leading f16 (converted exactly, as Swift's `f16`).
AVX512 static inline float block_scale(const uint8_t *blk, int layout, int scale_at) {
    if (layout == damda_rows_q8_0 || layout == damda_rows_q5_0) {
        uint16_t h;
        memcpy(&h, blk, 2);
        return _cvtsh_ss(h);
    }
    float sf;
    memcpy(&sf, blk + scale_at, 4);
    return sf;
}

// acc[p] += scale · (this block's sum) for each pair, as `scaledBlocks` adds one block.
AVX512 static inline void scaled_block(const uint8_t *blk, int layout, int scale_at, const float *x, const int P, __m512 acc[4]) {
    __m512 q[4], h0, h1;
    block_values(layout == damda_rows_q8_0 || layout == damda_rows_q5_0 ? blk + 2 : blk, layout, q);
    const __m512 s = _mm512_set1_ps(block_scale(blk, layout, scale_at));
    for (int p = 0; p < P; p++) {
        halves(q, x + p * 16, P, &h0, &h1);
        acc[p] = _mm512_fmadd_ps(_mm512_add_ps(h0, h1), s, acc[p]);
    }
}

// One row for P pairs. `bytes` / `nibbles` / `q8_0` / `q5_0` follow `scaledBlocks` (`q8Blocks`, `dotQ5_0`) (two accumulators, even blocks
// into the first, odd into the second, a last odd block into the first); `bytes_halves` follows
// `dot16` (every block, the first half's sum into one accumulator, the second's into the other).
AVX512 static inline void row_pairs(const uint8_t *row, int blocks, int layout, const float *xi, const int P,
                                    int vectors, float *y, long y_stride, long r) {
    __m512 a[4], c[4], q[4], h0, h1;
    for (int p = 0; p < P; p++) { a[p] = _mm512_setzero_ps(); c[p] = _mm512_setzero_ps(); }
    const long chunk = (long)P * 16;  // floats per 8-value chunk of every pair
    if (layout == damda_rows_bytes_halves) {
        for (int b = 0; b < blocks; b++) {
            const uint8_t *blk = row + (size_t)b * 40;
            block_values(blk, layout, q);
            float s0f, s1f;
            memcpy(&s0f, blk + 32, 4);
            memcpy(&s1f, blk + 36, 4);
            const __m512 s0 = _mm512_set1_ps(s0f), s1 = _mm512_set1_ps(s1f);
            const float *x = xi + (long)b * 4 * chunk;
            for (int p = 0; p < P; p++) {
                halves(q, x + p * 16, P, &h0, &h1);
                a[p] = _mm512_fmadd_ps(h0, s0, a[p]);
                c[p] = _mm512_fmadd_ps(h1, s1, c[p]);
            }
        }
    } else {
        const int block_bytes = layout == damda_rows_nibbles ? 20 : layout == damda_rows_q8_0 ? 34 : layout == damda_rows_q5_0 ? 22 : 36;
        const int scale_at = layout == damda_rows_nibbles ? 16 : 32;
        // Blocks 0, 2, 4… into a, 1, 3, 5… into c; a last odd block has an even index and lands in a.
        int b = 0;
        for (; b + 2 <= blocks; b += 2) {
            scaled_block(row + (size_t)b * block_bytes, layout, scale_at, xi + (long)b * 4 * chunk, P, a);
            scaled_block(row + (size_t)(b + 1) * block_bytes, layout, scale_at, xi + (long)(b + 1) * 4 * chunk, P, c);
        }
        if (b < blocks) scaled_block(row + (size_t)b * block_bytes, layout, scale_at, xi + (long)b * 4 * chunk, P, a);
    }
    for (int p = 0; p < P; p++) store_pair(_mm512_add_ps(a[p], c[p]), y, y_stride, r, p, vectors);
}

AVX512 static inline void rows_pairs(const uint8_t *data, size_t row_bytes, int blocks, int layout, long r0, long r1,
                                     const float *xi, const int P, int vectors, float *y, long y_stride) {
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = data + (size_t)r * row_bytes;
        // The row four ahead, a cache line at a time, so its wait overlaps this row's arithmetic.
        if (r + 4 < r1)
            for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch((const char *)(row + 4 * row_bytes + o), _MM_HINT_T0);
        row_pairs(row, blocks, layout, xi, P, vectors, y, y_stride, r);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,evex512,fma,f16c")))
void damda_decode_rows_x8_avx512(const uint8_t *data, size_t row_bytes, int blocks, int layout, long r0, long r1,
                                 const float *xi, int vectors, float *y, long y_stride) {
    switch ((vectors + 1) / 2) {
    case 1: rows_pairs(data, row_bytes, blocks, layout, r0, r1, xi, 1, vectors, y, y_stride); break;
    case 2: rows_pairs(data, row_bytes, blocks, layout, r0, r1, xi, 2, vectors, y, y_stride); break;
    case 3: rows_pairs(data, row_bytes, blocks, layout, r0, r1, xi, 3, vectors, y, y_stride); break;
    default: rows_pairs(data, row_bytes, blocks, layout, r0, r1, xi, 4, vectors, y, y_stride); break;
    }
}

// Eight bytes of nibbles as two eight-lane groups: the low nibbles (lanes 0–7) beside the high
// ones (lanes 8–15), each minus 16 where its fifth bit (`fifth`, one bit per lane) is clear:
// exact integers from −16 to 15, as `q5Values` forms them with its table.
AVX512 static inline __m512 q5_lows_beside_highs(const uint8_t *nibbles, uint32_t fifth) {
    const __m512i bytes = _mm512_cvtepu8_epi32(eight_bytes_twice(nibbles));
    const __m512i shifts = _mm512_set_epi32(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i nib = _mm512_and_si512(_mm512_srlv_epi32(bytes, shifts), _mm512_set1_epi32(0xF));
    return _mm512_cvtepi32_ps(_mm512_mask_or_epi32(nib, (__mmask16)~fifth, nib, _mm512_set1_epi32(-16)));
}

// `q5Block` · d for one block, as `dotQ5_0` adds it: (v0·x0 + v1·x8) + (v2·x16 + v3·x24), where
// `xp` holds the block's x reordered as x0–7, x16–23, x8–15, x24–31.
AVX512 static inline __m256 q5_block(const uint8_t *blk, const float *xp) {
    uint32_t qh;
    memcpy(&qh, blk + 2, 4);
    // Lanes of values 0–7 and 16–23 take bits 0–7 and 16–23; values 8–15 and 24–31 bits 8–15 and 24–31.
    const uint32_t fifth02 = (qh & 0xFF) | ((qh >> 8) & 0xFF00), fifth13 = ((qh >> 8) & 0xFF) | ((qh >> 16) & 0xFF00);
    const __m512 v02 = q5_lows_beside_highs(blk + 6, fifth02), v13 = q5_lows_beside_highs(blk + 14, fifth13);
    const __m512 h = _mm512_fmadd_ps(v13, _mm512_loadu_ps(xp + 16), _mm512_mul_ps(v02, _mm512_loadu_ps(xp)));
    return _mm256_add_ps(_mm512_castps512_ps256(h), _mm512_extractf32x8_ps(h, 1));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,evex512,fma,f16c")))
void damda_q5_0_rows_avx512(const uint8_t *data, size_t row_bytes, int blocks, long r0, long r1,
                            const float *x, float *y) {
    // x reordered once for every row of the range (at most 64 KB on the stack for 16k columns).
    float xp[blocks > 0 ? blocks * 32 : 1];
    for (int b = 0; b < blocks; b++) {
        memcpy(xp + b * 32, x + b * 32, 32);
        memcpy(xp + b * 32 + 8, x + b * 32 + 16, 32);
        memcpy(xp + b * 32 + 16, x + b * 32 + 8, 32);
        memcpy(xp + b * 32 + 24, x + b * 32 + 24, 32);
    }
    for (long r = r0; r < r1; r++) {
        const uint8_t *row = data + (size_t)r * row_bytes;
        if (r + 4 < r1)
            for (size_t o = 0; o < row_bytes; o += 64) _mm_prefetch((const char *)(row + 4 * row_bytes + o), _MM_HINT_T0);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int b = 0;
        for (; b + 2 <= blocks; b += 2) {
            const uint8_t *blk = row + (size_t)b * 22;
            acc0 = _mm256_fmadd_ps(q5_block(blk, xp + b * 32), _mm256_set1_ps(block_scale(blk, damda_rows_q5_0, 0)), acc0);
            acc1 = _mm256_fmadd_ps(q5_block(blk + 22, xp + b * 32 + 32), _mm256_set1_ps(block_scale(blk + 22, damda_rows_q5_0, 0)), acc1);
        }
        if (b < blocks) {
            const uint8_t *blk = row + (size_t)b * 22;
            acc0 = _mm256_fmadd_ps(q5_block(blk, xp + b * 32), _mm256_set1_ps(block_scale(blk, damda_rows_q5_0, 0)), acc0);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, _mm256_add_ps(acc0, acc1));
        y[r] = sum8(lanes);
    }
}
#else
int damda_has_avx512(void) { return 0; }
void damda_q5_0_rows_avx512(const uint8_t *data, size_t row_bytes, int blocks, long r0, long r1,
                            const float *x, float *y) {
    (void)data; (void)row_bytes; (void)blocks; (void)r0; (void)r1; (void)x; (void)y;
}
void damda_decode_rows_x8_avx512(const uint8_t *data, size_t row_bytes, int blocks, int layout, long r0, long r1,
                                 const float *xi, int vectors, float *y, long y_stride) {
    (void)data; (void)row_bytes; (void)blocks; (void)layout; (void)r0; (void)r1; (void)xi; (void)vectors; (void)y; (void)y_stride;
}
#endif
