// tests/support/tiny_bert.hpp: the tiny BERT and the toy task that the binary-driving tests
// share (tests/badinput, tests/determinism, tests/finetune): a config small enough for ASan
// runs (and small_config for tests that need their own dims), and "does token A come before
// token B?" sequences, which need attention to learn.
#pragma once

#include <prune/models/bert/config.hpp>

#include <cstddef>
#include <random>
#include <vector>

namespace prune_test {

/// config::make(layers, hidden, heads, ffn, vocab, labels) with 16 positions (the tests'
/// sequences are short) and the HF defaults for the rest (2 token types, eps 1e-12, GELU).
inline prune::bert::config small_config(int layers, int hidden, int heads, int ffn, int vocab, int labels) {
    prune::bert::config c = prune::bert::config::make(layers, hidden, heads, ffn, vocab, labels);
    c.max_position_embeddings = 16;
    return c;
}

/// vocab 20, hidden 32, 2 layers x 4 heads, FFN 64, 16 positions, 2 labels.
inline prune::bert::config tiny_config() { return small_config(2, 32, 4, 64, 20, 2); }

/// Token A and token B of the toy task ([CLS] is 2, the fillers are 5..19).
inline constexpr int token_a = 3, token_b = 4;

/// `n` sequences of the toy task from `seed`: [CLS], then 5 to 9 fillers in [5, 20) with A and
/// B once each at random positions; label 1 when A comes before B. Sequence: any type with
/// `input_ids` (a vector of integers) and an assignable `label`.
template <class Sequence>
std::vector<Sequence> a_before_b(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<Sequence> data(n);
    for (auto& s : data) {
        const int len = std::uniform_int_distribution<int>(6, 10)(rng);
        s.input_ids.assign(static_cast<std::size_t>(len), 0);
        s.input_ids[0] = 2;
        for (int i = 1; i < len; ++i) s.input_ids[static_cast<std::size_t>(i)] = std::uniform_int_distribution<int>(5, 19)(rng);
        const int pa = std::uniform_int_distribution<int>(1, len - 1)(rng);
        int pb = pa;
        while (pb == pa) pb = std::uniform_int_distribution<int>(1, len - 1)(rng);
        s.input_ids[static_cast<std::size_t>(pa)] = token_a;
        s.input_ids[static_cast<std::size_t>(pb)] = token_b;
        s.label = pa < pb ? 1 : 0;
    }
    return data;
}

}  // namespace prune_test
