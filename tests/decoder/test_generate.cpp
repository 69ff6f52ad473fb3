// Incremental decoding with a KV cache (prune/models/decoder/generate.hpp).
//
// Against tests/decoder/oracle.py (PyTorch, float64, the whole sequence at once): a prompt of 5
// tokens decoded in one call, then the rest of the sequence one token a call, gives every row's
// logits to 1e-4 (relative to max(1, |x|), the bound of test_decoder_oracle) on a gated Llama
// (multi-head), a gated Llama with GQA 4 and llama3 RoPE (BF16 shards), and a gated GPT-2
// (learned positions).
//
// Against our own forward pass recomputed on the whole sequence at every step: greedy
// generation with the cache gives the same tokens and, at each step, the logits the full
// forward gives for the last row (1e-5) -- on a GQA-2 Llama with biases and gates, up to
// max_position_embeddings. Sampling is reproducible from its seed; bad input is refused.
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/generate.hpp>

#include "oracle_cases.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace prune;

namespace {

/// Worst |got - want| / max(1, |want|) over n values.
double worst(std::span<const float> got, const std::vector<double>& want) {
    REQUIRE(got.size() == want.size());
    double e = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) e = std::max(e, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
    return e;
}

/// Decodes the case's longest sequence (a prefill of 5 tokens, then one at a time) and compares
/// every row's logits with the oracle's.
void check_against_oracle(const std::string& name) {
    const nlohmann::json c = oracle::load(name);
    const decoder::weights w = decoder::load_model(oracle::dir() / name);
    const decoder::gates g = oracle::gates_of(c);
    const auto V = static_cast<std::size_t>(w.cfg.vocab_size);
    std::size_t longest = 0, offset = 0, at = 0;
    for (std::size_t b = 0; b < c["sequences"].size(); ++b) {
        if (c["sequences"][b].size() > c["sequences"][longest].size()) {
            longest = b;
            at = offset;
        }
        offset += c["sequences"][b].size();
    }
    const auto ids = c["sequences"][longest].get<std::vector<std::int32_t>>();
    const auto logits = c["logits"].get<std::vector<double>>();
    decoder::workspace ws(2);
    decoder::kv_cache cache = decoder::make_kv_cache(w, static_cast<int>(ids.size()));
    double error = 0.0;
    for (std::size_t start = 0; start < ids.size();) {
        const std::size_t n = start == 0 ? 5 : 1;
        decoder::decode(w, std::span<const std::int32_t>(ids).subspan(start, n), cache, ws, &g);
        const auto* first = logits.data() + (at + start) * V;
        error = std::max(error, worst(ws.logits(), std::vector<double>(first, first + n * V)));
        start += n;
    }
    INFO(name << ": " << ids.size() << " positions, worst logit error " << error);
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("%-24s cached decode vs oracle: %.3g\n", name.c_str(), error);
    CHECK(cache.length == static_cast<int>(ids.size()));
    CHECK(error <= 1e-4);
}

}  // namespace

TEST_CASE("decode with a KV cache equals the oracle's full forward, row by row", "[decoder][generate]") {
    check_against_oracle("llama_mha");
    check_against_oracle("llama_gqa4_bf16_shards");
    check_against_oracle("gpt2_prefix");
}

TEST_CASE("greedy generation with the cache equals recomputing the whole sequence at each step", "[decoder][generate]") {
    const std::string name = "llama_gqa2_tied_bias_f16";  // GQA 2, head_dim 12, tied, biases, gates; 16 positions
    const nlohmann::json c = oracle::load(name);
    const decoder::weights w = decoder::load_model(oracle::dir() / name);
    const decoder::gates g = oracle::gates_of(c);
    const auto V = static_cast<std::size_t>(w.cfg.vocab_size);
    auto prompt = c["sequences"][0].get<std::vector<std::int32_t>>();
    prompt.resize(3);
    decoder::generation_options o;
    o.max_tokens = 20;  // more than the 13 positions left: stops when they run out
    o.gate = &g;
    decoder::workspace ws(2), full_ws(1);
    std::vector<std::int32_t> sequence = prompt;
    double error = 0.0;
    int mismatches = 0;
    const auto out = decoder::generate(w, prompt, o, ws, [&](std::int32_t id, std::span<const float> logits) {
        decoder::sequences seq;
        seq.add(sequence);
        decoder::forward_options fo;
        fo.gate = &g;
        (void)decoder::forward(w, seq, full_ws, fo);
        const std::span<const float> last = full_ws.logits().subspan(full_ws.logits().size() - V, V);
        error = std::max(error, worst(logits, std::vector<double>(last.begin(), last.end())));
        if (decoder::argmax(last) != id) ++mismatches;
        sequence.push_back(id);
    });
    INFO("worst logit difference " << error);
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("greedy, cached vs full forward: %.3g, %zu tokens\n", error, out.size());
    CHECK(out.size() == 14);  // 16 positions: the prompt's 3, 12 fed tokens, and the last one picked
    CHECK(mismatches == 0);
    CHECK(error <= 1e-5);

    // Sampling: the same seed, the same tokens; stops at the end-of-sequence id.
    o.temperature = 1.0;
    o.seed = 5;
    const auto a = decoder::generate(w, prompt, o, ws), b = decoder::generate(w, prompt, o, ws);
    CHECK(a == b);
    o.eos = a[2];
    CHECK(decoder::generate(w, prompt, o, ws).size() <= 3);

    o.temperature = -1.0;
    CHECK_THROWS_WITH(decoder::generate(w, prompt, o, ws), "generate: temperature -1 (expected a finite number >= 0)");
    o.temperature = 0.0;
    CHECK_THROWS_WITH(decoder::generate(w, std::vector<std::int32_t>{}, o, ws), "generate: the prompt has no tokens (expected >= 1)");
    decoder::kv_cache cache = decoder::make_kv_cache(w, 4);
    CHECK_THROWS_WITH(decoder::decode(w, std::vector<std::int32_t>{1, 2, 3, 4, 5}, cache, ws),
                      "decode: 5 new tokens after 0 do not fit in a cache of 4 positions");
}
