// Michel importance on decoders (include/prune/models/decoder/importance.hpp) against the
// importance tests/decoder/oracle.py computes with autograd in float64 on the six oracle cases:
// E over sequences of |dL(sequence)/dxi| (L its mean NLL) for every query head, K/V group and
// MLP; per batch of 2 with the batch's token-mean loss; per sequence with per-layer L2 and global
// min-max normalisation (heads and K/V groups each among themselves, MLPs min-max only).
// Observed worst error (relative to the largest score of that kind) 4.9e-6 (2.2e-6 unnormalised);
// bound 2e-5 as for the gate gradients (test_decoder_backward). Also: the batch size does not change per-example
// scores, structure masks become gates (kv_groups included), and misfits are refused.
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/importance.hpp>
#include <prune/io/masks.hpp>

#include "oracle_cases.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace prune;

namespace {

constexpr double tolerance = 2e-5;

std::vector<double> flat(const std::vector<std::vector<double>>& rows) {
    std::vector<double> out;
    for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
    return out;
}

/// max |got - want| / max(1e-3, max |want|).
double relative_error(const std::vector<double>& got, const std::vector<double>& want) {
    REQUIRE(got.size() == want.size());
    double worst = 0.0, scale = 1e-3;
    for (std::size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::abs(got[i] - want[i]));
        scale = std::max(scale, std::abs(want[i]));
    }
    return worst / scale;
}

void compare(const std::string& what, const decoder::importance_scores& got, const nlohmann::json& want) {
    const double heads = relative_error(flat(got.heads), flat(want["heads"].get<std::vector<std::vector<double>>>()));
    const double kv = relative_error(flat(got.kv_groups), flat(want["kv_groups"].get<std::vector<std::vector<double>>>()));
    const double mlps = relative_error(got.mlps, want["mlps"].get<std::vector<double>>());
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("  %-26s heads %.2g kv_groups %.2g mlps %.2g\n", what.c_str(), heads, kv, mlps);
    INFO(what << ": heads " << heads << ", kv_groups " << kv << ", mlps " << mlps);
    CHECK(heads <= tolerance);
    CHECK(kv <= tolerance);
    CHECK(mlps <= tolerance);
}

std::vector<std::vector<std::int32_t>> data_of(const nlohmann::json& c) {
    return c["sequences"].get<std::vector<std::vector<std::int32_t>>>();
}

void check_case(const std::string& name) {
    const nlohmann::json c = oracle::load(name), truth = oracle::load(name, "grads.json")["importance"];
    const decoder::weights w = decoder::load_model(oracle::dir() / name);
    const auto data = data_of(c);
    const decoder::gates g = oracle::gates_of(c);
    using importance::absolute_value;
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("%s\n", name.c_str());
    const auto per_example = decoder::head_importance(w, data, &g, absolute_value::per_example, {}, 3, 2);
    compare("per example", per_example, truth["per_example"]);
    compare("per batch of 2", decoder::head_importance(w, data, &g, absolute_value::per_batch, {}, 2, 2), truth["per_batch_2"]);
    const auto layer_global = importance::normalization::parse("layer+global");
    compare("per example, layer+global", decoder::head_importance(w, data, &g, absolute_value::per_example, layer_global, 2, 1),
            truth["per_example_layer_global"]);
    // Batch size 1: the same scores (other product shapes: to rounding).
    const auto one = decoder::head_importance(w, data, &g, absolute_value::per_example, {}, 1, 1);
    CHECK(relative_error(flat(one.heads), flat(per_example.heads)) <= 1e-6);
    CHECK(relative_error(one.mlps, per_example.mlps) <= 1e-6);
}

}  // namespace

TEST_CASE("Decoder importance, Llama multi-head", "[decoder][importance]") { check_case("llama_mha"); }
TEST_CASE("Decoder importance, Llama GQA 2, tied, biases", "[decoder][importance]") { check_case("llama_gqa2_tied_bias_f16"); }
TEST_CASE("Decoder importance, Llama GQA 4", "[decoder][importance]") { check_case("llama_gqa4_bf16_shards"); }
TEST_CASE("Decoder importance, one K/V head", "[decoder][importance]") { check_case("llama_linear_rope"); }
TEST_CASE("Decoder importance, GPT-2", "[decoder][importance]") { check_case("gpt2_prefix"); }

TEST_CASE("Decoder gates from a structure mask with kv_groups", "[decoder][importance]") {
    const decoder::weights w = decoder::load_model(oracle::dir() / "llama_gqa4_bf16_shards");  // 3 layers, 8 heads, 2 K/V heads
    const structure_mask m = io::parse_structure_mask(
        R"({"heads": [[1,1,1,1,1,1,1,1],[1,0,1,1,1,1,1,1],[1,1,1,1,1,1,1,1]], "mlps": [1,1,0], "kv_groups": [[1,1],[1,1],[0,1]]})",
        "test");
    const decoder::gates g = decoder::gates::from_mask(m, w);
    CHECK(g.head(1, 1) == 0.0f);
    CHECK(g.head(1, 0) == 1.0f);
    CHECK(g.kv_group(2, 0) == 0.0f);
    CHECK(g.mlp(2) == 0.0f);
    // Written and read back the same.
    CHECK(io::parse_structure_mask(io::structure_mask_json(m), "again") == m);
    // Gating K/V group 0 of layer 2 off equals gating its 4 query heads off.
    decoder::gates by_heads = g;
    by_heads.kv_groups.clear();
    for (int h = 0; h < 4; ++h) by_heads.heads[2][static_cast<std::size_t>(h)] = 0.0f;
    decoder::sequences seq;
    seq.add(std::vector<std::int32_t>{1, 5, 9, 2, 7});
    decoder::workspace ws(1);
    decoder::forward_options o;
    o.gate = &g;
    const double a = decoder::forward(w, seq, ws, o).total_nll();
    o.gate = &by_heads;
    CHECK(decoder::forward(w, seq, ws, o).total_nll() == a);
    // Misfits name the part.
    const structure_mask bad = io::parse_structure_mask(R"({"kv_groups": [[1,1,1],[1,1],[1,1]]})", "test");
    CHECK_THROWS_WITH(decoder::gates::from_mask(bad, w), Catch::Matchers::Contains("KV-group mask row 0 has 3 entries (expected 2)"));
    CHECK_THROWS_WITH(io::parse_structure_mask(R"({"mlps": [1,1,1], "kv_groups": [[1,1]]})", "test"),
                      Catch::Matchers::Contains("kv_groups has 1 rows (expected 3, one per layer)"));
}

TEST_CASE("Decoder importance refusals name the example", "[decoder][importance]") {
    const decoder::weights w = decoder::load_model(oracle::dir() / "llama_mha");  // vocab 50, 16 positions
    const std::vector<std::vector<std::int32_t>> data{{1, 2, 3}, {4, 50}};
    CHECK_THROWS_WITH(decoder::head_importance(w, data, nullptr), Catch::Matchers::Contains("example 1 has token id 50"));
    const std::vector<std::vector<std::int32_t>> empty_row{{1, 2}, {}};
    CHECK_THROWS_WITH(decoder::head_importance(w, empty_row, nullptr), Catch::Matchers::Contains("example 1 is empty"));
    decoder::importance_accumulators wrong(decoder::load_model(oracle::dir() / "llama_gqa4_bf16_shards"),
                                           importance::absolute_value::per_example);
    decoder::importance_workspace ws(1);
    CHECK_THROWS_WITH(decoder::accumulate_importance(w, data, nullptr, wrong, ws), Catch::Matchers::Contains("accumulators of"));
}
