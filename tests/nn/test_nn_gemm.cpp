// The GEMM front and the thread pool (include/prune/nn/gemm.hpp, threads.hpp): split products give
// the bits of the unsplit product on any pool, with whatever back-end this build and CPU use
// (Eigen; OpenBLAS's SSE3 kernels; OpenBLAS SkylakeX with OPENBLAS_CORETYPE=SkylakeX); the
// back-end is found at run time (OpenBLAS in a binary linked with it, used by `automatic` only
// while it is single-threaded); OpenBLAS and Eigen agree to rounding in float and double; the
// pool's parallel helpers allocate nothing per call.
#include <prune/nn/gemm.hpp>
#include <prune/nn/process.hpp>

#include "../support/bits.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <vector>

extern std::atomic<std::size_t> g_allocations;  // tests/backward/alloc_counter.cpp

using namespace prune;

using prune_test::bits_differ;

TEST_CASE("split products give the bits of the unsplit product on any pool", "[nn][gemm][threads]") {
    // Shapes of the BERT training pass (rows = tokens) and odd ones; each >= 2^20 multiply-adds,
    // so the pool splits them: by rows when m >= n, else by columns. Before the split was made
    // independent of the pool, Eigen's blocks rounded their last rows / columns differently from
    // the whole (m 100 n 128 k 300: 2,886 of 12,800 elements), and OpenBLAS-sized products went
    // to Eigen block by block (m 100 n 300 k 128 with OPENBLAS_CORETYPE=SkylakeX).
    struct shape {
        bool ta, tb;
        int m, n, k;
    };
    const shape shapes[] = {{false, true, 576, 384, 128}, {false, false, 576, 128, 256}, {true, false, 128, 256, 576},
                            {false, false, 100, 128, 300}, {false, true, 100, 300, 128}, {false, true, 37, 1000, 128},
                            {true, false, 200, 300, 999},  {false, true, 1001, 77, 129}, {true, true, 250, 250, 250}};
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    nn::thread_pool p1(1), p2(2), p3(3);
    for (const shape& s : shapes) {
        const int ar = s.ta ? s.k : s.m, ac = s.ta ? s.m : s.k, br = s.tb ? s.n : s.k, bc = s.tb ? s.k : s.n;
        std::vector<float> a(static_cast<std::size_t>(ar) * ac), b(static_cast<std::size_t>(br) * bc),
            c0(static_cast<std::size_t>(s.m) * s.n);
        for (auto* v : {&a, &b, &c0})
            for (float& x : *v) x = normal(rng);
        for (const float beta : {0.0f, 1.0f}) {
            std::vector<float> c1 = c0, c2 = c0, c3 = c0;
            nn::parallel_gemm<float>(p1, s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, c1.data(), s.n);
            nn::parallel_gemm<float>(p2, s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, c2.data(), s.n);
            nn::parallel_gemm<float>(p3, s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, c3.data(), s.n);
            INFO("m " << s.m << " n " << s.n << " k " << s.k << " trans " << s.ta << s.tb << " beta " << beta);
            CHECK(bits_differ(c1.data(), c2.data(), c1.size()) == 0);
            CHECK(bits_differ(c1.data(), c3.data(), c1.size()) == 0);
            // gemm_pair: on two threads each product runs whole on its own thread.
            std::vector<float> d1 = c0, d2 = c0, e1 = c0, e2 = c0;
            const nn::gemm_call<float> x1{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, d1.data(), s.n};
            const nn::gemm_call<float> y1{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, e1.data(), s.n};
            const nn::gemm_call<float> x2{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, d2.data(), s.n};
            const nn::gemm_call<float> y2{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, e2.data(), s.n};
            nn::gemm_pair(p1, x1, &y1);
            nn::gemm_pair(p2, x2, &y2);
            CHECK(bits_differ(c1.data(), d1.data(), c1.size()) == 0);
            CHECK(bits_differ(c1.data(), d2.data(), c1.size()) == 0);
            CHECK(bits_differ(c1.data(), e2.data(), c1.size()) == 0);
            // With a row epilogue: the rows reach it once each, and the product's bits are unchanged.
            std::vector<float> f = c0;
            std::vector<int> seen(static_cast<std::size_t>(s.m), 0);
            nn::split_gemm<float>(&p2, nn::gemm_call<float>{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc,
                                                            beta, f.data(), s.n},
                                  [&](std::int64_t r0, std::int64_t r1) {
                                      for (auto r = r0; r < r1; ++r) ++seen[static_cast<std::size_t>(r)];
                                  });
            CHECK(bits_differ(c1.data(), f.data(), c1.size()) == 0);
            CHECK(std::count(seen.begin(), seen.end(), 1) == s.m);
        }
    }
}

