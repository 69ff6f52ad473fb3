// prune/nn/gemm.hpp: the one matrix-product front of the runtime, for float and double:
// C = alpha op(A) op(B) + beta C, row-major, op = transpose or not, computed by OpenBLAS when
// the process has it and it is single-threaded, else by Eigen; and the ways a product is split
// over the thread pool without changing its bits.
//
// Back-end (a run-time switch: every translation unit compiles the same inline bodies,
// whatever the build found): the CBLAS entry points are looked up once in the running
// process (dlsym). A program linked with OpenBLAS (CMake target prune::nn does that when it
// finds one) has them. gemm_backend::automatic sends a product to OpenBLAS when OpenBLAS runs
// single-threaded (the pool does the threading; a multi-threaded OpenBLAS under a pool would
// oversubscribe the cores and round some products differently) and, for float, when its
// kernels are as wide as this CPU's vectors and the product has at least 2^21 multiply-adds
// (smaller ones stay in Eigen: call overhead dominates them); doubles always go to OpenBLAS
// then. Binaries make OpenBLAS single-threaded with nn::setup_process (prune/nn/process.hpp);
// a program that does not gets Eigen's products: the same results to rounding, other bits.
//
// Determinism: a split product gives the bits of the unsplit one on any pool size. OpenBLAS's
// AVX-512 sgemm kernels (SkylakeX, also used for Cooperlake / Sapphire Rapids) give the same
// bits for any row or column block, so there a product is cut into one block per thread;
// Eigen's GEBP kernel sums a tail row or column of a block in another order than a full panel,
// and OpenBLAS's Haswell / Prescott kernels differ too, so there it is cut into fixed blocks
// that depend on its shape and the machine's core count only (gemm_tiling), shared out over
// the pool. docs/nn.md has the rules and docs/bert.md the measurements behind the thresholds.
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/nn/threads.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

namespace prune::nn {

/// Which library computes a matrix product.
enum class gemm_backend {
    automatic,  ///< OpenBLAS when present, single-threaded and fast for the product (see above), else Eigen
    blas,       ///< OpenBLAS whenever the process has a CBLAS (else Eigen)
    eigen,      ///< Eigen's own product
};

/// The CBLAS / OpenBLAS entry points of the running process (null when absent).
struct blas_library {
    /// cblas_sgemm's signature (enums and blasint as int: the LP64 ABI).
    using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                              int);
    /// cblas_dgemm's signature.
    using dgemm_fn = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int, double,
                              double*, int);
    sgemm_fn sgemm = nullptr;                       ///< cblas_sgemm
    dgemm_fn dgemm = nullptr;                       ///< cblas_dgemm
    char* (*core_name)() = nullptr;                 ///< openblas_get_corename
    int (*get_threads)() = nullptr;                 ///< openblas_get_num_threads
    void (*set_threads)(int) = nullptr;             ///< openblas_set_num_threads

    /// The process's library, looked up once.
    [[nodiscard]] static const blas_library& get() {
        static const blas_library library = [] {
            blas_library b;
#if defined(__unix__) || defined(__APPLE__)
            b.sgemm = reinterpret_cast<sgemm_fn>(dlsym(RTLD_DEFAULT, "cblas_sgemm"));
            b.dgemm = reinterpret_cast<dgemm_fn>(dlsym(RTLD_DEFAULT, "cblas_dgemm"));
            b.core_name = reinterpret_cast<char* (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
            b.get_threads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
            b.set_threads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
#endif
            return b;
        }();
        return library;
    }
};

/// True when the process has a CBLAS (sgemm and dgemm) to call.
[[nodiscard]] inline bool have_blas() { return blas_library::get().sgemm != nullptr && blas_library::get().dgemm != nullptr; }

/// The OpenBLAS kernel family in use ("SkylakeX", "Haswell", "Prescott", ...; "" without OpenBLAS).
[[nodiscard]] inline std::string blas_core() {
    const auto& b = blas_library::get();
    const char* name = b.core_name != nullptr ? b.core_name() : nullptr;
    return name != nullptr ? std::string(name) : std::string();
}

/// True when OpenBLAS runs each call on the calling thread only (what the pool needs).
[[nodiscard]] inline bool blas_single_threaded_now() {
    const auto& b = blas_library::get();
    return b.get_threads != nullptr && b.get_threads() == 1;
}

