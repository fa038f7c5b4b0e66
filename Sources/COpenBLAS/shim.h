#include <cblas.h>
// OpenBLAS extension: how many threads its own pool may use.
void openblas_set_num_threads(int num_threads);
