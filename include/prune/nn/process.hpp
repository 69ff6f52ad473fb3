// prune/nn/process.hpp: process-wide set-up for programs that run the runtime: OpenBLAS's
// threading and kernel family. Nothing in the library calls these; a binary calls
// nn::setup_process(argv) first thing in main() (every binary of examples/ and benchmarks/ does).
//
// What a program gets without it: correct results. OpenBLAS keeps its own threading, so the
// GEMM front (prune/nn/gemm.hpp) leaves it alone and uses Eigen's products (a multi-threaded
// OpenBLAS under the runtime's thread pool would oversubscribe the cores and round some
// products differently at different thread counts): the results then differ from a set-up
// program's in the last bits, and the speed is Eigen's. A program that wants OpenBLAS but
// not the re-exec calls blas_single_threaded() alone.
#pragma once

#include <prune/nn/gemm.hpp>

#include <cstdlib>

#if defined(__linux__)
#include <unistd.h>
#endif

namespace prune::nn {

/// Makes OpenBLAS run each call on the calling thread only (process-wide; the pool threads above
/// it). No-op without OpenBLAS.
inline void blas_single_threaded() {
    if (const auto set = blas_library::get().set_threads) set(1);
}

/// Lets OpenBLAS thread its own calls over `threads` threads (process-wide). The GEMM front then
/// uses Eigen for gemm_backend::automatic (see prune/nn/gemm.hpp).
inline void blas_threads(int threads) {
    if (const auto set = blas_library::get().set_threads) set(threads);
}

/// When OpenBLAS fell back to its generic SSE3 ("Prescott") kernels on a CPU with AVX-512 or
/// AVX2, re-executes the program (execv of /proc/self/exe with the same argv) with
/// OPENBLAS_CORETYPE set (SkylakeX / Haswell), which OpenBLAS reads only when it is loaded.
/// Returns normally when nothing is to be done, when OPENBLAS_CORETYPE or PRUNE_NO_REEXEC is
/// set, or if exec fails. Linux x86 only (elsewhere a no-op).
inline void reexec_for_fast_blas([[maybe_unused]] char** argv) {
#if defined(__linux__) && (defined(__x86_64__) || defined(__i386__))
    if (!have_blas() || std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("PRUNE_NO_REEXEC") != nullptr ||
        blas_core() != "Prescott") {
        return;
    }
    const char* target = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                         : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                           : nullptr;
    if (target == nullptr) {
        return;
    }
    ::setenv("OPENBLAS_CORETYPE", target, 1);
    ::execv("/proc/self/exe", argv);
    ::unsetenv("OPENBLAS_CORETYPE");  // exec failed: carry on with what we have
#endif
}

/// For main() of a program: reexec_for_fast_blas(argv), then blas_single_threaded().
inline void setup_process(char** argv) {
    reexec_for_fast_blas(argv);
    blas_single_threaded();
}

}  // namespace prune::nn
