// Tests for prune/models/decoder/choices.hpp: log p(continuation | prompt) equals the difference
// of two whole-sequence NLLs from decoder::forward (itself checked against PyTorch in
// tests/decoder/test_oracle.cpp), for a Llama with GQA, with and without gates, whatever the
// packing of items into batches; a prompt too long for the context is cut from its start; bad
// items are refused by index.
#include <prune/models/decoder/choices.hpp>
#include <prune/models/decoder/pretrain.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

namespace dec = prune::decoder;

namespace {

/// A seeded 2-layer Llama, 4 query heads on 2 K/V heads, 50 ids, 24 positions.
dec::weights small_llama() {
    dec::llama_shape s;
    s.layers = 2;
    s.hidden = 32;
    s.heads = 4;
    s.kv_heads = 2;
    s.intermediate = 48;
    s.vocab = 50;
    s.max_positions = 24;
    return dec::initial_weights(dec::llama_config(s), 5, 0.3f);  // stddev 0.3: logits far from uniform
}

/// Summed NLL of positions 1..n-1 of one sequence, by forward.
double sequence_nll(const dec::weights& w, const std::vector<std::int32_t>& ids, dec::workspace& ws, const dec::gates* g) {
    dec::sequences s;
    s.add(ids);
    dec::forward_options o;
    o.gate = g;
    return dec::forward(w, s, ws, o).total_nll();
}

std::vector<std::int32_t> ids(std::size_t n, std::int32_t start) {
    std::vector<std::int32_t> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(static_cast<std::int32_t>((start + 7 * static_cast<std::int32_t>(i)) % 50));
    return v;
}

}  // namespace

TEST_CASE("log_likelihoods: nll(prompt) - nll(prompt + continuation), any packing, with gates", "[decoder]") {
    const dec::weights w = small_llama();
    dec::workspace ws(2);
    std::vector<dec::continuation> items{{ids(5, 1), ids(1, 3)}, {ids(9, 2), ids(4, 11)}, {ids(1, 4), ids(3, 5)}, {ids(12, 9), ids(2, 0)}};
    dec::gates g;
    g.heads = {{1.0f, 0.0f, 1.0f, 0.5f}, {1.0f, 1.0f, 0.0f, 1.0f}};
    g.mlps = {1.0f, 0.0f};
    const std::vector<const dec::gates*> cases{nullptr, &g};
    for (const dec::gates* gate : cases) {
        const auto all = dec::log_likelihoods(w, items, ws, gate);
        const auto one_by_one = dec::log_likelihoods(w, items, ws, gate, 1);  // every item its own batch
        REQUIRE(all.size() == items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            auto whole = items[i].prompt;
            whole.insert(whole.end(), items[i].tokens.begin(), items[i].tokens.end());
            const double expected = sequence_nll(w, items[i].prompt, ws, gate) - sequence_nll(w, whole, ws, gate);
            // float32 activations: a GEMM's rounding depends on how many rows its batch has (seen:
            // 4.5e-7 relative), so packings agree to float precision, not bit for bit.
            CHECK(all[i] == Approx(expected).epsilon(1e-5));
            CHECK(one_by_one[i] == Approx(all[i]).epsilon(1e-5));
            CHECK(all[i] < 0.0);
        }
    }
}

TEST_CASE("log_likelihoods: a long prompt keeps its last tokens", "[decoder]") {
    const dec::weights w = small_llama();  // 24 positions
    dec::workspace ws(1);
    const auto prompt = ids(30, 1), tokens = ids(4, 6);
    const std::vector<dec::continuation> cut{{std::vector<std::int32_t>(prompt.end() - 20, prompt.end()), tokens}};
    const std::vector<dec::continuation> long_one{{prompt, tokens}};
    CHECK(dec::log_likelihoods(w, long_one, ws)[0] == dec::log_likelihoods(w, cut, ws)[0]);
}

TEST_CASE("log_likelihoods refuses empty items and continuations as long as the context, by index", "[decoder]") {
    const dec::weights w = small_llama();
    dec::workspace ws(1);
    const std::vector<dec::continuation> empty{{ids(3, 1), ids(1, 2)}, {ids(3, 1), {}}};
    CHECK_THROWS_WITH(dec::log_likelihoods(w, empty, ws), Catch::Contains("item 1 has an empty continuation"));
    const std::vector<dec::continuation> too_long{{ids(3, 1), ids(24, 2)}};
    CHECK_THROWS_WITH(dec::log_likelihoods(w, too_long, ws), Catch::Contains("item 0's continuation has 24 tokens"));
    const std::vector<dec::continuation> outside{{ids(3, 1), {50}}};
    CHECK_THROWS_AS(dec::log_likelihoods(w, outside, ws), prune::value_error);
}

TEST_CASE("argmax: the first of equal maxima", "[decoder]") {
    const std::vector<double> v{1.0, 3.0, 3.0, -1.0};
    CHECK(dec::argmax(v) == 1);
}
