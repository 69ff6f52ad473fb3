// Packed attention (include/prune/nn/attention.hpp) against closed truths of its own: central
// finite differences in double for every input and gate; a decode step against a KV cache
// equals the last row of the prefill (also with a cache that has room to grow, kv_ends); the
// bits do not depend on the thread count, nor on whether the probabilities were recorded or
// recomputed by the backward pass; a gated-off head skipped at inference gives the context the
// full computation gives. (tests/nn/test_nn_oracle.cpp compares with PyTorch.)
#include <prune/nn/attention.hpp>

#include "../support/bits.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace prune;
using prune_test::same_bits;

namespace {

// One attention problem with random inputs: sequences of `lengths` keys, every row a query.
template <class S>
struct problem {
    std::vector<std::int64_t> q_off{0}, kv_off{0}, positions;
    nn::attention_layout layout;
    std::vector<S> q, k, v, gates, d_gated;
    int Hq, Hkv, d;

    problem(const std::vector<int>& lengths, int q_heads, int kv_heads, int head_dim, bool causal, unsigned seed)
        : Hq(q_heads), Hkv(kv_heads), d(head_dim) {
        for (int n : lengths) {
            q_off.push_back(q_off.back() + n);
            kv_off.push_back(kv_off.back() + n);
        }
        layout.q_offsets = q_off;
        layout.kv_offsets = kv_off;
        layout.q_heads = Hq;
        layout.kv_heads = Hkv;
        layout.head_dim = d;
        layout.causal = causal;
        std::mt19937 rng(seed);
        std::normal_distribution<double> normal(0.0, 1.0);
        auto fill = [&](std::vector<S>& x, std::int64_t rows, int heads) {
            x.resize(static_cast<std::size_t>(rows * heads * d));
            for (auto& e : x) e = static_cast<S>(normal(rng));
        };
        fill(q, q_off.back(), Hq);
        fill(k, kv_off.back(), Hkv);
        fill(v, kv_off.back(), Hkv);
        fill(d_gated, q_off.back(), Hq);
        gates.resize(static_cast<std::size_t>(Hq));
        for (int h = 0; h < Hq; ++h) gates[static_cast<std::size_t>(h)] = static_cast<S>(0.5 + 0.25 * h);
    }

    // Outputs of one forward (+ backward) pass.
    struct result {
        std::vector<S> context, gated, dq, dk, dv;
        std::vector<double> dgates;
    };

    result run(int threads, bool backward = true, S* probs = nullptr) const {
        result r;
        r.context.resize(q.size());
        r.gated.resize(q.size());
        r.dq.resize(q.size());
        r.dk.resize(k.size());
        r.dv.resize(v.size());
        r.dgates.assign((q_off.size() - 1) * static_cast<std::size_t>(Hq), 0.0);
        std::vector<S> dg = d_gated;
        nn::attention_tensors<S> t;
        t.q = q.data(), t.ldq = Hq * d, t.k = k.data(), t.ldk = Hkv * d, t.v = v.data(), t.ldv = Hkv * d;
        t.context = r.context.data(), t.ldc = Hq * d, t.gated = r.gated.data(), t.ldg = Hq * d, t.gates = gates;
        t.probs = probs;
        t.d_gated = dg.data(), t.ldd = Hq * d, t.dq = r.dq.data(), t.lddq = Hq * d, t.dk = r.dk.data(), t.lddk = Hkv * d;
        t.dv = r.dv.data(), t.lddv = Hkv * d, t.gate_grads = r.dgates.data(), t.gate_stride = static_cast<std::size_t>(Hq);
        nn::thread_pool pool(threads);
        nn::attention_workspace<S> ws;
        nn::attention_forward(pool, layout, t, ws);
        if (backward) nn::attention_backward(pool, layout, t, ws);
        return r;
    }

