#ifndef DAMDA_SCREEN_Q8_H
#define DAMDA_SCREEN_Q8_H
#include <stddef.h>
#include <stdint.h>

// A row the greedy head's screen keeps for one vector: its index and the upper bound of its logit.
typedef struct { int32_t row; float upper; } damda_kept_row;

// Whether this processor runs the 16-bit screens below (AVX-512 F/BW/VL/DQ with VNNI).
int damda_has_avx512vnni(void);

// The 16-bit screen's weights for one row of a Q8_0 matrix (34-byte blocks: f16 scale d, 32
// int8 q): factors[b] = round(255·d_b / max|d|), returned max|d|; the screen multiplies q·f_b,
// so row i's screened weights are q·f·max|d|/255.
float damda_screen16_row_factors(const uint8_t *row, int blocks, int16_t *factors);

// GreedyHead's screen for 1 to 8 vectors on AVX-512 VNNI: for rows [r0, r1) of a Q8_0 matrix (its
// factors formed once: `factors` rows × blocks and `row_scales` max|d| per row, or both NULL to
// form them per row from the scales) and `count` vectors rounded to int16 with one scale each
// (`x` count × blocks·32, |x| small enough that 2·blocks·32,640·|x| < 2³¹; scales `dx`), computes
// each screened product
// (max|d|/255)·dx·Σ (q·f)·x and keeps, per vector v, the rows whose upper bound (screened +
// norm[r]·reach[v] + werr[r]·xhat[v]) reaches that vector's running lower bound `low[v]`,
// appended at kept[v·kept_stride + kept_count[v]].
void damda_screen16_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                  const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, int count,
                                  const float *norm, const float *werr, const float *reach, const float *xhat, float *low,
                                  damda_kept_row *kept, long kept_stride, long *kept_count);

// Sampling's 16-bit screen for 1 to 8 vectors: each row's screened products written to
// scores[r·score_stride + v], and each vector's lower bound (score − the bound above) counted in
// histogram[v·4096 + key], key = the float's bits made order-preserving (negatives flipped, the
// sign bit set on the rest), shifted right by 20.
void damda_screen16_q8_top_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                      const uint8_t *factors, const float *row_scales, const int16_t *x, const float *dx, int count,
                                      const float *norm, const float *werr, const float *reach, const float *xhat,
                                      float *scores, long score_stride, uint32_t *histogram);
#endif