/// True when OpenBLAS's kernels are as wide as this CPU's vectors. OpenBLAS 0.3.21 does not know
/// recent CPUs (e.g. Xeon model 207) and falls back to SSE3 "Prescott" kernels, ~4x slower than
/// Eigen with AVX-512; nn::reexec_for_fast_blas (prune/nn/process.hpp) fixes that for binaries.
[[nodiscard]] inline bool blas_is_fast() {
    static const bool fast = [] {
        if (!have_blas()) {
            return false;
        }
        const std::string core = blas_core();
        const bool avx512 = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
        const bool avx2 = avx512 || core == "Haswell" || core == "Zen";
#if defined(__x86_64__) || defined(__i386__)
        if (__builtin_cpu_supports("avx512f")) {
            return avx512 || avx2;
        }
        if (__builtin_cpu_supports("avx2")) {
            return avx2;
        }
#endif
        return !core.empty();
    }();
    return fast;
}

/// Whether a product of m x n x k multiply-adds in scalar S goes to OpenBLAS (see the header
/// comment). Decided for a whole product, never for a block of one, so a split product uses the
/// library its whole would.
template <class S>
[[nodiscard]] bool uses_blas(gemm_backend backend, int m, int n, int k) {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "nn::gemm: float or double");
    if (backend == gemm_backend::eigen || !have_blas()) {
        return false;
    }
    if (backend == gemm_backend::blas) {
        return true;
    }
    if (!blas_single_threaded_now()) {
        return false;
    }
    if constexpr (std::is_same_v<S, float>) {
        return blas_is_fast() && static_cast<double>(m) * n * k >= 2097152.0;
    } else {
        return true;
    }
}

/// True when a product split into row or column blocks gives the bits of the whole product
/// whatever the blocks: OpenBLAS's AVX-512 sgemm kernels (SkylakeX, and Cooperlake / Sapphire
/// Rapids, which use them), whose every row and column tail keeps the k order of the full tiles
/// (checked at 1 to 4 threads over the BERT training pass's shapes and odd ones,
/// tests/nn/test_gemm). Not Eigen, nor OpenBLAS's Haswell or Prescott kernels, nor dgemm.
template <class S>
[[nodiscard]] bool blas_split_invariant() {
    if constexpr (std::is_same_v<S, float>) {
        static const bool invariant = [] {
            const std::string core = blas_core();
            return core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
        }();
        return invariant;
    } else {
        return false;
    }
}

/// C[m,n] = alpha * op(A) op(B) + beta * C, row-major (leading dimensions lda, ldb, ldc), op =
/// transpose when the flag is set; on OpenBLAS when `blas` (and the process has it), else Eigen.
/// beta = 0 never reads C. Single-threaded.
template <class S>
void gemm_on(bool blas, bool trans_a, bool trans_b, int m, int n, int k, S alpha, const S* a, int lda, const S* b,
             int ldb, S beta, S* c, int ldc) {
    if (m <= 0 || n <= 0) return;
    using cmap = Eigen::Map<const row_matrix<S>, 0, Eigen::OuterStride<>>;
    using map = Eigen::Map<row_matrix<S>, 0, Eigen::OuterStride<>>;
    map cm(c, m, n, Eigen::OuterStride<>(ldc));
    if (k <= 0) {
        if (beta == S{0}) cm.setZero(); else cm *= beta;
        return;
    }
    if (blas) {
        constexpr int row_major = 101, no_trans = 111, trans = 112;  // CBLAS's enum values
        const auto& lib = blas_library::get();
        if constexpr (std::is_same_v<S, float>) {
            if (lib.sgemm != nullptr) {
                lib.sgemm(row_major, trans_a ? trans : no_trans, trans_b ? trans : no_trans, m, n, k, alpha, a, lda, b,
                          ldb, beta, c, ldc);
                return;
            }
        } else {
            if (lib.dgemm != nullptr) {
                lib.dgemm(row_major, trans_a ? trans : no_trans, trans_b ? trans : no_trans, m, n, k, alpha, a, lda, b,
                          ldb, beta, c, ldc);
                return;
            }
        }
    }
    if (beta == S{0}) cm.setZero(); else if (beta != S{1}) cm *= beta;
    const cmap am = trans_a ? cmap(a, k, m, Eigen::OuterStride<>(lda)) : cmap(a, m, k, Eigen::OuterStride<>(lda));
    const cmap bm = trans_b ? cmap(b, n, k, Eigen::OuterStride<>(ldb)) : cmap(b, k, n, Eigen::OuterStride<>(ldb));
    if (trans_a && trans_b) cm.noalias() += alpha * am.transpose() * bm.transpose();
    else if (trans_a) cm.noalias() += alpha * am.transpose() * bm;
    else if (trans_b) cm.noalias() += alpha * am * bm.transpose();
    else cm.noalias() += alpha * am * bm;
}

