// Compiled (not linked) by tests/nn/check_warnings.cmake: including the runtime and instantiating
// Eigen's products must not warn (GCC 12's false -Wmaybe-uninitialized inside Eigen's AVX-512
// code is silenced by prune/nn/eigen.hpp), while this file's own uninitialised read must still
// warn: the header's diagnostic pragmas are pushed and popped, not left switched off.
#include <prune/nn/attention.hpp>  // every header of the runtime

template void prune::nn::gemm_on<float>(bool, bool, bool, int, int, int, float, const float*, int, const float*, int,
                                        float, float*, int);
template void prune::nn::gemm_on<double>(bool, bool, bool, int, int, int, double, const double*, int, const double*,
                                         int, double, double*, int);

int users_own_uninitialised_read() {
    int never_set;
    return never_set;  // must warn: -Wuninitialized
}
