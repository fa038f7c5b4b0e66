#ifndef DAMDA_CINTRINSICS_H
#define DAMDA_CINTRINSICS_H
// Two hints Swift has no spelling for.

// Kernels that stream weights from memory ask for the next cache line early so the wait overlaps
// with arithmetic.
static inline void damda_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

// Spin-wait loops tell the core they are waiting (x86 PAUSE), which saves power and lets the
// other hardware thread of the core run.
static inline void damda_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
#include "ScreenQ8.h"
#include "OpenBLASKernels.h"
#include "DecodeRowsAVX512.h"
#include "SgemmAVX512.h"
#endif