    // The loss <d_gated, gated context> of a forward pass.
    double loss() const {
        const result r = run(1, false);
        double s = 0.0;
        for (std::size_t i = 0; i < r.gated.size(); ++i) s += static_cast<double>(r.gated[i]) * static_cast<double>(d_gated[i]);
        return s;
    }
};

// Central difference of p.loss() with respect to x[i].
double numeric(problem<double>& p, std::vector<double>& x, std::size_t i) {
    const double h = 1e-6, keep = x[i];
    x[i] = keep + h;
    const double up = p.loss();
    x[i] = keep - h;
    const double down = p.loss();
    x[i] = keep;
    return (up - down) / (2 * h);
}

}  // namespace

TEST_CASE("attention gradients equal central finite differences (double): causal GQA and bidirectional", "[nn][attention]") {
    for (const bool causal : {true, false}) {
        problem<double> p({4, 1, 6}, 4, 2, 3, causal, causal ? 1 : 2);
        const auto analytic = p.run(1);
        // Per-sequence gate gradients sum to the batch gradient of each gate.
        for (int h = 0; h < p.Hq; ++h) {
            double total = 0.0;
            for (std::size_t b = 0; b + 1 < p.q_off.size(); ++b) total += analytic.dgates[b * 4 + static_cast<std::size_t>(h)];
            INFO("gate " << h << (causal ? " causal" : " bidirectional"));
            CHECK(total == Approx(numeric(p, p.gates, static_cast<std::size_t>(h))).epsilon(1e-6).margin(1e-8));
        }
        for (auto [x, g, what] : {std::tuple{&p.q, &analytic.dq, "dQ"}, std::tuple{&p.k, &analytic.dk, "dK"},
                                  std::tuple{&p.v, &analytic.dv, "dV"}}) {
            for (std::size_t i = 0; i < x->size(); ++i) {
                INFO(what << "[" << i << "]" << (causal ? " causal" : " bidirectional"));
                CHECK((*g)[i] == Approx(numeric(p, *x, i)).epsilon(1e-6).margin(1e-8));
            }
        }
    }
}

TEST_CASE("a decode step against the KV cache equals the last row of the prefill", "[nn][attention]") {
    // Prefill: causal attention over every row of 3 sequences (GQA 2). Decode: one query row per
    // sequence, its last, at position len - 1, against the same keys -- packed, and in a cache
    // with room to grow (each sequence's keys at a fixed stride of 16 rows, kv_ends marking the end).
    const std::vector<int> lengths = {5, 1, 9};
    problem<float> p(lengths, 4, 2, 8, true, 3);
    const auto full = p.run(1, false);
    const int Hq = 4, Hkv = 2, d = 8;
    const auto width = static_cast<std::size_t>(Hq * d), kv_width = static_cast<std::size_t>(Hkv * d);
    std::vector<float> q_last;
    std::vector<std::int64_t> positions, q_off{0};
    for (std::size_t b = 0; b < lengths.size(); ++b) {
        const auto row = static_cast<std::size_t>(p.q_off[b + 1] - 1);
        q_last.insert(q_last.end(), p.q.begin() + static_cast<std::ptrdiff_t>(row * width),
                      p.q.begin() + static_cast<std::ptrdiff_t>((row + 1) * width));
        positions.push_back(lengths[b] - 1);
        q_off.push_back(static_cast<std::int64_t>(b) + 1);
    }
    // The cache: sequence b's keys at rows [16 b, 16 b + len_b).
    std::vector<float> k_cache(3 * 16 * kv_width, 0.0f), v_cache(3 * 16 * kv_width, 0.0f);
    std::vector<std::int64_t> cache_begin, cache_end;
    for (std::size_t b = 0; b < lengths.size(); ++b) {
        const auto from = static_cast<std::size_t>(p.kv_off[b]) * kv_width, n = static_cast<std::size_t>(lengths[b]) * kv_width;
        std::copy_n(p.k.begin() + static_cast<std::ptrdiff_t>(from), n, k_cache.begin() + static_cast<std::ptrdiff_t>(b * 16 * kv_width));
        std::copy_n(p.v.begin() + static_cast<std::ptrdiff_t>(from), n, v_cache.begin() + static_cast<std::ptrdiff_t>(b * 16 * kv_width));
        cache_begin.push_back(static_cast<std::int64_t>(b) * 16);
        cache_end.push_back(static_cast<std::int64_t>(b) * 16 + lengths[b]);
    }
    cache_begin.push_back(3 * 16);
    for (const bool strided : {false, true}) {
        nn::attention_layout layout = p.layout;
        layout.q_offsets = q_off;
        layout.q_positions = positions;
        if (strided) {
            layout.kv_offsets = cache_begin;
            layout.kv_ends = cache_end;
        }
        std::vector<float> context(q_last.size()), gated(q_last.size());
        nn::attention_tensors<float> t;
        t.q = q_last.data(), t.ldq = Hq * d;
        t.k = strided ? k_cache.data() : p.k.data(), t.ldk = Hkv * d;
        t.v = strided ? v_cache.data() : p.v.data(), t.ldv = Hkv * d;
        t.context = context.data(), t.ldc = Hq * d, t.gated = gated.data(), t.ldg = Hq * d, t.gates = p.gates;
        nn::thread_pool pool(2);
        nn::attention_workspace<float> ws;
        nn::attention_forward(pool, layout, t, ws);
        for (std::size_t b = 0; b < lengths.size(); ++b) {
            const auto row = static_cast<std::size_t>(p.q_off[b + 1] - 1);
            for (std::size_t c = 0; c < width; ++c) {
                INFO("sequence " << b << " column " << c << (strided ? " (strided cache)" : ""));
                // A 1-row product may round differently from the same row inside a larger one.
                CHECK(gated[b * width + c] == Approx(full.gated[row * width + c]).epsilon(1e-6).margin(1e-6));
            }
        }
    }
}

