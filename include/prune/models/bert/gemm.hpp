// prune/models/bert/gemm.hpp: the one matrix product the BERT forward pass is made of,
// C = alpha * A B^T + beta * C with A [M, K], B [N, K] and C [M, N] row-major (B is a
// weight in HF's [out, in] orientation), single-threaded: the caller splits the work.
//
// Back-ends: OpenBLAS's sgemm through CBLAS (when the build found it: PRUNE_HAVE_CBLAS)
// and Eigen's own product. The forward pass runs OpenBLAS at one thread per call and
// threads over row blocks itself (see docs/bert.md for the measurements behind this).
#pragma once

#include <prune/error.hpp>

#include <prune/models/bert/eigen.hpp>

#include <cstdlib>
#include <string>

#if defined(__linux__)
#include <unistd.h>
#endif

#if defined(PRUNE_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace prune::bert {

/// Which library computes the matrix products.
enum class gemm_backend {
    automatic,  ///< blas when OpenBLAS runs kernels for this CPU's vector width, else eigen
    blas,       ///< OpenBLAS sgemm via CBLAS (falls back to eigen when unavailable)
    eigen,      ///< Eigen's own GEMM
};

/// True when the build has a CBLAS (OpenBLAS) to call.
[[nodiscard]] constexpr bool have_blas() noexcept {
#if defined(PRUNE_HAVE_CBLAS)
    return true;
#else
    return false;
#endif
}

#if defined(PRUNE_HAVE_CBLAS)
extern "C" char* openblas_get_corename(void);
#endif

/// The OpenBLAS kernel family in use ("SkylakeX", "Haswell", "Prescott", ...; "" without OpenBLAS).
[[nodiscard]] inline std::string blas_core() {
#if defined(PRUNE_HAVE_CBLAS)
    const char* name = openblas_get_corename();
    return name != nullptr ? std::string(name) : std::string();
#else
    return {};
#endif
}

/// True when OpenBLAS uses kernels as wide as the code was compiled for. OpenBLAS 0.3.21 does
/// not know recent CPUs (e.g. Xeon model 207) and falls back to SSE3 "Prescott" kernels, 4x
/// slower than Eigen at -march=native; set OPENBLAS_CORETYPE=SkylakeX (or Haswell) to fix that.
[[nodiscard]] inline bool blas_is_fast() {
    if (!have_blas()) {
        return false;
    }
    const std::string core = blas_core();
    const bool avx512 = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
    [[maybe_unused]] const bool avx2 = avx512 || core == "Haswell" || core == "Zen" || core == "SkylakeX";
#if defined(__AVX512F__)
    return avx512 || avx2;
#elif defined(__AVX2__)
    return avx2;
#else
    return !core.empty();
#endif
}

/// Resolves `automatic` to blas or eigen (and blas to eigen when there is no CBLAS).
[[nodiscard]] inline gemm_backend resolve(gemm_backend backend) {
    if (backend == gemm_backend::automatic) {
        return blas_is_fast() ? gemm_backend::blas : gemm_backend::eigen;
    }
    return have_blas() ? backend : gemm_backend::eigen;
}

/// For main() of a program: when OpenBLAS fell back to its generic SSE3 ("Prescott") kernels
/// on a CPU with AVX-512 or AVX2, re-executes the program with OPENBLAS_CORETYPE set
/// (SkylakeX / Haswell), which OpenBLAS reads only when it is loaded. Returns normally when
/// nothing is to be done, when OPENBLAS_CORETYPE or PRUNE_NO_REEXEC is set, or if exec fails.
inline void reexec_for_fast_blas([[maybe_unused]] char** argv) {
#if defined(PRUNE_HAVE_CBLAS) && defined(__linux__) && (defined(__x86_64__) || defined(__i386__))
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("PRUNE_NO_REEXEC") != nullptr ||
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

/// Makes OpenBLAS run each call on the calling thread only (the pool threads above it).
inline void blas_single_threaded() noexcept {
#if defined(PRUNE_HAVE_CBLAS)
    openblas_set_num_threads(1);
#endif
}

/// Lets OpenBLAS thread its own calls over `threads` threads.
inline void blas_threads(int threads) noexcept {
#if defined(PRUNE_HAVE_CBLAS)
    openblas_set_num_threads(threads);
#else
    (void)threads;
#endif
}

/// C[M, N] = alpha * A[M, K] * B[N, K]^T + beta * C (row-major, leading dimensions lda, ldb, ldc).
inline void gemm_nt(gemm_backend backend, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                    int ldb, float beta, float* c, int ldc) {
    if (m <= 0 || n <= 0) {
        return;
    }
    if (k <= 0) {
        using map = Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                               Eigen::OuterStride<>>;
        map cm(c, m, n, Eigen::OuterStride<>(ldc));
        if (beta == 0.0f) {
            cm.setZero();
        } else {
            cm *= beta;
        }
        return;
    }
#if defined(PRUNE_HAVE_CBLAS)
    if (backend == gemm_backend::blas) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#else
    (void)backend;
#endif
    using const_map = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                                 Eigen::OuterStride<>>;
    using map = Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                           Eigen::OuterStride<>>;
    const_map am(a, m, k, Eigen::OuterStride<>(lda));
    const_map bm(b, n, k, Eigen::OuterStride<>(ldb));
    map cm(c, m, n, Eigen::OuterStride<>(ldc));
    if (beta == 0.0f) {
        cm.noalias() = alpha * am * bm.transpose();
    } else {
        if (beta != 1.0f) {
            cm *= beta;
        }
        cm.noalias() += alpha * am * bm.transpose();
    }
}

/// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C (row-major), used for probabilities x values.
inline void gemm_nn(gemm_backend backend, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                    int ldb, float beta, float* c, int ldc) {
    if (m <= 0 || n <= 0) {
        return;
    }
#if defined(PRUNE_HAVE_CBLAS)
    if (backend == gemm_backend::blas && k > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#else
    (void)backend;
#endif
    using const_map = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                                 Eigen::OuterStride<>>;
    using map = Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                           Eigen::OuterStride<>>;
    map cm(c, m, n, Eigen::OuterStride<>(ldc));
    if (beta == 0.0f) {
        cm.setZero();
    } else if (beta != 1.0f) {
        cm *= beta;
    }
    if (k > 0) {
        const_map am(a, m, k, Eigen::OuterStride<>(lda));
        const_map bm(b, k, n, Eigen::OuterStride<>(ldb));
        cm.noalias() += alpha * am * bm;
    }
}

}  // namespace prune::bert
