// The row kernels (include/prune/nn/kernels.hpp) against closed truths: central finite
// differences in double for the backward passes of LayerNorm (with and without bias), RMSNorm
// (input and weight), SwiGLU, RoPE and cross-entropy; RoPE's inverse undoes it; the float
// softmax and LayerNorm give bits that depend on the row's length only, not on where the row
// sits in memory. (tests/nn/test_nn_oracle.cpp compares with PyTorch.)
#include <prune/nn/kernels.hpp>

#include <catch2/catch.hpp>

#include <prune/nn/threads.hpp>

#include "../support/address_limit.hpp"
#include "../support/sanitizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <random>
#include <vector>

using namespace prune;

namespace {

std::vector<double> random_vector(std::size_t n, unsigned seed, double scale = 1.0, double shift = 0.0) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> v(n);
    for (auto& x : v) x = shift + scale * normal(rng);
    return v;
}

// Checks analytic[i] == d loss / d x[i] by central differences, for every i.
void check_gradient(std::vector<double>& x, const std::vector<double>& analytic, const std::function<double()>& loss,
                    const char* what) {
    REQUIRE(analytic.size() == x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double keep = x[i], h = 1e-6;
        x[i] = keep + h;
        const double up = loss();
        x[i] = keep - h;
        const double down = loss();
        x[i] = keep;
        INFO(what << "[" << i << "]");
        CHECK(analytic[i] == Approx((up - down) / (2 * h)).epsilon(1e-6).margin(1e-9));
    }
}

}  // namespace

TEST_CASE("LayerNorm and RMSNorm backward equal finite differences (double)", "[nn][kernels]") {
    const int n = 21;
    const auto ns = static_cast<std::size_t>(n);
    auto x = random_vector(ns, 1), w = random_vector(ns, 2, 0.5, 1.0), b = random_vector(ns, 3, 0.5);
    const auto dy = random_vector(ns, 4);
    nn::thread_pool pool(1);
    for (int kind = 0; kind < 3; ++kind) {  // LayerNorm, LayerNorm without bias, RMSNorm
        const char* name = kind == 0 ? "LayerNorm" : kind == 1 ? "LayerNorm (no bias)" : "RMSNorm";
        auto forward = [&](std::vector<double>& y, std::vector<double>& xhat, double& rstd) {
            y.resize(ns);
            xhat.resize(ns);
            if (kind == 2) nn::rms_norm_forward(x.data(), y.data(), xhat.data(), &rstd, w.data(), n, 1e-5);
            else nn::layer_norm_forward(x.data(), y.data(), xhat.data(), &rstd, w.data(), kind == 0 ? b.data() : nullptr, n, 1e-5);
        };
        auto loss = [&] {
            std::vector<double> y, xhat;
            double rstd = 0;
            forward(y, xhat, rstd);
            double s = 0;
            for (std::size_t i = 0; i < ns; ++i) s += y[i] * dy[i];
            return s;
        };
        std::vector<double> y, xhat, dx(ns), dw(ns, 0.0), db(ns, 0.0);
        double rstd = 0;
        forward(y, xhat, rstd);
        if (kind == 2) nn::rms_norm_backward(dy.data(), xhat.data(), rstd, w.data(), dx.data(), n);
        else nn::layer_norm_backward(dy.data(), xhat.data(), rstd, w.data(), dx.data(), n);
        nn::add_norm_parameter_grads(pool, 1, n, dy.data(), xhat.data(), dw.data(), kind == 0 ? db.data() : nullptr);
        INFO(name);
        check_gradient(x, dx, loss, "dx");
        check_gradient(w, dw, loss, "dweight");
        if (kind == 0) check_gradient(b, db, loss, "dbias");
    }
}

TEST_CASE("SwiGLU, RoPE and cross-entropy backward equal finite differences (double)", "[nn][kernels]") {
    const int n = 13;
    const auto ns = static_cast<std::size_t>(n);
    auto g = random_vector(ns, 5, 2.0), u = random_vector(ns, 6);
    const auto dy = random_vector(ns, 7);
    std::vector<double> y(ns), dg(ns), du(ns);
    auto swiglu_loss = [&] {
        nn::swiglu(g.data(), u.data(), y.data(), n);
        double s = 0;
        for (std::size_t i = 0; i < ns; ++i) s += y[i] * dy[i];
        return s;
    };
    nn::swiglu_backward(g.data(), u.data(), dy.data(), dg.data(), du.data(), n);
    check_gradient(g, dg, swiglu_loss, "swiglu dgate");
    check_gradient(u, du, swiglu_loss, "swiglu dup");

    // RoPE: 2 heads of 8 at position 37; the backward (inverse rotation of the gradient).
    const auto table = nn::rope_table<double>::make(nn::rope_inverse_frequencies(8, 10000.0), 64);
    auto x = random_vector(16, 8);
    const auto dr = random_vector(16, 9);
    auto rope_loss = [&] {
        std::vector<double> r = x;
        nn::rope_row(r.data(), 2, table, 37);
        double s = 0;
        for (std::size_t i = 0; i < r.size(); ++i) s += r[i] * dr[i];
        return s;
    };
    std::vector<double> dx = dr;
    nn::rope_row(dx.data(), 2, table, 37, true);
    check_gradient(x, dx, rope_loss, "rope dx");
    std::vector<double> round_trip = x;
    nn::rope_row(round_trip.data(), 2, table, 37);
    nn::rope_row(round_trip.data(), 2, table, 37, true);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(round_trip[i] == Approx(x[i]).margin(1e-14));

    // Cross-entropy over 300 logits (two chunks and a tail), scale 0.5.
    auto z = random_vector(300, 10, 3.0);
    std::vector<double> dz(z.size());
    nn::cross_entropy_row<double>(z.data(), 300, 123, 0.5, dz.data());
    auto ce_loss = [&] { return 0.5 * nn::cross_entropy_row<double>(z.data(), 300, 123, 0.5, nullptr); };
    check_gradient(z, dz, ce_loss, "cross-entropy dz");
}