TEST_CASE("attention gives the same bits on 1, 2 and 3 threads, with or without recorded probabilities", "[nn][attention]") {
    problem<float> p({37, 1, 64, 9, 120}, 8, 2, 16, true, 4);
    const auto one = p.run(1);
    std::size_t squares = 0;
    for (std::size_t b = 0; b + 1 < p.kv_off.size(); ++b) {
        const auto n = static_cast<std::size_t>(p.kv_off[b + 1] - p.kv_off[b]);
        squares += n * n;
    }
    std::vector<float> probs(squares * 8);
    for (int threads : {2, 3}) {
        for (float* recorded : {static_cast<float*>(nullptr), probs.data()}) {
            const auto other = p.run(threads, true, recorded);
            INFO(threads << " threads" << (recorded ? ", probabilities recorded" : ""));
            CHECK(same_bits(one.context, other.context));
            CHECK(same_bits(one.gated, other.gated));
            CHECK(same_bits(one.dq, other.dq));
            CHECK(same_bits(one.dk, other.dk));
            CHECK(same_bits(one.dv, other.dv));
            CHECK(same_bits(one.dgates, other.dgates));
        }
    }
}

TEST_CASE("skipping gated-off heads at inference gives the computed context", "[nn][attention]") {
    problem<float> p({6, 3}, 4, 4, 8, false, 5);
    p.gates = {1.0f, 0.0f, 0.5f, 0.0f};
    const auto full = p.run(1, false);
    std::vector<float> context(p.q.size());
    nn::attention_tensors<float> t;
    t.q = p.q.data(), t.ldq = 32, t.k = p.k.data(), t.ldk = 32, t.v = p.v.data(), t.ldv = 32;
    t.context = context.data(), t.ldc = 32, t.gates = p.gates, t.skip_gated_off = true;  // gates applied in place
    nn::thread_pool pool(2);
    nn::attention_workspace<float> ws;
    nn::attention_forward(pool, p.layout, t, ws);
    for (std::size_t i = 0; i < context.size(); ++i) {
        CHECK(context[i] == full.gated[i]);  // == : 0 == -0 where a gate is 0
    }
}
