// Tests for prune/importance/michel.hpp: closed forms, the absolute-value modes, the
// normalisations, merging, and a hand-made trainer loop whose gate gradients are checked
// against finite differences of an independently written loss.
#include <prune/importance/michel.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <random>
#include <vector>

using prune::importance::absolute_value;
using prune::importance::michel_accumulator;
using prune::importance::normalization;

TEST_CASE("per-example and per-batch absolute values differ as they should", "[michel]") {
    // Two examples whose gradients for head [0][0] cancel: +1 and -1.
    // Per example: mean of |g| = 1. Per batch (batch-mean loss): |(+1 - 1) / 2| = 0.
    auto per_example = michel_accumulator::uniform(1, 2, absolute_value::per_example);
    per_example.add_unit(std::vector<double>{1.0, 2.0}, std::vector<double>{0.5}, 3);
    per_example.add_unit(std::vector<double>{-1.0, 2.0}, std::vector<double>{-0.5}, 5);
    auto scores = per_example.scores();
    CHECK(scores.heads[0][0] == 1.0);
    CHECK(scores.heads[0][1] == 2.0);
    CHECK(scores.mlps[0] == 0.5);
    CHECK(per_example.units() == 2);
    CHECK(per_example.tokens() == 8.0);

    auto per_batch = michel_accumulator::uniform(1, 2, absolute_value::per_batch);
    per_batch.add_unit(std::vector<double>{(1.0 - 1.0) / 2, (2.0 + 2.0) / 2}, std::vector<double>{0.0}, 8);
    scores = per_batch.scores();
    CHECK(scores.heads[0][0] == 0.0);
    CHECK(scores.heads[0][1] == 2.0);
    CHECK(scores.mlps[0] == 0.0);
}

TEST_CASE("the cumulative quirk sums |running total|", "[michel]") {
    // Batch gradients 1, -3, 1: running totals 1, -2, -1; sum of |.| = 4 over 3 units.
    auto quirk = michel_accumulator::uniform(1, 1, absolute_value::cumulative);
    auto clean = michel_accumulator::uniform(1, 1, absolute_value::per_batch);
    for (double g : {1.0, -3.0, 1.0}) {
        quirk.add_unit(std::vector<double>{g}, std::vector<double>{2 * g}, 1);
        clean.add_unit(std::vector<double>{g}, std::vector<double>{2 * g}, 1);
    }
    CHECK(quirk.scores().heads[0][0] == Approx(4.0 / 3.0));
    CHECK(quirk.scores().mlps[0] == Approx(8.0 / 3.0));
    CHECK(clean.scores().heads[0][0] == Approx(5.0 / 3.0));
    auto other = michel_accumulator::uniform(1, 1, absolute_value::cumulative);
    CHECK_THROWS_AS(quirk.merge(other), prune::value_error);
}

TEST_CASE("normalisations against closed forms", "[michel]") {
    // Layer 0 heads (3, 4): L2 norm 5 -> (0.6, 0.8). Layer 1 heads (0, 0): stays (0, 0)
    // thanks to the + 1e-20. Global min-max over (0.6, 0.8, 0, 0) -> (0.75, 1, 0, 0).
    auto acc = michel_accumulator::uniform(2, 2);
    acc.add_unit(std::vector<double>{3.0, -4.0, 0.0, 0.0}, std::vector<double>{1.0, 3.0}, 10);
    acc.add_unit(std::vector<double>{-3.0, 4.0, 0.0, 0.0}, std::vector<double>{-1.0, 5.0}, 10);
    auto raw = acc.scores();
    CHECK(raw.heads == std::vector<std::vector<double>>{{3.0, 4.0}, {0.0, 0.0}});
    CHECK(raw.mlps == std::vector<double>{1.0, 4.0});

    auto tokens = acc.scores(normalization::parse("tokens"));
    CHECK(tokens.heads[0][1] == Approx(8.0 / 20.0));
    CHECK(tokens.mlps[1] == Approx(8.0 / 20.0));

    auto layer = acc.scores(normalization::parse("layer"));
    CHECK(layer.heads[0][0] == Approx(0.6));
    CHECK(layer.heads[0][1] == Approx(0.8));
    CHECK(layer.heads[1][0] == 0.0);
    CHECK(layer.mlps == raw.mlps);  // MLPs have no per-layer step

    auto both = acc.scores(normalization::parse("layer+global"));
    CHECK(both.heads[0][0] == Approx(0.75));
    CHECK(both.heads[0][1] == Approx(1.0));
    CHECK(both.heads[1][1] == 0.0);
    CHECK(both.mlps == std::vector<double>{0.0, 1.0});  // (1, 4) min-max

    auto global = acc.scores(normalization::parse("global"));
    CHECK(global.heads[0][0] == Approx(0.75));  // (3, 4, 0, 0) -> 3/4

    // Per-layer L2 is scale-free, so tokens+layer equals layer (up to the 1e-20).
    auto tokens_layer = acc.scores(normalization::parse("tokens+layer"));
    CHECK(tokens_layer.heads[0][0] == Approx(0.6));

    CHECK_THROWS_AS(normalization::parse("l2"), prune::value_error);
    CHECK_THROWS_AS(michel_accumulator::uniform(1, 1).scores(), prune::value_error);
}

