// Linked into every test executable that uses the runtime (tests/CMakeLists.txt): makes OpenBLAS
// single-threaded before main(), as nn::setup_process does in the binaries, so that the tests
// run the products the binaries run (prune/nn/gemm.hpp uses OpenBLAS only when single-threaded).
#include <prune/nn/process.hpp>

namespace {
const bool blas_single_threaded = (prune::nn::blas_single_threaded(), true);
}  // namespace
