#ifndef DAMDA_CPREFETCH_H
#define DAMDA_CPREFETCH_H
// Swift has no prefetch instruction of its own; kernels that stream weights from memory ask for
// the next cache line early so the wait overlaps with arithmetic.
static inline void damda_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
#endif
