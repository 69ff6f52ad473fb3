// Tests that the training pass (include/prune/models/bert/backward.hpp) gives the same bits on 1, 2
// and 3 threads, with whatever products this build and CPU use (Eigen in a test binary, which
// does not re-execute for OpenBLAS's wide kernels; OpenBLAS's SSE3 kernels in the ASan build;
// OpenBLAS SkylakeX with OPENBLAS_CORETYPE=SkylakeX): first the split products on their own,
// then a whole classification fine-tuning step (train_pass) with dropout and fractional gates.
// The truth is the 1-thread result; equality is bit for bit (memcmp).
#include <prune/models/bert/backward.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace prune::bert;

namespace {
// Number of elements whose bits differ.
template <class T>
std::size_t bits_differ(const T* a, const T* b, std::size_t n) {
    std::size_t d = 0;
    for (std::size_t i = 0; i < n; ++i) d += std::memcmp(a + i, b + i, sizeof(T)) != 0;
    return d;
}
}  // namespace

TEST_CASE("split products give the bits of the unsplit product on any pool", "[backward][threads]") {
    // Shapes of the training pass (rows = tokens) and odd ones; each >= 2^20 multiply-adds, so
    // the pool splits them: by rows when m >= n, else by columns. Before the split was made
    // independent of the pool, Eigen's blocks rounded their last rows / columns differently from
    // the whole (m 100 n 128 k 300: 2,886 of 12,800 elements), and OpenBLAS-sized products went
    // to Eigen block by block (m 100 n 300 k 128 with OPENBLAS_CORETYPE=SkylakeX).
    struct shape {
        bool ta, tb;
        int m, n, k;
    };
    const shape shapes[] = {{false, true, 576, 384, 128}, {false, false, 576, 128, 256}, {true, false, 128, 256, 576},
                            {false, false, 100, 128, 300}, {false, true, 100, 300, 128}, {false, true, 37, 1000, 128},
                            {true, false, 200, 300, 999},  {false, true, 1001, 77, 129}, {true, true, 250, 250, 250}};
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    thread_pool p1(1), p2(2), p3(3);
    for (const shape& s : shapes) {
        const int ar = s.ta ? s.k : s.m, ac = s.ta ? s.m : s.k, br = s.tb ? s.n : s.k, bc = s.tb ? s.k : s.n;
        std::vector<float> a(static_cast<std::size_t>(ar) * ac), b(static_cast<std::size_t>(br) * bc),
            c0(static_cast<std::size_t>(s.m) * s.n);
        for (auto* v : {&a, &b, &c0})
            for (float& x : *v) x = normal(rng);
        for (const float beta : {0.0f, 1.0f}) {
            std::vector<float> c1 = c0, c2 = c0, c3 = c0;
            detail::parallel_gemm<float>(p1, s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, c1.data(), s.n);
            detail::parallel_gemm<float>(p2, s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, c2.data(), s.n);
            detail::parallel_gemm<float>(p3, s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, c3.data(), s.n);
            INFO("m " << s.m << " n " << s.n << " k " << s.k << " trans " << s.ta << s.tb << " beta " << beta);
            CHECK(bits_differ(c1.data(), c2.data(), c1.size()) == 0);
            CHECK(bits_differ(c1.data(), c3.data(), c1.size()) == 0);
            // gemm_pair: on two threads each product runs whole on its own thread.
            std::vector<float> d1 = c0, d2 = c0, e1 = c0, e2 = c0;
            const detail::gemm_call<float> x1{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, d1.data(), s.n};
            const detail::gemm_call<float> y1{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, e1.data(), s.n};
            const detail::gemm_call<float> x2{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, d2.data(), s.n};
            const detail::gemm_call<float> y2{s.ta, s.tb, s.m, s.n, s.k, 0.5f, a.data(), ac, b.data(), bc, beta, e2.data(), s.n};
            detail::gemm_pair(p1, x1, &y1);
            detail::gemm_pair(p2, x2, &y2);
            CHECK(bits_differ(c1.data(), d1.data(), c1.size()) == 0);
            CHECK(bits_differ(c1.data(), d2.data(), c1.size()) == 0);
            CHECK(bits_differ(c1.data(), e2.data(), c1.size()) == 0);
        }
    }
}

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
