// Taylor scores and Block Influence on decoders (include/prune/models/decoder/unit_scores.hpp)
// against tests/decoder/unit_scores_oracle.py: autograd in float64 through the oracle's own
// forward pass on the checkpoints oracle.py writes (read back from their safetensors files), the
// units read off the Hugging Face tensors in their file layout, and BI from the oracle's hidden
// states. Cases: a GQA-2 Llama with q/k/v/o and MLP biases and a tied head (F16), a GQA-4 Llama
// (BF16 shards, llama3 RoPE) and GPT-2 (Conv1D weights), all three with the case's gates (a head,
// a K/V group and an MLP gated off).
// Observed worst errors: Taylor 7.1e-7 of the largest score of that kind, BI 1.3e-8 (see the
// tolerances below). Closed forms: a layer whose o_proj and down weights and biases are zero
// has BI 0; zero residual vectors follow the documented convention (both zero: cos 1; one: cos 0).
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/unit_scores.hpp>

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

// Observed worst errors (float32 passes vs float64 autograd; PRUNE_TEST_VERBOSE=1 prints them):
// Taylor 3.8e-7 / 7.1e-7 / 4.5e-7 (GQA 2 / GQA 4 / GPT-2, of the largest score of each kind), BI
// 1.3e-8 / 9.9e-9 / 3.3e-9 (absolute; BI is at most 2); the bounds leave 14x and 77x.
constexpr double taylor_tolerance = 1e-5;
constexpr double bi_tolerance = 1e-6;

bool verbose() { return std::getenv("PRUNE_TEST_VERBOSE") != nullptr; }

std::vector<double> flat(const std::vector<std::vector<double>>& rows) {
    std::vector<double> out;
    for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
    return out;
}

/// max |got - want| / max(floor, max |want|).
double relative_error(const std::vector<double>& got, const std::vector<double>& want, double floor = 1e-30) {
    REQUIRE(got.size() == want.size());
    double worst = 0.0, scale = floor;
    for (std::size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::abs(got[i] - want[i]));
        scale = std::max(scale, std::abs(want[i]));
    }
    return worst / scale;
}

/// The oracle's unit_scores.json for `name` (written on first use of each case).
nlohmann::json truth(const std::string& name) {
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/decoder/unit_scores_oracle.py " +
                                oracle::dir().string() + " " + name;
    REQUIRE(std::system(command.c_str()) == 0);
    return oracle::load(name, "unit_scores.json");
}

using rows = std::vector<std::vector<double>>;

void check_taylor(const decoder::taylor_scores& got, const nlohmann::json& want) {
    const double heads = relative_error(flat(got.heads), flat(want["heads"].get<rows>()));
    const double kv = relative_error(flat(got.kv_groups), flat(want["kv_groups"].get<rows>()));
    const double mlps = relative_error(got.mlps, want["mlps"].get<std::vector<double>>());
    const double channels = relative_error(flat(got.channels), flat(want["channels"].get<rows>()));
    const double layers = relative_error(got.layers, want["layers"].get<std::vector<double>>());
    if (verbose())
        std::printf("  taylor: heads %.2g kv_groups %.2g mlps %.2g channels %.2g layers %.2g\n", heads, kv, mlps, channels, layers);
    INFO("heads " << heads << ", kv_groups " << kv << ", mlps " << mlps << ", channels " << channels << ", layers " << layers);
    CHECK(heads <= taylor_tolerance);
    CHECK(kv <= taylor_tolerance);
    CHECK(mlps <= taylor_tolerance);
    CHECK(channels <= taylor_tolerance);
    CHECK(layers <= taylor_tolerance);
}

void check_case(const std::string& name) {
    const nlohmann::json c = oracle::load(name), want = truth(name);
    const decoder::weights w = decoder::load_model(oracle::dir() / name);
    const auto data = c["sequences"].get<std::vector<std::vector<std::int32_t>>>();
    const decoder::gates g = oracle::gates_of(c);
    if (verbose()) std::printf("%s\n", name.c_str());
    const decoder::taylor_scores t = decoder::taylor_importance(w, data, &g, 2, 2);
    check_taylor(t, want["taylor"]);
    // Other batches (other token weights per batch, other product shapes): the same scores to rounding.
    const decoder::taylor_scores one = decoder::taylor_importance(w, data, &g, 1, 1);
    CHECK(relative_error(flat(one.heads), flat(t.heads)) <= 1e-5);
    CHECK(relative_error(one.layers, t.layers) <= 1e-5);
    const std::vector<double> bi = decoder::block_influence(w, data, &g, 3, 2);
    const double bi_error = relative_error(bi, want["block_influence"].get<std::vector<double>>(), 1.0);
    if (verbose()) std::printf("  block influence %.2g\n", bi_error);
    CHECK(bi_error <= bi_tolerance);
    CHECK(decoder::block_influence(w, data, &g, 3, 1) == bi);  // threads: the same bits
    CHECK(relative_error(decoder::block_influence(w, data, &g, 1, 1), bi, 1.0) <= 1e-6);  // other batches: to rounding
}

/// Makes layer l's output equal its input: o_proj and down weights and biases zero.
void make_identity(decoder::layer_weights& L) {
    for (auto* v : {&L.out, &L.out_bias, &L.down, &L.down_bias}) std::fill(v->begin(), v->end(), 0.0f);
}

}  // namespace

