// tests/sparsify/test_sparsify_sparsegpt.cpp: SparseGPT's pieces against closed forms and
// properties: U^T U A = I for the inverse Cholesky factor, the OBS reconstruction lowers the
// layer's output error ||(W - W') X^T|| for masks from every method, 16-bit weights, bad input.
// (The comparison with the reference code is test_sparsify_sparsegpt_torch.cpp.)
#include <prune/importance/scores.hpp>
#include <prune/sparsify/masks.hpp>
#include <prune/sparsify/sparsegpt.hpp>
#include <prune/sparsify/statistics.hpp>

#include <catch2/catch.hpp>

#include "support.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace sp = prune::sparsify;

namespace {

using sparsify_test::error_of;
using sparsify_test::random_spd;
using sparsify_test::random_values;

/// max |U^T U A - I| and the largest |U_ij| below the diagonal.
template <class S>
std::pair<double, double> check_factor(const std::vector<S>& u, const std::vector<double>& a, std::size_t n) {
    std::vector<double> utu(n * n, 0.0);
    double below = 0;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < i; ++j) below = std::max(below, std::fabs(static_cast<double>(u[i * n + j])));
    }
    for (std::size_t k = 0; k < n; ++k) {
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < n; ++j) utu[i * n + j] += static_cast<double>(u[k * n + i]) * u[k * n + j];
        }
    }
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0;
            for (std::size_t k = 0; k < n; ++k) s += utu[i * n + k] * a[k * n + j];
            worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
        }
    }
    return {worst, below};
}

/// ||(W - W') X^T||_F^2 with X [tokens, n].
double output_error(const std::vector<double>& w, const std::vector<double>& w2, const std::vector<double>& x,
                    std::size_t rows, std::size_t n) {
    const std::size_t tokens = x.size() / n;
    double total = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t t = 0; t < tokens; ++t) {
            double s = 0;
            for (std::size_t j = 0; j < n; ++j) s += (w[r * n + j] - w2[r * n + j]) * x[t * n + j];
            total += s * s;
        }
    }
    return total;
}

}  // namespace

TEST_CASE("inverse_cholesky_upper: U upper with U^T U A = I", "[sparsify]") {
    for (const std::size_t n : {1u, 5u, 128u, 129u, 300u, 600u}) {
        INFO("n = " << n);
        const std::vector<double> a = random_spd(n, 20, static_cast<unsigned>(n));  // rank 20 + I
        std::vector<double> u(a);
        prune::nn::thread_pool pool(2);
        sp::inverse_cholesky_upper(u, n, "test", &pool);
        const auto [worst, below] = check_factor(u, a, n);
        CHECK(worst <= 1e-12);
        CHECK(below == 0.0);
        std::vector<double> serial(a);
        sp::inverse_cholesky_upper(serial, n, "test");
        CHECK(serial == u);  // the pool does not change the bits
        if (n <= 300) {
            std::vector<float> uf(a.begin(), a.end());
            sp::inverse_cholesky_upper(uf, n, "test");
            CHECK(check_factor(uf, a, n).first <= 1e-4);
        }
    }
    std::vector<double> indefinite = {1, 2, 2, 1};
    CHECK_THROWS_AS(sp::inverse_cholesky_upper(indefinite, 2, "test"), prune::value_error);
}

