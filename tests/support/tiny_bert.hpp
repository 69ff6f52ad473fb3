// tests/support/tiny_bert.hpp: the tiny BERT and the toy task that the binary-driving tests
// share (tests/badinput, tests/determinism, tests/finetune): a config small enough for ASan
// runs, and "does token A come before token B?" sequences, which need attention to learn.
#pragma once

#include <prune/bert/config.hpp>

#include <cstddef>
#include <random>
#include <vector>

namespace prune_test {

/// vocab 20, hidden 32, 2 layers x 4 heads, FFN 64, 16 positions, 2 labels.
inline prune::bert::config tiny_config() {
    prune::bert::config c;
    c.vocab_size = 20;
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 64;
    c.max_position_embeddings = 16;
    c.num_labels = 2;
    return c;
}

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