TEST_CASE("all-equal scores min-max to 0", "[michel]") {
    auto acc = michel_accumulator::uniform(1, 3);
    acc.add_unit(std::vector<double>{2.0, 2.0, 2.0}, std::vector<double>{1.0}, 1);
    auto s = acc.scores(normalization::parse("global"));
    CHECK(s.heads[0] == std::vector<double>{0.0, 0.0, 0.0});
    CHECK(s.mlps[0] == 0.0);
}

TEST_CASE("a NaN score is refused by every normalisation, not turned into a number", "[michel]") {
    // Before: NaN compares false, so min-max made it 0 and scaled the others as if it were absent.
    const double nan = std::nan("");
    std::vector<std::vector<double>> heads = {{0.5, nan}, {1.0, 2.0}};
    CHECK_THROWS_WITH(prune::importance::normalize_min_max(heads),
                      Catch::Contains("head score 1 is NaN"));
    CHECK_THROWS_WITH(prune::importance::normalize_per_layer(heads), Catch::Contains("head score 1 is NaN"));
    std::vector<double> mlps = {nan, 1.0};
    CHECK_THROWS_WITH(prune::importance::normalize_min_max(std::span<double>(mlps)),
                      Catch::Contains("MLP score 0 is NaN"));
    std::vector<double> finite = {1.0, 3.0};
    prune::importance::normalize_min_max(std::span<double>(finite));
    CHECK(finite == std::vector<double>{0.0, 1.0});  // (v - 1) / 2: closed form
}

TEST_CASE("merging workers equals one accumulation", "[michel]") {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal;
    const std::vector<std::size_t> heads{3, 1, 2};  // ragged, as after physical pruning
    for (auto mode : {absolute_value::per_example, absolute_value::per_batch}) {
        michel_accumulator single(heads, mode), worker_a(heads, mode), worker_b(heads, mode);
        for (int unit = 0; unit < 10; ++unit) {
            std::vector<double> h(6), m(3);
            for (double& v : h) v = normal(rng);
            for (double& v : m) v = normal(rng);
            const double tokens = unit + 1;
            single.add_unit(h, m, tokens);
            (unit % 3 == 0 ? worker_a : worker_b).add_unit(h, m, tokens);
        }
        worker_a.merge(worker_b);
        CHECK(worker_a.units() == single.units());
        CHECK(worker_a.tokens() == single.tokens());
        for (auto how : {"none", "tokens", "layer+global"}) {
            auto merged = worker_a.scores(normalization::parse(how));
            auto one = single.scores(normalization::parse(how));
            for (std::size_t l = 0; l < heads.size(); ++l) {
                for (std::size_t j = 0; j < heads[l]; ++j) CHECK(merged.heads[l][j] == Approx(one.heads[l][j]).epsilon(1e-12));
                CHECK(merged.mlps[l] == Approx(one.mlps[l]).epsilon(1e-12));
            }
        }
    }
    michel_accumulator a(heads), b(std::vector<std::size_t>{3, 2, 1});
    CHECK_THROWS_AS(a.merge(b), prune::shape_error);
    michel_accumulator c(heads, absolute_value::per_batch);
    CHECK_THROWS_AS(a.merge(c), prune::value_error);
}

TEST_CASE("bad feeds throw", "[michel]") {
    auto acc = michel_accumulator::uniform(2, 2);
    CHECK_THROWS_AS(acc.add_head_gradient(2, 0, 1.0), prune::shape_error);
    CHECK_THROWS_AS(acc.add_head_gradient(0, 2, 1.0), prune::shape_error);
    CHECK_THROWS_AS(acc.add_mlp_gradient(2, 1.0), prune::shape_error);
    CHECK_THROWS_AS(acc.add_unit(std::vector<double>{1.0}, std::vector<double>{1.0, 1.0}, 1), prune::shape_error);
    CHECK_THROWS_AS(acc.commit_unit(-1), prune::value_error);
    CHECK_THROWS_WITH(acc.commit_unit(-0.25), Catch::Contains("token count -0.25 (expected >= 0)"));
    const std::vector<float> a(3), b(4);
    CHECK_THROWS_AS(acc.add_head_context(0, 0, std::span<const float>(a), std::span<const float>(b)), prune::shape_error);
}

