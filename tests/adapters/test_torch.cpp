// Tests of prune/adapters/torch.hpp (its own executable: libtorch compiles slowly):
// every mask operation on torch::Tensor of float32, float64, float16 and bfloat16, read
// back through torch's own indexing and conversions; runtime-typed dispatch; clear errors
// for non-contiguous tensors and unsupported dtypes; views keep the tensor's shape.
#include <prune/adapters/torch.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>

#include "../core/mask_conformance.hpp"

#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

/// A contiguous rows x cols torch tensor of E's dtype.
template <prune::element E>
struct torch_fixture {
    using element_type = E;
    static constexpr bool rank1 = false;
    static constexpr const char* name = "torch::Tensor";
    torch::Tensor object;
    torch_fixture(std::size_t rows, std::size_t cols, const std::vector<float>& values)
        : object(torch::tensor(values, torch::kFloat)
                     .reshape({static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)})
                     .to(prune::detail::torch_dtype<E>())
                     .contiguous()) {}
    torch::Tensor& tensor() { return object; }
    /// Element (r, c) through torch's strides and torch's own conversion to float.
    [[nodiscard]] float at(std::size_t r, std::size_t c) const {
        const std::int64_t offset = static_cast<std::int64_t>(r) * object.stride(0) +
                                    static_cast<std::int64_t>(c) * object.stride(1);
        switch (object.scalar_type()) {
            case torch::kFloat:
                return object.data_ptr<float>()[offset];
            case torch::kDouble:
                return static_cast<float>(object.data_ptr<double>()[offset]);
            case torch::kHalf:
                return static_cast<float>(object.data_ptr<at::Half>()[offset]);
            default:
                return static_cast<float>(object.data_ptr<at::BFloat16>()[offset]);
        }
    }
};

using torch_fixtures = std::tuple<torch_fixture<float>, torch_fixture<double>, torch_fixture<prune::half>,
                                  torch_fixture<prune::bfloat16>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("every mask operation on torch tensors", "[torch][mask]", torch_fixtures) {
    INFO(prune::dtype_name<typename TestType::element_type>());
    prune_test::run_mask_conformance<TestType>();
}

TEST_CASE("torch views keep the shape; visit_view dispatches on the dtype", "[torch]") {
    STATIC_REQUIRE(prune::runtime_typed_tensor<torch::Tensor>);
    STATIC_REQUIRE_FALSE(prune::adapted_tensor<torch::Tensor>);

    torch::Tensor t = torch::zeros({2, 3, 4}, torch::kHalf);
    auto v = prune::torch_view<prune::half>(t);
    CHECK(v.extents() == prune::shape{2, 3, 4});
    CHECK(v.order() == prune::layout::row_major);
    CHECK(static_cast<void*>(v.data().data()) == t.data_ptr());

    CHECK(prune::torch_view<float>(torch::zeros({}, torch::kFloat)).extents() == prune::shape{});
    CHECK(prune::torch_view<double>(torch::zeros({5}, torch::kDouble)).extents() == prune::shape{5});

    const char* seen = prune::visit_view(t, [](auto view) {
        return prune::dtype_name<typename decltype(view)::element_type>();
    });
    CHECK(std::string(seen) == "F16");
    const torch::Tensor& const_t = t;
    const bool is_const = prune::visit_view(const_t, [](auto view) {
        return std::is_const_v<typename decltype(view)::element_type>;
    });
    CHECK(is_const);

    // a contiguous slice with a storage offset is viewed at its own first element
    torch::Tensor base = torch::ones({4, 3}, torch::kFloat);
    torch::Tensor rows = base.narrow(0, 1, 2);
    prune::element_mask mask(prune::shape{2, 3}, false);
    prune::apply(mask, rows);
    CHECK(base.sum().item<float>() == 6.0f);
    CHECK(base[0].sum().item<float>() == 3.0f);
    CHECK(base[3].sum().item<float>() == 3.0f);
}

TEST_CASE("torch: non-contiguous tensors and other dtypes are clear runtime errors", "[torch]") {
    prune::element_mask mask(prune::shape{3, 4});
    torch::Tensor transposed = torch::ones({4, 3}).t();
    CHECK_THROWS_AS(prune::apply(mask, transposed), prune::shape_error);
    CHECK_THROWS_WITH(prune::apply(mask, transposed),
                      Catch::Contains("strides [1, 3]") && Catch::Contains("contiguous"));

    torch::Tensor integers = torch::ones({3, 4}, torch::kInt);
    CHECK_THROWS_AS(prune::apply(mask, integers), prune::dtype_error);
    CHECK_THROWS_WITH(prune::apply(mask, integers),
                      Catch::Contains("Int") && Catch::Contains("Float, Double, Half or BFloat16"));

    torch::Tensor doubles = torch::ones({3, 4}, torch::kDouble);
    CHECK_THROWS_AS(prune::torch_view<float>(doubles), prune::dtype_error);
    CHECK_THROWS_WITH(prune::torch_view<float>(doubles), Catch::Contains("Double") && Catch::Contains("Float"));

    CHECK_THROWS_AS(prune::apply(mask, torch::ones({4, 3})), prune::shape_error);  // shape differs
    CHECK_THROWS_AS(prune::apply(mask, torch::Tensor()), prune::shape_error);      // undefined
}

