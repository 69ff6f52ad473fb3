// Tests for prune/train/adamw.hpp and prune/train/lr_schedule.hpp against PyTorch
// (tests/train/oracle.py, run with /usr/bin/python3): the linear warm-up schedule against
// torch.optim.lr_scheduler.LambdaLR with Hugging Face's lambda (bit for bit), clipping against
// torch.nn.utils.clip_grad_norm_, and a training loop (clip, AdamW, schedule) against
// torch.optim.AdamW driven as transformers.AdamW over eight steps.
#include <prune/detail/random.hpp>
#include <prune/error.hpp>
#include <prune/train/adamw.hpp>
#include <prune/train/lr_schedule.hpp>

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

using prune::train::adamw;
using prune::train::adamw_options;
using prune::train::trainable;

namespace {

// Runs tests/train/oracle.py on `spec`; its answer.
nlohmann::json run_oracle(const nlohmann::json& spec) {
    const auto dir = std::filesystem::temp_directory_path() / ("prune_train_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "in.json") << spec.dump();
    const std::string cmd = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/train/oracle.py " +
                            (dir / "in.json").string() + " " + (dir / "out.json").string();
    REQUIRE(std::system(cmd.c_str()) == 0);
    nlohmann::json answer;
    std::ifstream(dir / "out.json") >> answer;
    std::filesystem::remove_all(dir);
    return answer;
}

// n uniform floats in [offset - scale, offset + scale) from a seeded stream.
std::vector<float> uniform(std::size_t n, std::uint64_t seed, float scale, float offset = 0.0f) {
    prune::detail::splitmix64 rng(seed);
    std::vector<float> out(n);
    for (float& x : out) x = offset + scale * static_cast<float>(2.0 * rng.uniform() - 1.0);
    return out;
}

// Tensors named as BERT's: a decayed matrix, a bias and a LayerNorm weight (not decayed), the classifier.
const std::vector<std::string> names = {"bert.encoder.layer.0.attention.self.query.weight",
                                        "bert.encoder.layer.0.attention.self.query.bias",
                                        "bert.encoder.layer.0.output.LayerNorm.weight", "classifier.weight"};
const std::vector<std::size_t> sizes = {30, 6, 6, 12};

// Per-step gradient scales: some steps' global norm is above 1 (clipped), some below.
const std::vector<float> gradient_scales = {0.5f, 0.01f, 0.3f, 0.02f, 1.0f, 0.05f, 0.2f, 0.005f};

struct recipe {
    adamw_options options;
    double peak_lr;
    std::size_t warmup;
    double max_norm;
};

nlohmann::json training_spec(const recipe& r) {
    nlohmann::json values = nlohmann::json::array(), gradients = nlohmann::json::array();
    for (std::size_t k = 0; k < names.size(); ++k)
        values.push_back(uniform(sizes[k], 100 + k, 0.5f, k == 2 ? 1.0f : 0.0f));
    for (std::size_t t = 0; t < gradient_scales.size(); ++t) {
        nlohmann::json step = nlohmann::json::array();
        for (std::size_t k = 0; k < names.size(); ++k) step.push_back(uniform(sizes[k], 1000 * (t + 1) + k, gradient_scales[t]));
        gradients.push_back(step);
    }
    return {{"names", names}, {"values", values}, {"gradients", gradients}, {"beta1", r.options.beta1},
            {"beta2", r.options.beta2}, {"eps", r.options.eps}, {"weight_decay", r.options.weight_decay},
            {"peak_lr", r.peak_lr}, {"total", gradient_scales.size()}, {"warmup", r.warmup}, {"max_norm", r.max_norm}};
}

// max |a - b| / max(1, |b|) over every element of every tensor.
double distance(const std::vector<std::vector<float>>& got, const nlohmann::json& want) {
    double worst = 0.0;
    for (std::size_t k = 0; k < got.size(); ++k)
        for (std::size_t i = 0; i < got[k].size(); ++i) {
            const double w = want[k][i].get<double>();
            worst = std::max(worst, std::abs(static_cast<double>(got[k][i]) - w) / std::max(1.0, std::abs(w)));
        }
    return worst;
}

// Runs the loop of prune's fine-tuning and pre-training (clip, AdamW at the scheduled lr) on the
// spec's tensors; the parameters after every step.
std::vector<std::vector<std::vector<float>>> run_loop(const nlohmann::json& spec, const recipe& r) {
    auto values = spec["values"].get<std::vector<std::vector<float>>>();
    std::vector<std::vector<float>> grads(values.size());
    auto params = [&] {
        std::vector<trainable> out;
        for (std::size_t k = 0; k < values.size(); ++k) out.push_back({names[k], values[k], grads[k]});
        return out;
    };
    adamw optimizer(params(), r.options);
    std::vector<std::vector<std::vector<float>>> after;
    const std::size_t total = gradient_scales.size();
    for (std::size_t step = 0; step < total; ++step) {
        grads = spec["gradients"][step].get<std::vector<std::vector<float>>>();
        const auto p = params();
        prune::train::clip_gradient_norm(p, r.max_norm);
        optimizer.step(p, r.peak_lr * prune::train::linear_warmup_schedule(step, total, r.warmup));
        after.push_back(values);
    }
    return after;
}

}  // namespace

TEST_CASE("the linear warm-up schedule equals LambdaLR with Hugging Face's lambda, bit for bit", "[train][torch]") {
    struct plan { double lr; std::size_t total, warmup, steps; };
    const std::vector<plan> plans = {{2e-3, 60, 4, 62},  {2e-5, 10, 0, 12}, {1e-3, 10, 2, 12}, {5e-4, 7, 7, 9},
                                     {1e-3, 3, 5, 6},    {1.0, 1, 0, 2},    {2e-3, 1000, 60, 1000}};
    nlohmann::json spec = {{"schedules", nlohmann::json::array()}};
    for (const auto& p : plans)
        spec["schedules"].push_back({{"lr", p.lr}, {"total", p.total}, {"warmup", p.warmup}, {"steps", p.steps}});
    const auto answer = run_oracle(spec);
    for (std::size_t k = 0; k < plans.size(); ++k) {
        const auto& p = plans[k];
        INFO("total " << p.total << ", warmup " << p.warmup);
        const auto& want = answer["schedules"][k];
        REQUIRE(want.size() == p.steps);
        for (std::size_t step = 0; step < p.steps; ++step) {
            INFO("step " << step);
            CHECK(p.lr * prune::train::linear_warmup_schedule(step, p.total, p.warmup) == want[step].get<double>());
        }
    }
    // The first update of a warm-up has lr 0 (HF's step / warmup, not (step + 1) / warmup).
    CHECK(answer["schedules"][0][0].get<double>() == 0.0);
    CHECK(answer["schedules"][0][1].get<double>() == 2e-3 / 4);
}

TEST_CASE("clip_gradient_norm equals torch.nn.utils.clip_grad_norm_", "[train][torch]") {
    const std::vector<double> max_norms = {1.0, 100.0, 0.25};
    nlohmann::json spec = {{"clips", nlohmann::json::array()}};
    std::vector<std::vector<std::vector<float>>> cases;
    for (std::size_t c = 0; c < max_norms.size(); ++c) {
        std::vector<std::vector<float>> grads;
        for (std::size_t k = 0; k < sizes.size(); ++k) grads.push_back(uniform(sizes[k], 7 * c + k, 2.0f));
        spec["clips"].push_back({{"max_norm", max_norms[c]}, {"gradients", grads}});
        cases.push_back(grads);
    }
    const auto answer = run_oracle(spec);
    for (std::size_t c = 0; c < max_norms.size(); ++c) {
        INFO("max_norm " << max_norms[c]);
        auto& grads = cases[c];
        std::vector<trainable> params;
        for (std::size_t k = 0; k < grads.size(); ++k) params.push_back({names[k], {}, grads[k]});
        const double norm = prune::train::clip_gradient_norm(params, max_norms[c]);
        const auto& want = answer["clips"][c];
        CHECK(norm == Approx(want["norm"].get<double>()).epsilon(1e-6));
        CHECK(distance(grads, want["gradients"]) < 1e-6);
    }
}

TEST_CASE("clip, AdamW and the schedule over 8 steps equal torch.optim.AdamW in transformers.AdamW's form",
          "[train][torch]") {
    // Pre-training's recipe (eps 1e-6, weight decay, warm-up; a large lr makes the differences
    // between the two AdamW forms visible) and fine-tuning's defaults (its float betas, eps 1e-8).
    const std::vector<recipe> recipes = {{{0.9, 0.999, 1e-6, 0.1}, 0.05, 2, 1.0},
                                         {{0.9f, 0.999f, 1e-8f, 0.0f}, 0.01, 0, 1.0}};
    nlohmann::json spec = {{"training", nlohmann::json::array()}};
    for (const auto& r : recipes) spec["training"].push_back(training_spec(r));
    const auto answer = run_oracle(spec);
    for (std::size_t c = 0; c < recipes.size(); ++c) {
        INFO("recipe " << c);
        const auto got = run_loop(spec["training"][c], recipes[c]);
        const auto& hf = answer["training"][c]["hf"];
        double worst = 0.0;
        for (std::size_t t = 0; t < got.size(); ++t) {
            INFO("after step " << t + 1);
            const double d = distance(got[t], hf[t]);
            worst = std::max(worst, d);
            CHECK(d < 2e-6);
        }
        INFO("worst relative difference " << worst);
        CHECK(distance(got.back(), spec["training"][c]["values"]) > 1e-3);  // the parameters did move
        if (c == 0) {
            // torch.optim.AdamW's own form (eps after the correction, decay before the update)
            // ends measurably elsewhere: the comparison above can tell the two apart.
            CHECK(distance(got.back(), answer["training"][c]["torch"].back()) > 1e-4);
        }
    }
}

TEST_CASE("adamw refuses tensors that are not those it was made for", "[train]") {
    std::vector<float> a(4, 1.0f), ga(4, 0.5f), b(3, 1.0f), gb(3, 0.5f), short_gradient(2, 0.0f);
    const std::vector<trainable> two = {{"w", a, ga}, {"b.bias", b, gb}};
    adamw optimizer(two, adamw_options{});
    optimizer.step(two, 1e-3);
    CHECK(optimizer.steps() == 1);
    const std::vector<trainable> one = {{"w", a, ga}};
    CHECK_THROWS_AS(optimizer.step(one, 1e-3), prune::shape_error);
    const std::vector<trainable> bad = {{"w", a, ga}, {"b.bias", b, short_gradient}};
    CHECK_THROWS_WITH(optimizer.step(bad, 1e-3), Catch::Contains("b.bias") && Catch::Contains("expected 3"));
    CHECK(optimizer.steps() == 1);
    CHECK(prune::train::excluded_from_decay("bert.encoder.layer.0.output.LayerNorm.bias"));
    CHECK(prune::train::excluded_from_decay("cls.predictions.transform.LayerNorm.weight"));
    CHECK(!prune::train::excluded_from_decay("bert.encoder.layer.0.output.dense.weight"));
    // Llama's RMSNorm scales (the HF Trainer decays no norm layer); its matrices are decayed.
    CHECK(prune::train::excluded_from_decay("model.layers.0.input_layernorm.weight"));
    CHECK(prune::train::excluded_from_decay("model.layers.0.post_attention_layernorm.weight"));
    CHECK(prune::train::excluded_from_decay("model.norm.weight"));
    CHECK(!prune::train::excluded_from_decay("model.layers.0.self_attn.q_proj.weight"));
    CHECK(!prune::train::excluded_from_decay("model.embed_tokens.weight"));
}

TEST_CASE("adamw stops at the first non-finite gradient, naming the step and tensor, before any update", "[train]") {
    std::vector<float> a(4, 1.0f), ga(4, 0.5f), b(3, 1.0f), gb(3, 0.5f);
    const std::vector<trainable> two = {{"w", a, ga}, {"b.bias", b, gb}};
    adamw optimizer(two, adamw_options{});
    optimizer.step(two, 1e-3);
    const std::vector<float> a_before = a, b_before = b;
    const float bad = GENERATE(std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity());
    gb[2] = bad;
    CHECK_THROWS_AS(optimizer.step(two, 1e-3), prune::value_error);
    CHECK_THROWS_WITH(optimizer.step(two, 1e-3),
                      Catch::Contains("training step 2") && Catch::Contains("'b.bias'") &&
                          Catch::Contains(std::isnan(bad) ? "NaN" : "an infinity"));
    CHECK(a == a_before);  // "w" comes first and is finite, yet nothing was updated
    CHECK(b == b_before);
    CHECK(optimizer.steps() == 1);
}

TEST_CASE("require_finite_loss names the step of a NaN or infinite loss", "[train]") {
    prune::train::require_finite_loss(1, 0.0);
    prune::train::require_finite_loss(1, 1e300);
    CHECK_THROWS_WITH(prune::train::require_finite_loss(7, std::numeric_limits<double>::quiet_NaN()),
                      Catch::Contains("training step 7: the loss is NaN (expected a finite loss"));
    CHECK_THROWS_AS(prune::train::require_finite_loss(3, std::numeric_limits<double>::infinity()), prune::value_error);
}
