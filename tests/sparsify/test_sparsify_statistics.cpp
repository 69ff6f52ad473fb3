// tests/sparsify/test_sparsify_statistics.cpp: calibration statistics (sums, merge, storage
// orders, the statistics file and its checks) and the mask choice's bad-input errors.
// Expected sums come from a plain double loop over the same rows (an independent evaluation).
#include <prune/sparsify/masks.hpp>
#include <prune/sparsify/statistics.hpp>
#include <prune/sparsify/statistics_file.hpp>

#include <catch2/catch.hpp>

#include "support.hpp"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace sp = prune::sparsify;

namespace {

using sparsify_test::error_of;

std::vector<float> random_rows(std::size_t count, std::size_t columns, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(count * columns);
    for (float& v : x) v = normal(gen);
    return x;
}

}  // namespace

TEST_CASE("statistics are sums: batches, merges and storage orders agree", "[sparsify][statistics]") {
    const std::size_t n = 300;  // more than one gram block, not a multiple of it
    std::vector<float> x = random_rows(70, n, 1);
    sp::input_statistics whole(n, {.gram = true, .double_products = true});
    whole.add(prune::make_view(x.data(), {70, n}));
    std::vector<double> sum2(n, 0.0), gram(n * n, 0.0);
    for (std::size_t t = 0; t < 70; ++t) {
        for (std::size_t i = 0; i < n; ++i) {
            sum2[i] += double(x[t * n + i]) * x[t * n + i];
            for (std::size_t j = 0; j < n; ++j) gram[i * n + j] += double(x[t * n + i]) * x[t * n + j];
        }
    }
    const std::vector<double> g = whole.gram();
    for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(whole.sum_squares()[i] == Approx(sum2[i]).epsilon(1e-12));
        for (std::size_t j = 0; j < n; ++j) REQUIRE(g[i * n + j] == Approx(gram[i * n + j]).margin(1e-10));
    }

    sp::input_statistics first(n, {.gram = true, .double_products = true});
    sp::input_statistics second(n, {.gram = true, .double_products = true});
    first.add(prune::make_view(x.data(), {3, 10, n}));
    second.add(prune::make_view(x.data() + 30 * n, {40, n}));
    first.merge(second);
    CHECK(first.tokens() == 70);
    for (std::size_t i = 0; i < n; ++i) CHECK(first.sum_squares()[i] == Approx(sum2[i]).epsilon(1e-12));
    const std::vector<double> merged = first.gram();
    for (std::size_t i = 0; i < n * n; ++i) REQUIRE(merged[i] == Approx(g[i]).margin(1e-10));

    // a column-major view of the same [70, n] rows gives the same sums
    std::vector<float> column_major(x.size());
    for (std::size_t t = 0; t < 70; ++t)
        for (std::size_t j = 0; j < n; ++j) column_major[j * 70 + t] = x[t * n + j];
    sp::input_statistics cm(n);
    cm.add(prune::make_view(column_major.data(), {70, n}, prune::layout::column_major));
    for (std::size_t i = 0; i < n; ++i) CHECK(cm.sum_squares()[i] == Approx(sum2[i]).epsilon(1e-12));

    CHECK(error_of([&] { whole.add(prune::make_view(x.data(), {n, 70})); }).find("input width 300") !=
          std::string::npos);
    CHECK(error_of([&] { cm.merge(sp::input_statistics(n + 1)); }).find("expected the same width") !=
          std::string::npos);
    CHECK(error_of([&] { (void)cm.gram(); }).find("keeps no gram") != std::string::npos);

    // with_sums_of: first's gram (all 70 rows), the 30 rows' sums of squares and count of a gram-less one
    sp::input_statistics part(n);
    part.add(prune::make_view(x.data(), {30, n}));
    const sp::input_statistics mixed = sp::input_statistics(first).with_sums_of(part);
    CHECK(mixed.tokens() == 30);
    CHECK(mixed.has_gram());
    CHECK(std::vector<double>(mixed.sum_squares().begin(), mixed.sum_squares().end()) ==
          std::vector<double>(part.sum_squares().begin(), part.sum_squares().end()));
    CHECK(mixed.gram() == merged);
    CHECK(error_of([&] { (void)sp::input_statistics(first).with_sums_of(sp::input_statistics(n + 1)); })
              .find("expected the same width") != std::string::npos);
}

