// Tests for prune/models/bert/importance.hpp (and the gate gradients of prune/models/bert/backward.hpp)
// against a PyTorch autograd oracle (tests/backward/torch_oracle.py, float64) on a padded
// batch with a gated-off head and MLP: the C++ float model must agree within 1e-4 relative
// (entries far below the largest one are compared with a margin of 1e-4 x the largest).
// Also: the importance pass allocates nothing per example once its buffers have grown.
#include <prune/models/bert/importance.hpp>

#include "../support/tiny_bert.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <unistd.h>
#include <vector>

using namespace prune::bert;
namespace fs = std::filesystem;

// Allocation counter (alloc_counter.cpp).
extern std::atomic<std::size_t> g_allocations;

namespace {
// 2 layers x 4 heads, hidden 16, FFN 24, vocab 31, 16 positions (the torch oracle builds the
// same shapes from the saved config.json).
config oracle_config(int labels) { return prune_test::small_config(2, 16, 4, 24, 31, labels); }

std::vector<labeled_sequence> make_data(std::size_t n, int labels, unsigned seed, int max_len = 9) {
    std::mt19937 rng(seed);
    std::vector<labeled_sequence> data(n);
    for (auto& s : data) {
        const int len = std::uniform_int_distribution<int>(3, max_len)(rng);
        s.input_ids.push_back(2);
        for (int i = 1; i < len; ++i) s.input_ids.push_back(std::uniform_int_distribution<int>(3, 30)(rng));
        s.token_type_ids.assign(static_cast<std::size_t>(len), 0);
        for (int i = len / 2; i < len; ++i) s.token_type_ids[static_cast<std::size_t>(i)] = 1;
        s.attention_mask.assign(static_cast<std::size_t>(len), 1);
        // pad to max_len
        while (static_cast<int>(s.input_ids.size()) < max_len) {
            s.input_ids.push_back(0);
            s.token_type_ids.push_back(0);
            s.attention_mask.push_back(0);
        }
        s.label = labels == 1 ? std::normal_distribution<double>()(rng)
                              : std::uniform_int_distribution<int>(0, labels - 1)(rng);
    }
    return data;
}

void check_close(double got, double want, double scale, const std::string& what) {
    INFO(what << ": got " << got << " want " << want);
    CHECK(std::abs(got - want) <= 1e-4 * std::abs(want) + 1e-4 * scale);
}

double max_abs(const nlohmann::json& j) {
    double m = 0;
    if (j.is_array()) {
        for (const auto& e : j) m = std::max(m, max_abs(e));
    } else {
        m = std::abs(j.get<double>());
    }
    return m;
}

void run_oracle_case(int labels) {
    const config cfg = oracle_config(labels);
    weights w = random_weights(cfg, 17, 0.3f);
    const auto data = make_data(6, labels, 5);
    prune::structure_mask mask{prune::group_mask::uniform(2, 4), prune::group_mask::uniform(2, 1)};
    mask.heads.set(0, 1, false);
    mask.mlps.set(1, 0, false);

    nlohmann::json spec;
    spec["config"] = {{"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"hidden_size", 16},
                      {"layer_norm_eps", cfg.layer_norm_eps}, {"num_labels", labels}};
    for (const auto& p : parameters(w)) {
        spec["tensors"][p.name] = {{"shape", p.shape}, {"data", std::vector<float>(p.values().begin(), p.values().end())}};
    }
    for (const auto& s : data) {
        spec["input_ids"].push_back(s.input_ids);
        spec["token_type_ids"].push_back(s.token_type_ids);
        spec["attention_mask"].push_back(s.attention_mask);
        spec["labels"].push_back(s.label);
    }
    spec["head_gates"] = {{1, 0, 1, 1}, {1, 1, 1, 1}};
    spec["mlp_gates"] = {1, 0};
    spec["batch_size"] = 2;
    const fs::path dir = fs::temp_directory_path() / ("prune_oracle_" + std::to_string(labels) + "_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "in.json") << spec.dump();
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR +
                                "/tests/backward/torch_oracle.py " + (dir / "in.json").string() + " " +
                                (dir / "out.json").string();
    REQUIRE(std::system(command.c_str()) == 0);
    nlohmann::json out;
    std::ifstream(dir / "out.json") >> out;
    fs::remove_all(dir);

    // Raw gate gradients of the batch-mean loss and of each example's own loss.
    const gate_values gates = gates_from_mask(mask, w);
    packed_batch batch;
    std::vector<int> classes;
    std::vector<float> values;
    for (const auto& s : data) {
        batch.add(s.input_ids, s.token_type_ids, s.attention_mask);
        classes.push_back(static_cast<int>(s.label));
        values.push_back(static_cast<float>(s.label));
    }
    batch_labels bl;
    if (labels == 1) bl.values = values; else bl.classes = classes;
    training_workspace<float> ws;
    training_options o;
    o.parameter_gradients = false;
    const double loss = train_pass(w, batch, bl, &gates, ws, static_cast<weights*>(nullptr), o);
    CHECK(loss == Approx(out["loss"].get<double>()).epsilon(1e-5));
    const double scale_h = max_abs(out["batch_heads"]);
    for (std::size_t l = 0; l < 2; ++l) {
        for (std::size_t h = 0; h < 4; ++h)
            check_close(ws.gates().head_total(l * 4 + h), out["batch_heads"][l][h], scale_h, "batch head grad");
        check_close(ws.gates().mlp_total(l), out["batch_mlps"][l], max_abs(out["batch_mlps"]), "batch mlp grad");
    }
    CHECK(scale_h > 1e-4);  // the gradients are not trivially zero
    CHECK(std::abs(out["batch_heads"][0][1].get<double>()) > 1e-3 * scale_h);  // gated-off head: non-zero gradient
    o.reduction = loss_reduction::sum;
    train_pass(w, batch, bl, &gates, ws, static_cast<weights*>(nullptr), o);
    const double scale_e = max_abs(out["example_heads"]);
    for (std::size_t b = 0; b < data.size(); ++b)
        for (std::size_t i = 0; i < 8; ++i)
            check_close(ws.gates().heads(b)[i], out["example_heads"][b][i / 4][i % 4], scale_e, "example head grad");

    // Importance, per example and per batch (batches of 2 in data order).
    importance_options io;
    io.batch_size = 4;  // batching must not change per-example importance
    const auto pe = head_importance(w, std::span<const labeled_sequence>(data), mask, io);
    io.mode = prune::importance::absolute_value::per_batch;
    io.batch_size = 2;
    const auto pb = head_importance(w, std::span<const labeled_sequence>(data), mask, io);
    const double se = max_abs(out["importance_per_example_heads"]);
    const double sb = max_abs(out["importance_per_batch_heads"]);
    for (std::size_t l = 0; l < 2; ++l) {
        for (std::size_t h = 0; h < 4; ++h) {
            check_close(pe.heads[l][h], out["importance_per_example_heads"][l][h], se, "per-example importance");
            check_close(pb.heads[l][h], out["importance_per_batch_heads"][l][h], sb, "per-batch importance");
        }
        check_close(pe.mlps[l], out["importance_per_example_mlps"][l], max_abs(out["importance_per_example_mlps"]),
                    "per-example MLP importance");
        check_close(pb.mlps[l], out["importance_per_batch_mlps"][l], max_abs(out["importance_per_batch_mlps"]),
                    "per-batch MLP importance");
    }
    // per-example >= per-batch entrywise (mean |g| >= |mean g| over the same examples), strictly somewhere
    bool strictly = false;
    for (std::size_t l = 0; l < 2; ++l)
        for (std::size_t h = 0; h < 4; ++h) {
            CHECK(pe.heads[l][h] >= pb.heads[l][h] * (1 - 1e-6));
            strictly |= pe.heads[l][h] > pb.heads[l][h] * 1.01;
        }
    CHECK(strictly);
}
}  // namespace

TEST_CASE("gate gradients and importance match PyTorch autograd (classification, padded batch)", "[torch]") {
    run_oracle_case(3);
}

TEST_CASE("gate gradients and importance match PyTorch autograd (regression)", "[torch]") {
    run_oracle_case(1);
}

TEST_CASE("the importance pass allocates nothing per example", "[importance]") {
    const config cfg = oracle_config(3);
    const weights w = random_weights(cfg, 3, 0.3f);
    const auto small = make_data(8, 3, 1);
    const auto large = make_data(64, 3, 1);  // same lengths distribution, max_len 9
    const prune::structure_mask mask{prune::group_mask::uniform(2, 4), prune::group_mask::uniform(2, 1)};
    for (auto mode : {prune::importance::absolute_value::per_example, prune::importance::absolute_value::per_batch}) {
        prune::importance::michel_accumulator acc = prune::importance::michel_accumulator::uniform(2, 4, mode);
        importance_workspace<float> ws;
        accumulate_importance(w, std::span<const labeled_sequence>(large), mask, acc, ws, 8);  // warm-up
        const std::size_t before_small = g_allocations.load();
        accumulate_importance(w, std::span<const labeled_sequence>(small), mask, acc, ws, 8);
        const std::size_t small_count = g_allocations.load() - before_small;
        const std::size_t before_large = g_allocations.load();
        accumulate_importance(w, std::span<const labeled_sequence>(large), mask, acc, ws, 8);
        const std::size_t large_count = g_allocations.load() - before_large;
        INFO("allocations: " << small_count << " for 8 examples, " << large_count << " for 64");
        CHECK(large_count == small_count);  // per-call set-up only, nothing per example or batch
    }
}

TEST_CASE("importance rejects bad labels and masks", "[importance]") {
    const config cfg = oracle_config(3);
    const weights w = random_weights(cfg, 3, 0.3f);
    auto data = make_data(4, 3, 2);
    data[2].label = 3;
    const prune::structure_mask mask{prune::group_mask::uniform(2, 4), prune::group_mask::uniform(2, 1)};
    CHECK_THROWS_AS(head_importance(w, std::span<const labeled_sequence>(data), mask, {}), prune::value_error);
    data[2].label = 1;
    const prune::structure_mask bad{prune::group_mask::uniform(2, 3), prune::group_mask::uniform(2, 1)};
    CHECK_THROWS_AS(head_importance(w, std::span<const labeled_sequence>(data), bad, {}), prune::shape_error);
    const prune::structure_mask bad_layers{prune::group_mask::uniform(3, 4), prune::group_mask::uniform(3, 1)};
    CHECK_THROWS_AS(head_importance(w, std::span<const labeled_sequence>(data), bad_layers, {}), prune::shape_error);
    // a mask that prunes everything is allowed: the model still runs
    const prune::structure_mask none{prune::group_mask::uniform(2, 4, false), prune::group_mask::uniform(2, 1, false)};
    const auto s = head_importance(w, std::span<const labeled_sequence>(data), none, {});
    CHECK(s.heads.size() == 2);
}
