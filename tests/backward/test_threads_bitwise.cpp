// Tests that the training pass (include/prune/models/bert/backward.hpp) gives the same bits on 1, 2
// and 3 threads, with whatever products this build and CPU use (Eigen in a test binary, which
// does not re-execute for OpenBLAS's wide kernels; OpenBLAS's SSE3 kernels in the ASan build;
// OpenBLAS SkylakeX with OPENBLAS_CORETYPE=SkylakeX): a whole classification fine-tuning step
// (train_pass) with dropout and fractional gates (the split products on their own:
// tests/nn/test_nn_gemm.cpp). The truth is the 1-thread result; equality is bit for bit (memcmp).
#include <prune/models/bert/backward.hpp>

#include "../support/bits.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace prune::bert;

using prune_test::bits_differ;

TEST_CASE("a fine-tuning step (train_pass) gives the same bits on 1, 2 and 3 threads", "[backward][threads]") {
    // 2 layers, hidden 128, 4 heads, FFN 512; 9 sequences of uneven lengths (45 to 101: 657 tokens, not a
    // multiple of any block), dropout on, head gates fractional / zero, an MLP gate below 1: every
    // product of the pass is split, every row loop too (>= 65,536 elements), and the gate
    // gradients are reduced per sequence.
    config c = config::make(2, 128, 4, 512, 50, 3);
    c.max_position_embeddings = 128;
    const weights w = random_weights(c, 8, 0.1f);
    packed_batch batch;
    std::vector<int> labels;
    for (int b = 0; b < 9; ++b) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(45 + 7 * b));
        for (std::size_t t = 0; t < ids.size(); ++t) ids[t] = static_cast<std::int32_t>((b * 7 + static_cast<int>(t) * 13) % 50);
        batch.add(ids);
        labels.push_back(b % 3);
    }
    REQUIRE(batch.tokens() == 657);
    gate_values gates;
    gates.heads = {{1.0, 0.5, 0.0, 1.0}, {0.3, 1.0, 1.0, 0.8}};
    gates.mlps = {0.7, 1.0};
    training_options o;
    o.dropout = true;
    o.seed = 4;
    struct result {
        double loss;
        weights grads;
        std::vector<float> logits;
        std::vector<double> losses, heads, mlps;
    };
    auto step = [&](int threads) {
        training_workspace<float> ws(threads);
        result r{0.0, zeros_like(w), {}, {}, {}, {}};
        r.loss = train_pass(w, batch, {labels, {}}, &gates, ws, &r.grads, o);
        r.logits.assign(ws.logits().begin(), ws.logits().end());
        r.losses.assign(ws.example_losses().begin(), ws.example_losses().end());
        r.heads = ws.gates().heads_by_example;
        r.mlps = ws.gates().mlps_by_example;
        return r;
    };
    result one = step(1);  // first: with OpenBLAS as the process started (threading its own calls)
    for (const int threads : {2, 3}) {
        result other = step(threads);
        INFO(threads << " threads");
        CHECK(one.loss == other.loss);
        CHECK(bits_differ(one.logits.data(), other.logits.data(), one.logits.size()) == 0);
        CHECK(bits_differ(one.losses.data(), other.losses.data(), one.losses.size()) == 0);
        REQUIRE(one.heads.size() == other.heads.size());
        CHECK(bits_differ(one.heads.data(), other.heads.data(), one.heads.size()) == 0);
        REQUIRE(one.mlps.size() == other.mlps.size());
        CHECK(bits_differ(one.mlps.data(), other.mlps.data(), one.mlps.size()) == 0);
        const auto p1 = parameters(one.grads), p2 = parameters(other.grads);
        REQUIRE(p1.size() == p2.size());
        for (std::size_t i = 0; i < p1.size(); ++i) {
            INFO(p1[i].name);
            CHECK(bits_differ(p1[i].data, p2[i].data, p1[i].size()) == 0);
        }
    }
}
