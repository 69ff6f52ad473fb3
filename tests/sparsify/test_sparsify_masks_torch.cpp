// tests/sparsify/test_sparsify_masks_torch.cpp: prune/sparsify's statistics and mask choice
// against PyTorch ports of the reference Wanda and magnitude code (masks_oracle.py, which uses
// reference_ports.py), fed the same weights and activations: every mask bit for bit.
#include <prune/sparsify/masks.hpp>
#include <prune/sparsify/statistics.hpp>

#include <catch2/catch.hpp>

#include "support.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using sparsify_test::read_raw;

std::vector<std::uint8_t> concatenated(const std::vector<prune::element_mask>& masks) {
    std::vector<std::uint8_t> all;
    for (const auto& m : masks) {
        const std::vector<std::uint8_t> bytes = m.to_bytes();
        all.insert(all.end(), bytes.begin(), bytes.end());
    }
    return all;
}

}  // namespace

TEST_CASE("Wanda and magnitude masks equal the reference ports'", "[sparsify][torch]") {
    namespace sp = prune::sparsify;
    prune_test::temp_dir dir("prune_sparsify_masks_torch");
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " PRUNE_SOURCE_DIR
                                "/tests/sparsify/masks_oracle.py " + dir.path().string();
    REQUIRE(std::system(command.c_str()) == 0);
    const auto file = [&](const std::string& name) { return dir.path() / name; };
    std::vector<float> w1 = read_raw<float>(file("w1.f32"));
    std::vector<float> w2 = read_raw<float>(file("w2.f32"));
    std::vector<float> w3 = read_raw<float>(file("w3.f32"));
    std::vector<float> wt = read_raw<float>(file("wt.f32"));
    const std::vector<float> nt = read_raw<float>(file("nt.f32"));
    std::vector<float> x1 = read_raw<float>(file("x1.f32"));
    std::vector<float> x3 = read_raw<float>(file("x3.f32"));
    const auto v1 = prune::make_view(w1.data(), {40, 96});
    const auto v2 = prune::make_view(w2.data(), {24, 96});
    const auto v3 = prune::make_view(w3.data(), {40, 64});
    const auto vt = prune::make_view(wt.data(), {40, 96});

    // statistics: sample by sample (as the reference's hooks see them) vs one float64 sum
    sp::input_statistics s1(96, {.gram = true, .double_products = true});
    sp::input_statistics s1f(96, {.gram = true});
    for (std::size_t sample = 0; sample < 5; ++sample) {
        s1.add(prune::make_view(x1.data() + sample * 16 * 96, {1, 16, 96}));
        s1f.add(prune::make_view(x1.data() + sample * 16 * 96, {16, 96}));
    }
    CHECK(s1.tokens() == 80);
    const std::vector<double> sum2 = read_raw<double>(file("x1_sum2.f64"));
    const std::vector<double> gram = read_raw<double>(file("x1_gram.f64"));
    const std::vector<double> ours = s1.gram();
    const std::vector<double> ours_f = s1f.gram();
    double largest = 0;
    for (double g : gram) largest = std::max(largest, std::fabs(g));
    for (std::size_t j = 0; j < 96; ++j) {
        CHECK(s1.sum_squares()[j] == Approx(sum2[j]).epsilon(1e-13));
    }
    CHECK(sum2[7] == 0.0);
    for (std::size_t i = 0; i < gram.size(); ++i) {
        CHECK(std::fabs(ours[i] - gram[i]) <= 1e-13 * largest);
        CHECK(std::fabs(ours_f[i] - gram[i]) <= 1e-6 * largest);  // float products of 16 tokens
    }

    SECTION("Wanda on the reference's own norms: unstructured per row and N:M") {
        const std::vector<float> norm_ref = read_raw<float>(file("x1_norm_ref.f32"));
        const sp::wanda_scores scores(v1, norm_ref, "w1");
        for (const double s : {0.3, 0.5, 0.7}) {
            INFO("sparsity " << s);
            prune::element_mask mask({40, 96});
            sp::prune_rows(scores.source(), mask, s);
            std::string label = s == 0.3 ? "0.3" : s == 0.5 ? "0.5" : "0.7";
            CHECK(mask.to_bytes() == read_raw<std::uint8_t>(file("wanda_ref_" + label + ".u8")));
        }
        for (const auto& [n, m] : std::vector<std::pair<int, int>>{{2, 4}, {4, 8}, {1, 4}}) {
            INFO(n << " pruned of " << m);
            const sp::sparsity_target target{.nm = prune::nm_pattern::pruning(n, m)};
            const std::vector<prune::score_source> one = {scores.source()};
            CHECK(sp::choose_masks(one, target)[0].to_bytes() ==
                  read_raw<std::uint8_t>(file("wanda_nm_" + std::to_string(n) + "_" + std::to_string(m) + ".u8")));
        }
    }

    SECTION("Wanda end to end: the library's own statistic") {
        const std::vector<float> norms = s1.column_norms();
        const sp::wanda_scores scores(v1, norms);
        const std::vector<prune::score_source> one = {scores.source()};
        CHECK(sp::choose_masks(one, {.sparsity = 0.5})[0].to_bytes() ==
              read_raw<std::uint8_t>(file("wanda_clean_0.5.u8")));
    }

    SECTION("equal scores: by column within a row and within an N:M group") {
        const sp::wanda_scores scores(vt, nt);
        const std::vector<prune::score_source> one = {scores.source()};
        CHECK(sp::choose_masks(one, {.sparsity = 0.5})[0].to_bytes() ==
              read_raw<std::uint8_t>(file("tie_row_0.5.u8")));
        CHECK(sp::choose_masks(one, {.nm = prune::two_four})[0].to_bytes() ==
              read_raw<std::uint8_t>(file("tie_nm_2_4.u8")));
    }

    SECTION("magnitude per matrix: exact count and the reference's <=") {
        for (const auto& [prefix, v] : {std::pair{std::string(), v1}, std::pair{std::string("t_"), vt}}) {
            const std::vector<prune::score_source> one = {prune::magnitude(v)};
            for (const double s : {0.3, 0.5}) {
                const std::string label = s == 0.3 ? "0.3" : "0.5";
                INFO(prefix << "magnitude " << label);
                const auto exact = sp::choose_masks(one, {.sparsity = s, .group = sp::comparison_group::matrix});
                const auto quirk = sp::choose_masks(one, {.sparsity = s,
                                                          .group = sp::comparison_group::matrix,
                                                          .rule = sp::threshold_rule::at_or_below});
                CHECK(exact[0].to_bytes() == read_raw<std::uint8_t>(file(prefix + "mag_exact_" + label + ".u8")));
                CHECK(quirk[0].to_bytes() == read_raw<std::uint8_t>(file(prefix + "mag_ref_" + label + ".u8")));
                CHECK(exact[0].count_pruned() == static_cast<std::size_t>(40 * 96 * s));
            }
        }
    }

    SECTION("comparison groups: matrix, layer, global") {
        sp::input_statistics s3(64);
        s3.add(prune::make_view(x3.data(), {80, 64}));
        const std::vector<float> n1 = s1.column_norms();
        const std::vector<float> n3 = s3.column_norms();
        const sp::wanda_scores a(v1, n1), b(v2, n1), c(v3, n3);
        const std::vector<prune::score_source> all = {a.source(), b.source(), c.source()};
        const std::vector<std::size_t> layer_of = {0, 0, 1};
        CHECK(concatenated(sp::choose_masks(all, {.group = sp::comparison_group::layer}, layer_of)) ==
              read_raw<std::uint8_t>(file("layer_0.5.u8")));
        CHECK(concatenated(sp::choose_masks(all, {.group = sp::comparison_group::global})) ==
              read_raw<std::uint8_t>(file("global_0.5.u8")));
        CHECK(concatenated(sp::choose_masks(all, {.group = sp::comparison_group::matrix})) ==
              read_raw<std::uint8_t>(file("matrix_0.5.u8")));
    }
}