TEST_CASE("the OBS reconstruction lowers the output error of every method's mask", "[sparsify]") {
    const std::size_t rows = 24, n = 160, tokens = 256;
    std::vector<double> x = random_values(tokens * n, 7);
    const std::vector<double> column_scale = random_values(n, 8);
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t j = 0; j < n; ++j) x[t * n + j] *= std::exp(0.5 * column_scale[j]);
    }
    sp::input_statistics stats(n, {.gram = true, .double_products = true});
    stats.add(prune::make_view(x.data(), {tokens, n}));
    const std::vector<double> w = random_values(rows * n, 9);
    const auto wv = prune::make_view(w.data(), {rows, n});
    const std::vector<float> norms = stats.column_norms();
    const sp::wanda_scores wanda(wv, norms);
    std::vector<prune::element_mask> masks;
    masks.push_back(sp::choose_masks(std::vector<prune::score_source>{prune::magnitude(wv)},
                                     {.group = sp::comparison_group::matrix})[0]);
    masks.push_back(sp::choose_masks(std::vector<prune::score_source>{wanda.source()}, {.sparsity = 0.5})[0]);
    masks.push_back(sp::choose_masks(std::vector<prune::score_source>{wanda.source()}, {.nm = prune::two_four})[0]);
    std::vector<double> own(w);
    auto ov = prune::make_view(own.data(), {rows, n});
    masks.push_back(sp::sparsegpt_prune(ov, stats.gram_upper(), {.sparsity = 0.5}, {.float64 = true}));
    for (std::size_t m = 0; m < masks.size(); ++m) {
        INFO("mask " << m << " (magnitude, Wanda, Wanda 2:4, SparseGPT)");
        std::vector<double> masked(w), rebuilt(w);
        for (std::size_t i = 0; i < w.size(); ++i) masked[i] = masks[m].kept(i) ? w[i] : 0.0;
        auto rv = prune::make_view(rebuilt.data(), {rows, n});
        sp::reconstruct(rv, masks[m], stats.gram_upper(), {.float64 = true});
        for (std::size_t i = 0; i < w.size(); ++i) {
            if (!masks[m].kept(i)) CHECK(rebuilt[i] == 0.0);
        }
        const double before = output_error(w, masked, x, rows, n);
        const double after = output_error(w, rebuilt, x, rows, n);
        CHECK(after < 0.9 * before);
        if (m == 3) CHECK(rebuilt == own);  // SparseGPT = its mask + the reconstruction
    }
}

TEST_CASE("SparseGPT on 16-bit weights: the float computation rounded once", "[sparsify]") {
    const std::size_t rows = 8, n = 40;
    const std::vector<double> x = random_values(64 * n, 3);
    sp::input_statistics stats(n, {.gram = true});
    stats.add(prune::make_view(x.data(), {64, n}));
    const std::vector<double> w = random_values(rows * n, 4);
    std::vector<prune::bfloat16> wb(w.size());
    std::vector<float> wf(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
        wb[i] = prune::to_bfloat16(static_cast<float>(w[i]));
        wf[i] = prune::to_float(wb[i]);
    }
    auto vb = prune::make_view(wb.data(), {rows, n});
    auto vf = prune::make_view(wf.data(), {rows, n});
    const auto mb = sp::sparsegpt_prune(vb, stats.gram_upper(), {.nm = prune::two_four});
    const auto mf = sp::sparsegpt_prune(vf, stats.gram_upper(), {.nm = prune::two_four});
    CHECK(mb == mf);
    for (std::size_t i = 0; i < w.size(); ++i) {
        CHECK(prune::to_float(wb[i]) == prune::to_float(prune::to_bfloat16(wf[i])));
    }
}

TEST_CASE("SparseGPT refuses bad input by name", "[sparsify]") {
    const std::size_t n = 24;
    std::vector<double> h(n * n, 0.0);
    for (std::size_t j = 0; j < n; ++j) h[j * n + j] = 1.0;
    std::vector<float> w(4 * n, 1.0f);
    auto v = prune::make_view(w.data(), {4, n});
    const auto message = [&](const sp::sparsity_target& target, const sp::sparsegpt_options& options = {}) {
        return error_of([&] { static_cast<void>(sp::sparsegpt_prune(v, h, target, options, "q_proj")); });
    };
    CHECK_THAT(message({.sparsity = 1.0}), Catch::Contains("'q_proj'") && Catch::Contains("sparsity"));
    CHECK_THAT(message({.sparsity = -0.1}), Catch::Contains("sparsity"));
    CHECK_THAT(message({.nm = prune::nm_pattern{0, 4}}), Catch::Contains("0 < kept < group"));
    CHECK_THAT(message({.nm = prune::nm_pattern{2, 5}}), Catch::Contains("do not divide the width"));
    CHECK_THAT(message({.nm = prune::nm_pattern{1, 3}}), Catch::Contains("divide the block size"));
    CHECK_THAT(message({}, {.block_size = 0}), Catch::Contains("block size"));
    CHECK_THAT(message({}, {.hessian_scale = 0}), Catch::Contains("scale"));
    std::vector<double> short_h(n * n - 1, 1.0);
    CHECK_THAT(error_of([&] { static_cast<void>(sp::sparsegpt_prune(v, short_h, {})); }),
               Catch::Contains("Hessian of 575 values"));
    h[3 * n + 3] = std::nan("");
    CHECK_THAT(message({}), Catch::Contains("Hessian diagonal") && Catch::Contains("column 3"));
    h[3 * n + 3] = 1.0;
    h[0 * n + 1] = 5.0;  // |H_01| > sqrt(H_00 H_11): indefinite even after 1% damping
    CHECK_THAT(message({}), Catch::Contains("not positive definite"));
    h[0 * n + 1] = 0.0;
    const prune::element_mask wrong({4, n + 1});
    CHECK_THAT(error_of([&] { sp::reconstruct(v, wrong, h, {}, "o_proj"); }),
               Catch::Contains("'o_proj'") && Catch::Contains("a mask of shape"));
    CHECK(w == std::vector<float>(4 * n, 1.0f));  // nothing written by a refusal
}

