#ifndef DAMDA_DECODE_ROWS_AVX512_H
#define DAMDA_DECODE_ROWS_AVX512_H
#include <stddef.h>
#include <stdint.h>

// Whether this processor runs the AVX-512 kernels below (AVX-512 F/BW/VL/DQ).
int damda_has_avx512(void);

// DecodeRows' layouts, as `layout` below: 32 int8 values + one fp32 scale (36 bytes); 16 bytes of
// nibbles + one fp32 scale (20 bytes); 32 int8 values + two fp32 scales, one per half (40 bytes);
// the file's Q8_0 (an f16 scale, then 32 int8 values: 34 bytes), summed as `dotQ8_0Wide` sums it;
// and the file's Q5_0 (an f16 scale, 32 fifth bits, 16 bytes of nibbles: 22 bytes), as `dotQ5_0`.
enum { damda_rows_bytes = 0, damda_rows_nibbles = 1, damda_rows_bytes_halves = 2, damda_rows_q8_0 = 3, damda_rows_q5_0 = 4 };

// Row · x for rows [r0, r1) of a DecodeRows, Q8_0 or Q5_0 matrix and `vectors` vectors (1 to 8), written to
// y[v·y_stride + r]. The vectors come interleaved in pairs (pairs = ⌈vectors / 2⌉, an odd count
// padded with any finite vector): 8 values of vector 2p, then the same 8 of vector 2p + 1, for
// each 8-value chunk k in turn (xi[(k·pairs + p)·16 + lane]).
//
// Each 16-lane register holds two vectors' eight-lane accumulators side by side, so every lane
// takes exactly the fp32 operations, in the order, that DecodeRows' Swift kernels (`dot32`,
// `dot4`, `dot16`) take for one vector in eight lanes, and the eight lanes are summed in index
// order as Swift's `SIMD8.sum()` does: the results are bit for bit the one-vector kernel's (Q8_0:
// `LegacyQuants.dotQ8_0Wide`, the kernel of cores with full-width 256-bit vectors; Q5_0:
// `LegacyQuants.dotQ5_0`, whose values are exact integers however they are formed). Only
// the scaled sums are written: a layout's mins are left to the caller.
void damda_decode_rows_x8_avx512(const uint8_t *data, size_t row_bytes, int blocks, int layout, long r0, long r1,
                                 const float *xi, int vectors, float *y, long y_stride);

// y[r] = row r · x for rows [r0, r1) of a file-layout Q5_0 matrix and one vector: bit for bit
// `LegacyQuants.dotQ5_0`. One 16-lane register holds a block's values 0–7 beside 16–23, another
// 8–15 beside 24–31, so one multiply and one FMA form both of `q5Block`'s eight-lane halves,
// which are then added, scaled into the even or odd blocks' accumulator and summed as Swift does.
void damda_q5_0_rows_avx512(const uint8_t *data, size_t row_bytes, int blocks, long r0, long r1,
                            const float *x, float *y);
#endif