// ---- autograd: prune's writes never bypass it ----------------------------------------------
// The truth in each case is torch's own behaviour for its own in-place op on the same tensor
// (the same error, or the same gradient), or a closed form.

namespace {
/// A 2 x 3 mask pruning elements 1 and 5 (logical order).
prune::element_mask two_pruned() {
    prune::element_mask mask(prune::shape{2, 3});
    mask.set(1, false);
    mask.set(5, false);
    return mask;
}
/// The same mask as a float tensor of 0/1.
torch::Tensor two_pruned_keep() { return torch::tensor({1.0f, 0.0f, 1.0f, 1.0f, 1.0f, 0.0f}).reshape({2, 3}); }

/// The message of the c10::Error that f throws ("" when it throws none).
template <class F>
std::string torch_error_of(F&& f) {
    try {
        f();
    } catch (const c10::Error& e) {
        return e.what_without_backtrace();
    }
    return "";
}
}  // namespace

TEST_CASE("torch autograd: a mask written into a saved tensor makes backward raise, as torch's own in-place op",
          "[torch][autograd]") {
    // the case: gate needs no grad, but x * gate saved it for x's gradient
    auto run = [](bool use_prune) {
        torch::Tensor x = torch::ones({2, 3}).requires_grad_(true);
        torch::Tensor gate = torch::full({2, 3}, 2.0f);
        torch::Tensor y = (x * gate).sum();
        if (use_prune) {
            prune::apply(two_pruned(), gate);
        } else {
            gate.mul_(two_pruned_keep());
        }
        return torch_error_of([&] { y.backward(); });
    };
    const std::string torch_own = run(false);
    const std::string ours = run(true);
    REQUIRE_THAT(torch_own, Catch::Contains("modified by an inplace operation"));
    CHECK_THAT(ours, Catch::Contains("modified by an inplace operation"));

    // what would otherwise silently happen: the gradient computed with the masked gate
    torch::Tensor gate = torch::full({2, 3}, 2.0f);
    const std::int64_t before = gate._version();
    prune::apply(two_pruned(), gate);
    CHECK(gate._version() == before + 1);
    CHECK(torch::equal(gate, 2.0f * two_pruned_keep()));
}

TEST_CASE("torch autograd: a leaf that requires grad is refused by torch, in grad mode", "[torch][autograd]") {
    torch::Tensor ours = torch::ones({2, 3}).requires_grad_(true);
    torch::Tensor theirs = torch::ones({2, 3}).requires_grad_(true);
    const std::string expected = torch_error_of([&] { theirs.masked_fill_(two_pruned_keep() == 0, 0); });
    REQUIRE_THAT(expected, Catch::Contains("leaf Variable that requires grad"));
    CHECK(torch_error_of([&] { prune::apply(two_pruned(), ours); }) == expected);
    CHECK(torch::equal(ours, torch::ones({2, 3})));  // untouched

    SECTION("under NoGradGuard (as optimisers write) the mask is applied and the version bumped") {
        torch::Tensor x = torch::ones({2, 3}).requires_grad_(true);
        torch::Tensor y = (x * ours).sum();  // saves `ours` for x's gradient
        {
            torch::NoGradGuard no_grad;
            const std::int64_t before = ours._version();
            prune::apply(two_pruned(), ours);
            CHECK(ours._version() == before + 1);
        }
        CHECK(torch::equal(ours.detach(), two_pruned_keep()));
        CHECK_THAT(torch_error_of([&] { y.backward(); }), Catch::Contains("modified by an inplace operation"));
        // a fresh forward after the write gives torch's gradients: d(sum(x * gate))/dx = gate
        torch::Tensor z = (x * ours).sum();
        z.backward();
        CHECK(torch::equal(x.grad(), two_pruned_keep()));
        CHECK(torch::equal(ours.grad(), torch::ones({2, 3})));  // d/dgate = x = 1
    }
    SECTION("apply_groups goes the same way") {
        const prune::group_mask heads = prune::group_mask::from_rows({{1, 0, 1}});
        CHECK(torch_error_of([&] { prune::apply_groups(heads, 0, ours, 1); }) == expected);
        torch::NoGradGuard no_grad;
        prune::apply_groups(heads, 0, ours, 1);
        CHECK(torch::equal(ours.detach(), torch::tensor({1.0f, 0.0f, 1.0f, 1.0f, 0.0f, 1.0f}).reshape({2, 3})));
    }
}

