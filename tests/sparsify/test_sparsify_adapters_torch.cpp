// tests/sparsify/test_sparsify_adapters_torch.cpp: Wanda scores, SparseGPT and reconstruct take a
// torch::Tensor as they take a view of the same values (the same keys, masks and reconstructed
// weights, bit for bit; Wanda's keys also against the closed form score_key(|W_ij| * norm_j)),
// and SparseGPT's in-place write respects autograd: a tensor that requires grad is refused in
// grad mode, and under NoGradGuard the write bumps the version counter.
#include <prune/adapters/torch.hpp>
#include <prune/importance/scores.hpp>
#include <prune/sparsify/masks.hpp>
#include <prune/sparsify/sparsegpt.hpp>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "support.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace sp = prune::sparsify;

namespace {

constexpr std::size_t out = 8;
constexpr std::size_t in = 16;

torch::Tensor as_torch(const std::vector<float>& w) {
    return torch::tensor(w, torch::kFloat).reshape({static_cast<std::int64_t>(out), static_cast<std::int64_t>(in)});
}

std::vector<float> values_of(const torch::Tensor& t) {
    const torch::Tensor c = t.detach().contiguous();
    return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

std::vector<std::uint32_t> keys_of(const prune::score_source& s) {
    std::vector<std::uint32_t> keys(s.size());
    s.fill_keys(0, 0, keys);
    return keys;
}

}  // namespace

TEST_CASE("sparsify on torch::Tensor equals sparsify on a view of the same values", "[sparsify][torch]") {
    const std::vector<float> w = sparsify_test::random_values<float>(out * in, 1);
    const std::vector<float> norms = [] {
        std::vector<float> n = sparsify_test::random_values<float>(in, 2);
        for (float& x : n) x = std::fabs(x);
        return n;
    }();
    const std::vector<double> h = sparsify_test::random_spd(in, 4 * in, 3);

    SECTION("wanda_scores") {
        std::vector<float> wv = w;
        const sp::wanda_scores from_view(prune::make_view(wv.data(), prune::shape{out, in}), norms);
        const torch::Tensor t = as_torch(w);
        const sp::wanda_scores from_torch(t, norms);
        const std::vector<std::uint32_t> keys = keys_of(from_torch.source());
        CHECK(keys == keys_of(from_view.source()));
        for (std::size_t i = 0; i < keys.size(); ++i) {  // closed form: |W_ij| * norm_j
            CHECK(keys[i] == prune::score_key(std::fabs(w[i]) * norms[i % in]));
        }
    }
    SECTION("sparsegpt_prune (unstructured and 2:4) and reconstruct") {
        for (const sp::sparsity_target target : {sp::sparsity_target{.sparsity = 0.5},
                                                 sp::sparsity_target{.nm = prune::two_four}}) {
            std::vector<float> wv = w;
            prune::tensor_view<float> v = prune::make_view(wv.data(), prune::shape{out, in});
            torch::Tensor t = as_torch(w);
            const prune::element_mask from_view = sp::sparsegpt_prune(v, h, target);
            const prune::element_mask from_torch = sp::sparsegpt_prune(t, h, target);
            CHECK(from_torch == from_view);
            CHECK(values_of(t) == wv);
            CHECK(values_of(t) != w);  // the reconstruction changed the kept weights

            std::vector<float> rv = w;
            prune::tensor_view<float> r = prune::make_view(rv.data(), prune::shape{out, in});
            torch::Tensor rt = as_torch(w);
            sp::reconstruct(r, from_view, h);
            sp::reconstruct(rt, from_view, h);
            CHECK(values_of(rt) == rv);
        }
    }
}

TEST_CASE("sparsegpt_prune writes a torch tensor only where autograd allows it", "[sparsify][torch][autograd]") {
    const std::vector<double> h = sparsify_test::random_spd(in, 4 * in, 4);
    torch::Tensor t = as_torch(sparsify_test::random_values<float>(out * in, 5)).requires_grad_(true);
    CHECK_THROWS_AS(sp::sparsegpt_prune(t, h, {.sparsity = 0.5}), prune::shape_error);
    CHECK_THROWS_WITH(sp::sparsegpt_prune(t, h, {.sparsity = 0.5}),
                      Catch::Contains("Float tensor of shape [8, 16] (requires_grad, leaf)"));
    torch::NoGradGuard no_grad;
    const std::int64_t before = t._version();
    const prune::element_mask m = sp::sparsegpt_prune(t, h, {.sparsity = 0.5});
    CHECK(t._version() == before + 1);
    CHECK(m.count_pruned() == out * in / 2);
}