TEST_CASE("Decoder unit scores, Llama GQA 2, tied, biases", "[decoder][unit_scores]") { check_case("llama_gqa2_tied_bias_f16"); }
TEST_CASE("Decoder unit scores, Llama GQA 4", "[decoder][unit_scores]") { check_case("llama_gqa4_bf16_shards"); }
TEST_CASE("Decoder unit scores, GPT-2", "[decoder][unit_scores]") { check_case("gpt2_prefix"); }

TEST_CASE("Taylor scores: rescaling invariance of attention", "[decoder][unit_scores]") {
    // Scaling a group's k rows by a and its q rows by 1/a leaves the scores unchanged, and so does
    // scaling its v rows by a and its heads' o_proj columns by 1/a; so (derivative at a = 1) the
    // signed k + v terms equal the signed q + o terms of its heads, and a K/V group of one head
    // (GPT-2) scores exactly twice that head.
    const nlohmann::json c = oracle::load("gpt2_prefix");
    const decoder::weights w = decoder::load_model(oracle::dir() / "gpt2_prefix");
    const auto t = decoder::taylor_importance(w, c["sequences"].get<std::vector<std::vector<std::int32_t>>>(), nullptr, 8, 1);
    std::vector<double> twice;
    for (double h : flat(t.heads)) twice.push_back(2.0 * h);
    CHECK(relative_error(flat(t.kv_groups), twice) <= 1e-5);
}

TEST_CASE("Block Influence of a layer that returns its input is 0", "[decoder][unit_scores]") {
    // Closed form: h_{l+1} = h_l token by token, so every cosine is 1. Llama with o_proj and
    // MLP biases (they must be zeroed too), and GPT-2.
    for (const char* name : {"llama_gqa2_tied_bias_f16", "gpt2_prefix"}) {
        const nlohmann::json c = oracle::load(name);
        decoder::weights w = decoder::load_model(oracle::dir() / name);
        const auto data = c["sequences"].get<std::vector<std::vector<std::int32_t>>>();
        const double before = decoder::block_influence(w, data)[0];
        make_identity(w.layers[0]);
        const std::vector<double> bi = decoder::block_influence(w, data);
        INFO(name << ": BI of layer 0 " << before << " -> " << bi[0]);
        CHECK(before > 0.1);
        CHECK(std::abs(bi[0]) <= 1e-12);
        CHECK(bi[1] > 0.0);
    }
}

TEST_CASE("Block Influence with zero residual vectors", "[decoder][unit_scores]") {
    SECTION("both zero: cos 1") {
        // Llama without biases, token 7's embedding zero: RMSNorm(0) = 0, so q = k = v = 0 and
        // the MLP's input is 0: a sequence of that token alone stays 0 through every layer.
        decoder::weights w = decoder::load_model(oracle::dir() / "llama_mha");
        REQUIRE(w.layers[0].qkv_bias.empty());
        REQUIRE(w.layers[0].up_bias.empty());
        const auto H = static_cast<std::size_t>(w.cfg.hidden_size);
        std::fill_n(w.embed.begin() + static_cast<std::ptrdiff_t>(7 * H), H, 0.0f);
        const std::vector<std::vector<std::int32_t>> data{{7}, {7, 7, 7}};
        CHECK(decoder::block_influence(w, data) == std::vector<double>{0.0, 0.0});
    }
    SECTION("one zero: cos 0") {
        // GPT-2, token 5's embedding and position 0's zero, layer 0 returning its input: the
        // sequence {5} enters layer 1 as 0 (layer 0: both zero, BI 0) and leaves it non-zero
        // (ln_1 of 0 is ln_1's bias, and c_proj has a bias): BI of layer 1 = 1 - 0.
        decoder::weights w = decoder::load_model(oracle::dir() / "gpt2_prefix");
        const auto H = static_cast<std::size_t>(w.cfg.hidden_size);
        std::fill_n(w.embed.begin() + static_cast<std::ptrdiff_t>(5 * H), H, 0.0f);
        std::fill_n(w.positions.begin(), H, 0.0f);
        make_identity(w.layers[0]);
        const std::vector<std::vector<std::int32_t>> data{{5}};
        CHECK(decoder::block_influence(w, data) == std::vector<double>{0.0, 1.0});
    }
}

TEST_CASE("Decoder unit scores refuse bad data", "[decoder][unit_scores]") {
    const decoder::weights w = decoder::load_model(oracle::dir() / "llama_mha");  // vocab 50, 16 positions
    const std::vector<std::vector<std::int32_t>> bad_token{{1, 2, 3}, {4, 50}}, empty_row{{1, 2}, {}}, none{}, single{{1}, {2}};
    CHECK_THROWS_WITH(decoder::taylor_importance(w, bad_token), Catch::Matchers::Contains("example 1 has token id 50"));
    CHECK_THROWS_WITH(decoder::block_influence(w, empty_row), Catch::Matchers::Contains("example 1 is empty"));
    CHECK_THROWS_WITH(decoder::block_influence(w, none), Catch::Matchers::Contains("no sequences"));
    CHECK_THROWS_WITH(decoder::taylor_importance(w, single), Catch::Matchers::Contains("the data predict no token"));
    CHECK(decoder::block_influence(w, single).size() == 2);  // BI needs no prediction
    CHECK_THROWS_WITH(decoder::taylor_importance(w, bad_token, nullptr, 0), Catch::Matchers::Contains("batch_size must be > 0"));
    decoder::gates g;
    g.mlps = {1.0f};
    CHECK_THROWS_AS(decoder::block_influence(w, single, &g), shape_error);
    CHECK_THROWS_AS(decoder::taylor_importance(w, bad_token, &g), value_error);  // the data are checked first
}