TEST_CASE("statistics files round-trip and refuse another model", "[sparsify][statistics]") {
    prune_test::temp_dir dir("prune_sparsify_statistics");
    std::vector<float> x = random_rows(20, 12, 2);
    sp::statistics_map stats;
    stats.emplace("layers.0.attn_in", sp::input_statistics(12, {.gram = true}));
    stats.emplace("layers.0.down_in", sp::input_statistics(12));
    stats.at("layers.0.attn_in").add(prune::make_view(x.data(), {20, 12}));
    stats.at("layers.0.down_in").add(prune::make_view(x.data(), {10, 12}));
    const auto path = dir.path() / "stats.safetensors";
    sp::save_statistics(path, stats, "tiny-llama:abc");

    const std::vector<sp::expected_input> expected = {{"layers.0.attn_in", 12, true}, {"layers.0.down_in", 12, false}};
    const sp::statistics_map back = sp::load_statistics(path, expected, "tiny-llama:abc");
    REQUIRE(back.size() == 2);
    const auto& a = back.at("layers.0.attn_in");
    CHECK(a.tokens() == 20);
    CHECK(a.has_gram());
    CHECK(a.gram() == stats.at("layers.0.attn_in").gram());
    CHECK(std::vector<double>(a.sum_squares().begin(), a.sum_squares().end()) ==
          std::vector<double>(stats.at("layers.0.attn_in").sum_squares().begin(),
                              stats.at("layers.0.attn_in").sum_squares().end()));
    CHECK(back.at("layers.0.down_in").tokens() == 10);

    const auto message = [&](std::vector<sp::expected_input> e, const std::string& model) {
        return error_of([&] { (void)sp::load_statistics(path, e, model); });
    };
    CHECK(message(expected, "gpt2:def").find("was made for model 'tiny-llama:abc' (expected 'gpt2:def')") !=
          std::string::npos);
    CHECK(message({{"layers.0.attn_in", 16, false}}, "").find("expected F64 [16]") != std::string::npos);
    CHECK(message({{"layers.1.attn_in", 12, false}}, "").find("has no input 'layers.1.attn_in'") !=
          std::string::npos);
    CHECK(message({{"layers.0.down_in", 12, true}}, "").find("has no gram for input 'layers.0.down_in'") !=
          std::string::npos);
    prune::io::safetensors_writer other;
    other.add_u8("mask", {1}, std::vector<std::uint8_t>{1});
    other.write(dir.path() / "other.safetensors");
    CHECK(error_of([&] { (void)sp::load_statistics(dir.path() / "other.safetensors", expected); })
              .find("is not a statistics file") != std::string::npos);
}

TEST_CASE("mask choice refuses bad targets", "[sparsify][masks]") {
    std::vector<float> w = random_rows(4, 12, 3);
    const auto v = prune::make_view(w.data(), {4, 12});
    const std::vector<prune::score_source> one = {prune::magnitude(v)};
    const auto message = [&](const sp::sparsity_target& t, std::span<const std::size_t> layers = {}) {
        return error_of([&] { (void)sp::choose_masks(one, t, layers); });
    };
    CHECK(message({.sparsity = 1.0}).find("expected 0 <= sparsity < 1") != std::string::npos);
    CHECK(message({.sparsity = -0.1}).find("expected 0 <= sparsity < 1") != std::string::npos);
    CHECK(message({.sparsity = std::numeric_limits<double>::quiet_NaN()}).find("expected 0 <= sparsity < 1") !=
          std::string::npos);
    CHECK(message({.nm = prune::nm_pattern{4, 4}}).find("expected 0 < kept < group") != std::string::npos);
    CHECK(message({.nm = prune::nm_pattern{2, 8}}).find("do not divide the width 12") != std::string::npos);
    CHECK(message({.group = sp::comparison_group::layer}).find("expected one per matrix") != std::string::npos);
    const std::vector<float> norms(11, 1.0f);
    CHECK(error_of([&] { sp::wanda_scores bad(v, norms); }).find("with 11 column norms") != std::string::npos);
    CHECK(sp::parse_comparison_group("layer") == sp::comparison_group::layer);
    CHECK(error_of([] { (void)sp::parse_comparison_group("rows"); }).find("expected row, matrix") !=
          std::string::npos);
    // sparsity 0 prunes nothing; an already-pruned element counts towards a row's quota
    CHECK(sp::choose_masks(one, {.sparsity = 0.0})[0].count_pruned() == 0);
    prune::element_mask mask({4, 12});
    mask.set(0, false);
    CHECK(sp::prune_rows(one[0], mask, 0.5) == 4 * 6 - 1);
    CHECK(mask.count_pruned() == 24);
}
