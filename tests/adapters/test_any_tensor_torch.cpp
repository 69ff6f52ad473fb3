// "Any adapted tensor" conformance for torch::Tensor (float32, CPU, contiguous): the checks of
// any_tensor_conformance.hpp against the same closed forms as every other family in
// test_any_tensor.cpp. pack_2_4 takes a typed view (torch_view<float>): a torch tensor's
// element type, which decides the packed type, is known only at run time.
#include <prune/adapters/torch.hpp>

#include "any_tensor_conformance.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

struct torch_family {
    template <std::size_t R, std::size_t C>
    struct fixture {
        torch::Tensor t;
        explicit fixture(const std::vector<float>& values)
            : t(torch::tensor(values, torch::kFloat).reshape({static_cast<std::int64_t>(R), static_cast<std::int64_t>(C)})) {}
        torch::Tensor& tensor() { return t; }
        [[nodiscard]] std::vector<float> logical() const {
            const torch::Tensor flat = t.reshape({-1}).contiguous();
            return std::vector<float>(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
        }
    };
    template <class Fixture>
    static auto pack(Fixture& f, const prune::element_mask& m) {
        return prune::pack_2_4(prune::torch_view<float>(f.tensor()), m);
    }
};

}  // namespace

TEST_CASE("every public algorithm on torch::Tensor equals the closed forms", "[any_tensor][torch]") {
    any_tensor::run<torch_family>();
}

TEST_CASE("2-D block scores on torch::Tensor equal the closed form", "[any_tensor][torch]") {
    any_tensor::run_2d_blocks<torch_family>();
}

TEST_CASE("michel add_unit takes torch gate gradients (double, [layers, heads])", "[any_tensor][torch]") {
    const std::array<std::size_t, 2> heads{2, 2};
    prune::importance::michel_accumulator acc(heads);
    const torch::Tensor g = torch::tensor({-1.0, 2.0, 0.5, -0.25}, torch::kDouble).reshape({2, 2});
    const torch::Tensor m = torch::tensor({3.0f, -4.0f});
    acc.add_unit(g, m, 1);
    acc.add_unit(g.neg(), m, 1);
    // closed form: per example, each head's sum is 2 |g|
    CHECK(acc.head_sums()[0] == 2.0);
    CHECK(acc.head_sums()[1] == 4.0);
    CHECK(acc.head_sums()[2] == 1.0);
    CHECK(acc.head_sums()[3] == 0.5);
    CHECK(acc.mlp_sums()[0] == 6.0);
    CHECK(acc.mlp_sums()[1] == 8.0);
}