TEST_CASE("the back-end is found at run time; automatic uses OpenBLAS only while it is single-threaded", "[nn][gemm]") {
#if defined(PRUNE_TEST_EXPECT_BLAS)
    CHECK(nn::have_blas());  // this test binary is linked with OpenBLAS (CMake found it)
#else
    CHECK_FALSE(nn::have_blas());
#endif
    CHECK_FALSE(nn::uses_blas<double>(nn::gemm_backend::eigen, 64, 64, 64));
    if (!nn::have_blas()) return;
    CHECK(nn::uses_blas<float>(nn::gemm_backend::blas, 2, 2, 2));
    nn::blas_threads(2);
    CHECK_FALSE(nn::blas_single_threaded_now());
    CHECK_FALSE(nn::uses_blas<double>(nn::gemm_backend::automatic, 512, 512, 512));
    nn::blas_single_threaded();
    CHECK(nn::blas_single_threaded_now());
    CHECK(nn::uses_blas<double>(nn::gemm_backend::automatic, 512, 512, 512));
    CHECK_FALSE(nn::uses_blas<float>(nn::gemm_backend::automatic, 16, 16, 16));  // small: Eigen
}

TEST_CASE("OpenBLAS and Eigen agree to rounding, every transpose, float and double", "[nn][gemm]") {
    std::mt19937 rng(3);
    std::normal_distribution<double> normal(0.0, 1.0);
    const int m = 37, n = 29, k = 53;
    for (const bool ta : {false, true}) {
        for (const bool tb : {false, true}) {
            std::vector<double> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n)),
                c(static_cast<std::size_t>(m * n));
            for (auto* v : {&a, &b, &c})
                for (double& x : *v) x = normal(rng);
            std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), cf(c.begin(), c.end());
            const int lda = ta ? m : k, ldb = tb ? k : n;
            // Naive truth in double.
            std::vector<double> want = c;
            for (int i = 0; i < m; ++i)
                for (int j = 0; j < n; ++j) {
                    double s = 0.0;
                    for (int p = 0; p < k; ++p)
                        s += a[static_cast<std::size_t>(ta ? p * lda + i : i * lda + p)] *
                             b[static_cast<std::size_t>(tb ? j * ldb + p : p * ldb + j)];
                    want[static_cast<std::size_t>(i * n + j)] = 0.5 * s + 0.25 * c[static_cast<std::size_t>(i * n + j)];
                }
            for (const bool blas : {false, true}) {
                std::vector<double> cd = c;
                std::vector<float> cfl = cf;
                nn::gemm_on<double>(blas, ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 0.25, cd.data(), n);
                nn::gemm_on<float>(blas, ta, tb, m, n, k, 0.5f, af.data(), lda, bf.data(), ldb, 0.25f, cfl.data(), n);
                for (std::size_t i = 0; i < want.size(); ++i) {
                    INFO("trans " << ta << tb << (blas ? " OpenBLAS" : " Eigen") << " element " << i);
                    CHECK(cd[i] == Approx(want[i]).margin(1e-12));
                    CHECK(cfl[i] == Approx(want[i]).margin(2e-5));  // float: k = 53 terms of ~1
                }
            }
        }
    }
}

TEST_CASE("the pool's parallel helpers allocate nothing per call", "[nn][threads]") {
    nn::thread_pool pool(2);
    std::vector<double> out(1000, 0.0);
    std::atomic<int> tasks{0};
    auto round = [&] {
        pool.parallel_for(1000, [&](std::int64_t a, std::int64_t b) {
            for (auto i = a; i < b; ++i) out[static_cast<std::size_t>(i)] += 1.0;
        });
        pool.parallel_tasks(17, [&](std::int64_t, int) { tasks.fetch_add(1); });
        pool.for_rows(1000, 100, [&](std::size_t r) { out[r] += 1.0; });
        pool.for_columns(1000, 100, [&](int, int) {});
    };
    round();  // warm-up (the pool's threads already exist)
    const std::size_t before = g_allocations.load();
    for (int i = 0; i < 10; ++i) round();
    CHECK(g_allocations.load() == before);
    CHECK(out[0] == 22.0);
    CHECK(tasks.load() == 11 * 17);
}