/// C[m,n] = alpha * op(A) op(B) + beta * C on the calling thread, on the back-end `backend`
/// picks for the whole product (uses_blas).
template <class S>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, S alpha, const S* a, int lda, const S* b, int ldb, S beta,
          S* c, int ldc, gemm_backend backend = gemm_backend::automatic) {
    gemm_on<S>(uses_blas<S>(backend, m, n, k), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// The operands of one product (as gemm()'s arguments), for split_gemm and gemm_pair.
template <class S>
struct gemm_call {
    bool trans_a;   ///< op(A) = A^T
    bool trans_b;   ///< op(B) = B^T
    int m;          ///< rows of C
    int n;          ///< columns of C
    int k;          ///< inner dimension
    S alpha;        ///< scale of the product
    const S* a;     ///< A
    int lda;        ///< A's leading dimension
    const S* b;     ///< B
    int ldb;        ///< B's leading dimension
    S beta;         ///< scale of C before the product is added (0: C is not read)
    S* c;           ///< C
    int ldc;        ///< C's leading dimension
    gemm_backend backend = gemm_backend::automatic;  ///< back-end rule for the whole product
};

/// A split of C into blocks for a product whose split is not bit-invariant: the blocks depend on
/// m, n, k and the machine's core count only -- never on the pool -- and the pool only shares
/// them out, so every thread count sums every element of C in the same order. Row blocks of
/// whole 48-row units (a multiple of Eigen's GEBP panel height on SSE, AVX2 and AVX-512) when C
/// has at least as many rows as columns, else column blocks of 16-column units; as many blocks
/// as the machine has cores (at most 16), each of at least 4 units (every block packs the other
/// operand again: finer blocks cost ~15% at BERT-base on Eigen), one for products under 2^20
/// multiply-adds (not worth splitting). A pool of all the cores thus runs one block per thread.
struct gemm_tiling {
    bool by_rows = true;  ///< row blocks (else column blocks)
    int unit = 48;        ///< rows or columns per unit
    int units = 1;        ///< units along the split dimension
    int tiles = 1;        ///< blocks; block t holds units [units t / tiles, units (t + 1) / tiles)

    /// The tiling of an m x n x k product.
    [[nodiscard]] static gemm_tiling of(int m, int n, int k) {
        gemm_tiling g;
        g.by_rows = m >= n;
        g.unit = g.by_rows ? 48 : 16;
        const int extent = g.by_rows ? m : n;
        g.units = (extent + g.unit - 1) / g.unit;
        const double work = static_cast<double>(m) * n * k;
        static const int cores = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 16);
        g.tiles = work < 1048576.0 ? 1 : std::clamp(g.units / 4, 1, cores);
        return g;
    }
    /// First row (or column) of block t, for t in [0, tiles]; `extent` = m or n.
    [[nodiscard]] int begin(int t, int extent) const {
        return std::min(extent, static_cast<int>(static_cast<std::int64_t>(units) * t / tiles) * unit);
    }
};

/// The rows [r0, r1) of product g (a row block of C).
template <class S>
void gemm_rows(bool blas, const gemm_call<S>& g, std::int64_t r0, std::int64_t r1) {
    const S* ab = g.trans_a ? g.a + r0 : g.a + r0 * g.lda;
    gemm_on<S>(blas, g.trans_a, g.trans_b, static_cast<int>(r1 - r0), g.n, g.k, g.alpha, ab, g.lda, g.b, g.ldb, g.beta,
               g.c + r0 * g.ldc, g.ldc);
}

/// The columns [c0, c1) of product g (a column block of C).
template <class S>
void gemm_columns(bool blas, const gemm_call<S>& g, std::int64_t c0, std::int64_t c1) {
    const S* bb = g.trans_b ? g.b + c0 * g.ldb : g.b + c0;
    gemm_on<S>(blas, g.trans_a, g.trans_b, g.m, static_cast<int>(c1 - c0), g.k, g.alpha, g.a, g.lda, bb, g.ldb, g.beta,
               g.c + c0, g.ldc);
}

/// Computes blocks [t0, t1) of the tiling of g (one gemm_on call per block, in order).
template <class S>
void gemm_tiles(bool blas, const gemm_tiling& tiling, const gemm_call<S>& g, int t0, int t1) {
    for (int t = t0; t < t1; ++t) {
        if (tiling.by_rows) {
            gemm_rows<S>(blas, g, tiling.begin(t, g.m), tiling.begin(t + 1, g.m));
        } else {
            gemm_columns<S>(blas, g, tiling.begin(t, g.n), tiling.begin(t + 1, g.n));
        }
    }
}

/// How split_gemm cuts a product (see there); rows_done(r0, r1) runs on the thread that computed
/// rows [r0, r1) of C, right after it (row blocks only), so a row-wise epilogue finds them in cache.
struct gemm_split {
    bool blas = false;       ///< computed by OpenBLAS
    bool invariant = false;  ///< OpenBLAS with split-invariant kernels: one block per thread
    bool by_rows = true;     ///< row blocks (else column blocks: an epilogue must wait for all)
    gemm_tiling tiling;      ///< the fixed blocks (when not invariant)
};

/// The product g, split over the pool when it is large (null pool: on the caller), with bits
/// that do not depend on the pool's size. OpenBLAS with split-invariant kernels (the fast path):
/// one call on one thread, else one row block per thread when C has at least as many rows as
/// columns, else column blocks (multiples of 16), so the operand every block must pack in full is
/// the smaller one. Otherwise the fixed blocks of gemm_tiling, shared out over the pool. With a
/// row split, rows_done(r0, r1) is called for each row block by the thread that computed it;
/// with a column split (or none), once for all rows after the product. Returns true when the
/// epilogue ran per row block.
template <class S, class RowsDone>
bool split_gemm(thread_pool* pool, const gemm_call<S>& g, RowsDone&& rows_done) {
    const int m = g.m, n = g.n, k = g.k;
    if (m <= 0) return true;
    if (n <= 0) {
        rows_done(std::int64_t{0}, std::int64_t{m});
        return false;
    }
    const bool blas = uses_blas<S>(g.backend, m, n, k);
    const int threads = pool != nullptr ? pool->size() : 1;
    if (blas && blas_split_invariant<S>()) {
        const bool by_rows = m >= n && m >= 4 * threads;
        const bool by_columns = !by_rows && n >= 16 * threads;
        if (threads == 1 || static_cast<double>(m) * n * k < 1048576.0 || (!by_rows && !by_columns)) {
            gemm_rows<S>(blas, g, 0, m);
            rows_done(std::int64_t{0}, std::int64_t{m});
            return false;
        }
        if (by_rows) {
            pool->parallel_for(m, [&](std::int64_t r0, std::int64_t r1) {
                gemm_rows<S>(blas, g, r0, r1);
                rows_done(r0, r1);
            });
            return true;
        }
        pool->parallel_for((n + 15) / 16, [&](std::int64_t b0, std::int64_t b1) {
            gemm_columns<S>(blas, g, b0 * 16, std::min<std::int64_t>(n, b1 * 16));
        });
        rows_done(std::int64_t{0}, std::int64_t{m});
        return false;
    }
    const gemm_tiling tiling = gemm_tiling::of(m, n, k);
    if (threads == 1 || tiling.tiles == 1) {
        gemm_tiles<S>(blas, tiling, g, 0, tiling.tiles);
        rows_done(std::int64_t{0}, std::int64_t{m});
        return false;
    }
    pool->parallel_for(tiling.tiles, [&](std::int64_t t0, std::int64_t t1) {
        gemm_tiles<S>(blas, tiling, g, static_cast<int>(t0), static_cast<int>(t1));
        if (tiling.by_rows) rows_done(tiling.begin(static_cast<int>(t0), m), tiling.begin(static_cast<int>(t1), m));
    });
    if (!tiling.by_rows) rows_done(std::int64_t{0}, std::int64_t{m});
    return tiling.by_rows;
}

/// split_gemm without an epilogue.
template <class S>
void split_gemm(thread_pool* pool, const gemm_call<S>& g) {
    split_gemm<S>(pool, g, [](std::int64_t, std::int64_t) {});
}

/// gemm() split over blocks of C on the pool when the product is large, with the bits of the
/// same call at any pool size (see split_gemm).
template <class S>
void parallel_gemm(thread_pool& pool, bool trans_a, bool trans_b, int m, int n, int k, S alpha, const S* a, int lda,
                   const S* b, int ldb, S beta, S* c, int ldc, gemm_backend backend = gemm_backend::automatic) {
    split_gemm<S>(&pool, gemm_call<S>{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, backend});
}

/// Runs two independent products (y may be null). On a pool of two threads each runs on its own
/// thread (as split_gemm would on one thread) -- no operand is packed twice and a backward
/// pass's data-gradient and weight-gradient products come in pairs of equal size; otherwise one
/// after the other, each split over the pool. The bits do not depend on the pool's size.
template <class S>
void gemm_pair(thread_pool& pool, const gemm_call<S>& x, const gemm_call<S>* y) {
    if (y != nullptr && pool.size() == 2) {
        pool.parallel_tasks(2, [&](std::int64_t i, int) { split_gemm<S>(nullptr, i == 0 ? x : *y); });
        return;
    }
    for (const gemm_call<S>* g : {&x, y}) {
        if (g != nullptr) split_gemm<S>(&pool, *g);
    }
}

}  // namespace prune::nn
