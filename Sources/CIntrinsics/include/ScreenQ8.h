#ifndef DAMDA_SCREEN_Q8_H
#define DAMDA_SCREEN_Q8_H
#include <stddef.h>
#include <stdint.h>

// A row the greedy head's screen keeps for one vector: its index and the upper bound of its logit.
typedef struct { int32_t row; float upper; } damda_kept_row;

// Whether this processor runs `damda_screen_q8_avx512vnni` (AVX-512 F/BW/VL/DQ with VNNI).
int damda_has_avx512vnni(void);

// GreedyHead's screen on AVX-512 VNNI: for rows [r0, r1) of a Q8_0 matrix (34-byte blocks:
// f16 scale, 32 int8) and `count` (1 to 8) vectors rounded to int8 per 32-value block, given
// as unsigned bytes x + 128 (`xu`, count × blocks·32) with their scales (`dx`, count × blocks),
// computes each screened product Σ_b d_w·d_x·Σ q·a, and keeps, per vector v, the rows whose
// upper bound (screened + norm[r]·reach[v]) reaches that vector's running lower bound `low[v]`,
// appended at kept[v·kept_stride + kept_count[v]]. `blocks` must be even.
void damda_screen_q8_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                const uint8_t *xu, const float *dx, int count,
                                const float *norm, const float *reach, float *low,
                                damda_kept_row *kept, long kept_stride, long *kept_count);

// Sampling's screen for 1 to 8 vectors: each row's screened products written to
// scores[r·score_stride + v], and each vector's lower bound (score − norm[r]·reach[v]) counted in
// histogram[v·4096 + key], key = the float's bits made order-preserving (negatives flipped, the
// sign bit set on the rest), shifted right by 20. `blocks` must be even.
void damda_screen_q8_top_avx512vnni(const uint8_t *matrix, size_t row_bytes, int blocks, long r0, long r1,
                                    const uint8_t *xu, const float *dx, int count,
                                    const float *norm, const float *reach, float *scores, long score_stride, uint32_t *histogram);
#endif