TEST_CASE("one Hessian factor shared by several linears gives the bits of factoring for each", "[sparsify]") {
    // q/k/v (or gate/up) read one input: factor_hessian once and sparsegpt_prune / reconstruct
    // with the factor must equal sparsegpt_prune / reconstruct from the Hessian, bit for bit,
    // for weights of different heights, both precisions, unstructured and 2:4, with a dead column.
    const std::size_t n = 160;  // two blocks of 128 + 32 columns
    std::vector<double> h = random_spd(n, 40, 11);
    for (std::size_t j = 0; j < n; ++j) h[5 * n + j] = h[j * n + 5] = 0.0;  // column 5 dead
    for (const bool float64 : {false, true}) {
        sp::sparsegpt_options options;
        options.float64 = float64;
        options.hessian_scale = 2.0 / 3.0;
        const sp::hessian_factor shared = sp::factor_hessian(h, n, options, "x1");
        for (const std::size_t rows : {std::size_t{48}, std::size_t{8}, std::size_t{8}}) {
            for (const bool nm : {false, true}) {
                INFO("float64 " << float64 << " rows " << rows << " nm " << nm);
                sp::sparsity_target target{.sparsity = 0.5};
                if (nm) target.nm = prune::two_four;
                const std::vector<float> w0 = random_values<float>(rows * n, static_cast<unsigned>(rows + (nm ? 1 : 0)));
                std::vector<float> alone = w0, with = w0;
                auto va = prune::make_view(alone.data(), {rows, n});
                auto vw = prune::make_view(with.data(), {rows, n});
                const prune::element_mask ma = sp::sparsegpt_prune(va, h, target, options);
                const prune::element_mask mw = sp::sparsegpt_prune(vw, shared, target, options);
                CHECK(ma == mw);
                CHECK(alone == with);
                CHECK(alone != w0);  // the kept weights were updated
                std::vector<float> ra = w0, rw = w0;
                auto vra = prune::make_view(ra.data(), {rows, n});
                auto vrw = prune::make_view(rw.data(), {rows, n});
                sp::reconstruct(vra, ma, h, options);
                sp::reconstruct(vrw, ma, shared, options);
                CHECK(ra == rw);
            }
        }
    }
    std::vector<float> w(4 * (n + 1), 1.0f);
    auto v = prune::make_view(w.data(), {4, n + 1});
    CHECK_THAT(error_of([&] { static_cast<void>(sp::sparsegpt_prune(v, sp::factor_hessian(h, n), {}, {}, "k_proj")); }),
               Catch::Contains("'k_proj'") && Catch::Contains("factor of a Hessian of 160 columns"));
    CHECK_THAT(error_of([&] { static_cast<void>(sp::factor_hessian(h, n + 1)); }), Catch::Contains("for 161 columns"));
    CHECK_THAT(error_of([&] { static_cast<void>(sp::factor_hessian(h, n, {.hessian_scale = 0})); }),
               Catch::Contains("scale"));
    std::vector<float> fits(4 * n, 1.0f);
    auto vf = prune::make_view(fits.data(), {4, n});
    const sp::hessian_factor f = sp::factor_hessian(h, n);
    CHECK_THAT(error_of([&] { static_cast<void>(sp::sparsegpt_prune(vf, f, {}, {.block_size = 0})); }),
               Catch::Contains("block size 0"));
    CHECK_THAT(error_of([&] { sp::reconstruct(vf, prune::element_mask({4, n}), f, {.block_size = 0}); }),
               Catch::Contains("block size 0"));
    CHECK(fits == std::vector<float>(4 * n, 1.0f));
    CHECK(w == std::vector<float>(4 * (n + 1), 1.0f));
}