// ---------------------------------------------------------------------------------------
// A hand-made trainer: a tiny gated model, written out by hand, with its own backward pass.
// Example x: T tokens of dimension D. Head h: ctx_h(t) = xi_h * (A_h x_t) in R^K.
// MLP: m = xi_m * sum_t tanh(c . x_t). Output z = sum_t sum_h u_h . ctx_h(t) + m.
// Loss L = 0.5 (z - y)^2. The trainer hands ctx and dL/dctx for heads, dL/dxi_m for the MLP.
namespace {
constexpr int T = 3, D = 2, K = 2, Heads = 2;
struct toy_model {
    std::array<std::array<double, K * D>, Heads> A{};
    std::array<std::array<double, K>, Heads> u{};
    std::array<double, D> c{};
};
struct toy_example {
    std::array<double, T * D> x{};
    double y = 0;
    int tokens = T;  // non-padding tokens: the first `tokens` rows
};

double toy_loss(const toy_model& m, const toy_example& e, std::array<double, Heads> xi, double xi_m) {
    double z = 0.0, mlp = 0.0;
    for (int t = 0; t < e.tokens; ++t) {
        for (int h = 0; h < Heads; ++h) {
            for (int k = 0; k < K; ++k) {
                double a = 0.0;
                for (int d = 0; d < D; ++d) a += m.A[h][k * D + d] * e.x[t * D + d];
                z += m.u[h][k] * xi[h] * a;
            }
        }
        double s = 0.0;
        for (int d = 0; d < D; ++d) s += m.c[d] * e.x[t * D + d];
        mlp += std::tanh(s);
    }
    z += xi_m * mlp;
    return 0.5 * (z - e.y) * (z - e.y);
}

// Forward + backward at gates 1; fills per-head ctx and dL/dctx (scaled by `scale`, e.g. 1/B
// for a batch-mean loss) and returns dL/dxi_m (scaled).
double toy_backward(const toy_model& m, const toy_example& e, double scale, std::vector<double> ctx[Heads],
                    std::vector<double> grad[Heads]) {
    double z = 0.0, mlp = 0.0;
    for (int h = 0; h < Heads; ++h) ctx[h].assign(static_cast<std::size_t>(e.tokens * K), 0.0);
    for (int t = 0; t < e.tokens; ++t) {
        for (int h = 0; h < Heads; ++h) {
            for (int k = 0; k < K; ++k) {
                double a = 0.0;
                for (int d = 0; d < D; ++d) a += m.A[h][k * D + d] * e.x[t * D + d];
                ctx[h][static_cast<std::size_t>(t * K + k)] = a;
                z += m.u[h][k] * a;
            }
        }
        double s = 0.0;
        for (int d = 0; d < D; ++d) s += m.c[d] * e.x[t * D + d];
        mlp += std::tanh(s);
    }
    z += mlp;
    const double dz = (z - e.y) * scale;
    for (int h = 0; h < Heads; ++h) {
        grad[h].assign(ctx[h].size(), 0.0);
        for (int t = 0; t < e.tokens; ++t)
            for (int k = 0; k < K; ++k) grad[h][static_cast<std::size_t>(t * K + k)] = dz * m.u[h][k];
    }
    return dz * mlp;
}
}  // namespace