TEST_CASE("softmax and LayerNorm bits depend on the row's length only, not its address", "[nn][kernels]") {
    // The same 77 values at 16 different offsets (alignments) give the same bits.
    const auto values = random_vector(77, 11);
    std::vector<float> row(values.begin(), values.end()), gamma(77, 1.25f), beta(77, -0.5f);
    std::vector<float> first_softmax, first_norm;
    std::vector<float> buffer(77 + 16), hat(77);
    for (int offset = 0; offset < 16; ++offset) {
        float* p = buffer.data() + offset;
        std::copy(row.begin(), row.end(), p);
        nn::softmax_row(p, 77);
        std::vector<float> s(p, p + 77);
        std::copy(row.begin(), row.end(), p);
        float rstd = 0;
        nn::layer_norm_forward(p, p, hat.data(), &rstd, gamma.data(), beta.data(), 77, 1e-12f);
        std::vector<float> l(p, p + 77);
        if (offset == 0) {
            first_softmax = s;
            first_norm = l;
        }
        INFO("offset " << offset);
        CHECK(std::memcmp(s.data(), first_softmax.data(), 77 * sizeof(float)) == 0);
        CHECK(std::memcmp(l.data(), first_norm.data(), 77 * sizeof(float)) == 0);
    }
}

// A thread that cannot be started is a prune::resource_error, not std::terminate (SIGABRT) from a
// joinable std::thread destroyed during the unwinding: a forked child limits its address space
// to what it uses plus 64 MiB, then asks for 64 threads (8 MiB stacks by default: ~500 MiB).
TEST_CASE("thread_pool: a thread that cannot be started is a resource_error, not an abort") {
#if PRUNE_TEST_ASAN
    WARN("skipped under AddressSanitizer: its shadow memory does not survive an address-space limit");
    return;
#endif
    const prune_test::child_status child = prune_test::run_with_address_limit(64, [] {
        try {
            nn::thread_pool pool(64);
            return 1;  // every thread started: the limit did not bite
        } catch (const resource_error& e) {
            return std::string(e.what()).find("prune::nn::thread_pool: cannot start thread ") == 0 ? 0 : 2;
        }
    });
    INFO("exit " << child.exit_code << ", signal " << child.signal);
    CHECK(child.exit_code == 0);
}

TEST_CASE("tanh_float is within 1.5 ulp of tanh in double, odd, and exact at the special values", "[nn][kernels]") {
    // the truth: std::tanh in double, rounded to the nearest float's spacing; every 37th positive
    // float below 12 (above, tanh is 1 in float), 29.6 million values
    double worst = 0.0;
    for (std::uint32_t bits = 0; bits < 0x41400000u; bits += 37) {
        float v;
        std::memcpy(&v, &bits, sizeof v);
        const double t = std::tanh(static_cast<double>(v));
        const double ulp = static_cast<double>(std::nextafter(static_cast<float>(t), 2.0f) - static_cast<float>(t));
        worst = std::max(worst, std::fabs(static_cast<double>(nn::tanh_float(v)) - t) / ulp);
        if (nn::tanh_float(-v) != -nn::tanh_float(v)) FAIL("not odd at " << v);
    }
    CHECK(worst <= 1.5);
    for (const float v : {12.0f, 20.0f, 1e6f, std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity()}) {
        CHECK(nn::tanh_float(v) == 1.0f);
        CHECK(nn::tanh_float(-v) == -1.0f);
    }
    CHECK(std::signbit(nn::tanh_float(-0.0f)));
    CHECK(nn::tanh_float(0.0f) == 0.0f);
    CHECK(nn::tanh_float(1e-30f) == 1e-30f);
    CHECK(std::isnan(nn::tanh_float(std::numeric_limits<float>::quiet_NaN())));
    // the tanh-form GELU in float stays within float rounding of the double one (relative 4e-6
    // where |GELU| > 0.01, as with std::tanh; Eigen's rational tanh reached 1.6e-5)
    double rel = 0.0;
    for (int i = -100000; i <= 100000; ++i) {
        const float x = static_cast<float>(i) * 1e-4f;
        const double exact = nn::gelu_tanh(static_cast<double>(x));
        if (std::fabs(exact) > 0.01) rel = std::max(rel, std::fabs(static_cast<double>(nn::gelu_tanh(x)) - exact) / std::fabs(exact));
    }
    CHECK(rel < 4e-6);
}
