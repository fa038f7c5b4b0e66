#include "OpenBLASKernels.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <strings.h>

// Looked up at run time: these are OpenBLAS's own exports, present only in DYNAMIC_ARCH builds.
typedef char *(*corename_fn)(void);
typedef void (*void_fn)(void);

// 2: AVX-512 kernels, 1: AVX2 + FMA kernels, 0: an older class.
static int kernel_class(const char *name) {
    static const char *avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *avx2[] = {"Haswell", "Zen"};
    for (unsigned i = 0; i < sizeof avx512 / sizeof *avx512; i++) if (strcasecmp(name, avx512[i]) == 0) return 2;
    for (unsigned i = 0; i < sizeof avx2 / sizeof *avx2; i++) if (strcasecmp(name, avx2[i]) == 0) return 1;
    return 0;
}

int damda_openblas_match_cpu(void) {
#if defined(__x86_64__)
    if (getenv("OPENBLAS_CORETYPE")) return 0;
    corename_fn corename = (corename_fn)dlsym(RTLD_DEFAULT, "openblas_get_corename");
    void_fn quit = (void_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    void_fn init = (void_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    if (!corename || !quit || !init) return 0;
    __builtin_cpu_init();
    const char *want = 0;
    int wanted = 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        // Cooperlake's single-precision kernels are SkylakeX's; an older library knows only the latter.
        want = "SkylakeX";
        wanted = 2;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        want = "Haswell";
        wanted = 1;
    }
    if (!want || kernel_class(corename()) >= wanted) return 0;
    // gotoblas_dynamic_init reads OPENBLAS_CORETYPE, as it does at load.
    setenv("OPENBLAS_CORETYPE", want, 1);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    if (kernel_class(corename()) >= wanted) return 1;
    // A library that lacks those kernels: back to its own choice.
    quit();
    init();
#endif
    return 0;
}