TEST_CASE("a hand-made trainer loop feeds the accumulator; gradients match finite differences", "[michel]") {
    std::mt19937_64 rng(11);
    std::normal_distribution<double> normal;
    toy_model model;
    for (auto& a : model.A) for (double& v : a) v = normal(rng);
    for (auto& a : model.u) for (double& v : a) v = normal(rng);
    for (double& v : model.c) v = normal(rng);
    std::vector<toy_example> data(8);
    for (std::size_t i = 0; i < data.size(); ++i) {
        for (double& v : data[i].x) v = normal(rng);
        data[i].y = normal(rng);
        data[i].tokens = 1 + static_cast<int>(i % T);  // padded batch: varying lengths
    }

    constexpr int batch = 4;
    auto per_example = michel_accumulator::uniform(1, Heads, absolute_value::per_example);
    auto per_batch = michel_accumulator::uniform(1, Heads, absolute_value::per_batch);
    std::array<double, Heads> expect_example{}, expect_batch{};
    double expect_example_mlp = 0.0, expect_batch_mlp = 0.0, tokens = 0.0;
    const double step = 1e-6;
    std::vector<double> ctx[Heads], grad[Heads];
    for (std::size_t start = 0; start < data.size(); start += batch) {
        std::array<double, Heads> batch_fd{};
        double batch_fd_mlp = 0.0;
        for (std::size_t i = start; i < start + batch; ++i) {
            const toy_example& e = data[i];
            // Independent truth: central differences of the loss in each gate.
            std::array<double, Heads> fd{};
            for (int h = 0; h < Heads; ++h) {
                std::array<double, Heads> plus{1, 1}, minus{1, 1};
                plus[static_cast<std::size_t>(h)] += step;
                minus[static_cast<std::size_t>(h)] -= step;
                fd[static_cast<std::size_t>(h)] = (toy_loss(model, e, plus, 1) - toy_loss(model, e, minus, 1)) / (2 * step);
                expect_example[static_cast<std::size_t>(h)] += std::abs(fd[static_cast<std::size_t>(h)]);
                batch_fd[static_cast<std::size_t>(h)] += fd[static_cast<std::size_t>(h)] / batch;
            }
            const double fd_mlp = (toy_loss(model, e, {1, 1}, 1 + step) - toy_loss(model, e, {1, 1}, 1 - step)) / (2 * step);
            expect_example_mlp += std::abs(fd_mlp);
            batch_fd_mlp += fd_mlp / batch;
            tokens += e.tokens;

            // The trainer: per example, hand the contexts and their gradients.
            const double g_mlp = toy_backward(model, e, 1.0, ctx, grad);
            for (int h = 0; h < Heads; ++h)
                per_example.add_head_context(0, static_cast<std::size_t>(h), std::span<const double>(ctx[h]),
                                             std::span<const double>(grad[h]));
            per_example.add_mlp_gradient(0, g_mlp);
            per_example.commit_unit(e.tokens);
            // Per batch: the batch-mean loss's gradients accumulate over the batch's examples.
            const double g_mlp_b = toy_backward(model, e, 1.0 / batch, ctx, grad);
            for (int h = 0; h < Heads; ++h)
                per_batch.add_head_context(0, static_cast<std::size_t>(h), std::span<const double>(ctx[h]),
                                           std::span<const double>(grad[h]));
            per_batch.add_mlp_gradient(0, g_mlp_b);
        }
        double batch_tokens = 0;
        for (std::size_t i = start; i < start + batch; ++i) batch_tokens += data[i].tokens;
        per_batch.commit_unit(batch_tokens);
        for (int h = 0; h < Heads; ++h) expect_batch[static_cast<std::size_t>(h)] += std::abs(batch_fd[static_cast<std::size_t>(h)]);
        expect_batch_mlp += std::abs(batch_fd_mlp);
        // A training step between batches (SGD on u), as a trainer would: importance follows the model.
        for (auto& uh : model.u) for (double& v : uh) v *= 0.9;
    }
    const auto se = per_example.scores();
    const auto sb = per_batch.scores();
    const auto st = per_example.scores(normalization::parse("tokens"));
    for (std::size_t h = 0; h < Heads; ++h) {
        CHECK(se.heads[0][h] == Approx(expect_example[h] / 8).epsilon(1e-6));
        CHECK(sb.heads[0][h] == Approx(expect_batch[h] / 2).epsilon(1e-6));
        CHECK(st.heads[0][h] == Approx(expect_example[h] / tokens).epsilon(1e-6));
        CHECK(se.heads[0][h] > sb.heads[0][h]);  // |mean| <= mean |.|, strictly here
    }
    CHECK(se.mlps[0] == Approx(expect_example_mlp / 8).epsilon(1e-6));
    CHECK(sb.mlps[0] == Approx(expect_batch_mlp / 2).epsilon(1e-6));
}

TEST_CASE("add_layer_context splits a [tokens, heads * head_dim] matrix by head", "[michel]") {
    // Two tokens, two heads of dim 2: ctx rows (1,2 | 3,4), (5,6 | 7,8); gradient all 1 except
    // head 1 of token 1 = 2. Head 0: 1+2+5+6 = 14. Head 1: 3+4 + 2*(7+8) = 37.
    auto acc = michel_accumulator::uniform(1, 2);
    const std::vector<float> ctx{1, 2, 3, 4, 5, 6, 7, 8};
    const std::vector<float> grad{1, 1, 1, 1, 1, 1, 2, 2};
    acc.add_layer_context(0, std::span<const float>(ctx), std::span<const float>(grad), 2);
    acc.commit_unit(2);
    CHECK(acc.scores().heads[0] == std::vector<double>{14.0, 37.0});
    CHECK_THROWS_AS(acc.add_layer_context(0, std::span<const float>(ctx), std::span<const float>(grad), 3),
                    prune::shape_error);
}