TEST_CASE("torch autograd: a non-leaf that requires grad records the write (masked_fill_)", "[torch][autograd]") {
    // closed form: h = 3 w, h masked, L = sum(h * h) => dL/dw = 18 w where kept, 0 where pruned
    const torch::Tensor w0 = torch::arange(1, 7, torch::kFloat).reshape({2, 3});
    torch::Tensor w = w0.clone().requires_grad_(true);
    torch::Tensor h = w * 3.0f;
    prune::apply(two_pruned(), h);
    CHECK(h.grad_fn() != nullptr);
    CHECK(std::string(h.grad_fn()->name()).find("MaskedFill") != std::string::npos);
    (h * h).sum().backward();
    CHECK(torch::allclose(w.grad(), 18.0f * w0 * two_pruned_keep()));
    CHECK(torch::equal(h.detach(), 3.0f * w0 * two_pruned_keep()));

    // the same mask through torch's own op gives the same gradient, bit for bit
    torch::Tensor w2 = w0.clone().requires_grad_(true);
    torch::Tensor h2 = (w2 * 3.0f).masked_fill(two_pruned_keep() == 0, 0);
    (h2 * h2).sum().backward();
    CHECK(torch::equal(w.grad(), w2.grad()));

    // and if the non-leaf had been saved before the write, backward raises as for torch's op
    torch::Tensor v = torch::ones({2, 3}).requires_grad_(true);
    torch::Tensor e = v.exp();  // exp saves its result
    prune::apply(two_pruned(), e);
    CHECK_THAT(torch_error_of([&] { e.sum().backward(); }), Catch::Contains("modified by an inplace operation"));
}

TEST_CASE("torch autograd: a raw mutable visit of a tracked tensor is refused, naming the tensor",
          "[torch][autograd]") {
    torch::Tensor gate = torch::ones({2, 3}, torch::kDouble).requires_grad_(true);
    auto write = [&] { prune::visit_view(gate, [](auto v) { v.data()[0] = {}; }); };
    CHECK_THROWS_AS(write(), prune::shape_error);
    CHECK_THROWS_WITH(write(), Catch::Contains("Double tensor of shape [2, 3] (requires_grad, leaf)") &&
                                   Catch::Contains("NoGradGuard"));
    CHECK(gate.sum().item<double>() == 6.0);

    // reading never bumps the version: magnitude over a tracked tensor is fine
    const std::int64_t before = gate._version();
    const prune::score_source s = prune::magnitude(gate);
    CHECK(s.extents() == prune::shape{2, 3});
    CHECK(gate._version() == before);
}

TEST_CASE("torch: non-contiguous and non-CPU tensors are refused with the reason", "[torch][autograd]") {
    prune::element_mask mask(prune::shape{3, 2});
    torch::Tensor transposed = torch::ones({2, 3}).requires_grad_(true).t();
    CHECK_THROWS_WITH(prune::apply(mask, transposed), Catch::Contains("not contiguous") &&
                                                          Catch::Contains("call .contiguous() first"));
    CHECK_THROWS_WITH(prune::magnitude(transposed), Catch::Contains("not contiguous"));

    torch::Tensor meta = torch::empty({3, 2}, torch::TensorOptions().device(torch::kMeta));
    CHECK_THROWS_AS(prune::apply(mask, meta), prune::shape_error);
    CHECK_THROWS_WITH(prune::apply(mask, meta), Catch::Contains("on device meta") && Catch::Contains(".cpu()"));
    CHECK_THROWS_WITH(prune::magnitude(meta), Catch::Contains("on device meta"));
    torch::Tensor meta_grad = meta.clone().requires_grad_(true);
    CHECK_THROWS_WITH(prune::apply(mask, meta_grad), Catch::Contains("on device meta"));
}

TEST_CASE("torch autograd: an inference tensor outside InferenceMode is refused as torch refuses it, unwritten",
          "[torch][autograd]") {
    torch::Tensor ours;
    torch::Tensor theirs;
    {
        c10::InferenceMode guard;
        ours = torch::ones({2, 3});
        theirs = torch::ones({2, 3});
    }
    const std::string expected = torch_error_of([&] { theirs.mul_(two_pruned_keep()); });
    REQUIRE_THAT(expected, Catch::Contains("Inplace update to inference tensor outside InferenceMode"));
    CHECK(torch_error_of([&] { prune::apply(two_pruned(), ours); }) == expected);
    CHECK(torch::equal(ours, torch::ones({2, 3})));
    {
        c10::InferenceMode guard;  // inside, torch allows it, and so does prune
        prune::apply(two_pruned(), ours);
    }
    CHECK(torch::equal(ours, two_pruned_keep()));
}
