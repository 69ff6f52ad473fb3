// The decoders against tests/decoder/oracle.py: an independent PyTorch implementation of
// Hugging Face's Llama and GPT-2 math in float64 from the same stored weights. Our float32
// logits must match to 1e-4 (relative to max(1, |expected|)) on six odd configurations (GQA
// ratios 1, 2, 4; head_dim != hidden / heads; tied and untied lm_head; q/k/v/o and MLP biases;
// F32, F16, BF16; shards; llama3 and linear RoPE scaling; GPT-2 with and without the
// `transformer.` prefix; sequences of length 1 and of max_position_embeddings; random
// query-head, KV-group and MLP gates with heads, a whole K/V group and an MLP gated off), and
// the per-sequence NLL to 1e-4 relative. The same logits come out bit for bit on 1 and 2
// threads, with blocked logits (keep_logits = false) the NLL agrees, and a model saved in its
// own dtype reloads to the same bits.
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>

#include "oracle_cases.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace prune;
using oracle::gates_of;
using oracle::sequences_of;

namespace {

fs::path oracle_dir() { return oracle::dir(); }
nlohmann::json load_case(const std::string& name) { return oracle::load(name); }

double worst_error(std::span<const float> got, const nlohmann::json& want) {
    REQUIRE(got.size() == want.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double w = want[i].get<double>();
        worst = std::max(worst, std::abs(static_cast<double>(got[i]) - w) / std::max(1.0, std::abs(w)));
    }
    return worst;
}

void check_case(const std::string& name) {
    const nlohmann::json c = load_case(name);
    const decoder::weights w = decoder::load_model(oracle_dir() / name);
    const decoder::sequences seq = sequences_of(c);
    const decoder::gates g = gates_of(c);
    decoder::forward_options options;
    options.gate = &g;

    decoder::workspace ws2(2);
    const decoder::forward_result r = decoder::forward(w, seq, ws2, options);
    const double logit_error = worst_error(ws2.logits(), c["logits"]);
    INFO(name << ": worst logit error " << logit_error);
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("%-28s logits %.3g\n", name.c_str(), logit_error);
    CHECK(logit_error <= 1e-4);
    const auto& nll = c["nll"];
    REQUIRE(r.nll.size() == nll.size());
    for (std::size_t b = 0; b < nll.size(); ++b) {
        INFO("sequence " << b);
        CHECK(std::abs(r.nll[b] - nll[b].get<double>()) <= 1e-4 * std::max(1.0, std::abs(nll[b].get<double>())));
        CHECK(r.predicted[b] == seq.length(static_cast<int>(b)) - 1);
    }

    // One thread: the same bits.
    const std::vector<float> two(ws2.logits().begin(), ws2.logits().end());
    decoder::workspace ws1(1);
    const decoder::forward_result r1 = decoder::forward(w, seq, ws1, options);
    CHECK(std::equal(two.begin(), two.end(), ws1.logits().begin(), ws1.logits().end()));
    CHECK(r1.nll == r.nll);

    // Blocked logits: the same NLL (to rounding: other product shapes).
    options.keep_logits = false;
    const decoder::forward_result blocked = decoder::forward(w, seq, ws1, options);
    for (std::size_t b = 0; b < nll.size(); ++b) CHECK(std::abs(blocked.nll[b] - r.nll[b]) <= 1e-5 * std::max(1.0, r.nll[b]));

    // Saved in its own dtype, reloaded: the same weights.
    decoder::load_report report;
    (void)decoder::load_model(oracle_dir() / name, &report);
    const fs::path saved = oracle_dir() / (name + "_saved");
    decoder::save_model(w, saved, report.dtype);
    decoder::weights back = decoder::load_model(saved);
    decoder::weights original = w;
    const auto a = decoder::parameters(original), b = decoder::parameters(back);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        INFO(a[i].name);
        CHECK(a[i].name == b[i].name);
        CHECK(std::equal(a[i].values().begin(), a[i].values().end(), b[i].values().begin(), b[i].values().end()));
    }
}

}  // namespace

TEST_CASE("Llama, multi-head, untied, F32, lengths 1..max", "[decoder][oracle]") { check_case("llama_mha"); }
TEST_CASE("Llama, GQA 2, head_dim 12, tied, biases, F16", "[decoder][oracle]") { check_case("llama_gqa2_tied_bias_f16"); }
TEST_CASE("Llama, GQA 4, BF16 shards, llama3 RoPE scaling", "[decoder][oracle]") { check_case("llama_gqa4_bf16_shards"); }
TEST_CASE("Llama, one K/V head, linear RoPE scaling", "[decoder][oracle]") { check_case("llama_linear_rope"); }
TEST_CASE("GPT-2 with the transformer. prefix, gated", "[decoder][oracle]") { check_case("gpt2_prefix"); }
TEST_CASE("GPT-2 without the prefix, F16 shards", "[decoder][oracle]") { check_case("gpt2_noprefix_f16"); }
