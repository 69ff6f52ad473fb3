// prune-eval and prune-importance on causal-LM directories, against tests/decoder/oracle.py:
// the perplexity of a whole JSON Lines file is exp(sum of the oracle's per-sequence NLL /
// predicted tokens) (1e-5 relative; observed ~2e-7), and the importance JSON equals the
// oracle's autograd importance (per example, per batch of 2, layer+global; bound 2e-5 of the
// largest score as in test_decoder_importance), with kv_groups written under GQA only.
#include "oracle_cases.hpp"
#include "../support/files.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// Writes the case's sequences as {"input_ids": [...]} rows; returns the file.
fs::path data_file(const std::string& name) {
    const nlohmann::json c = oracle::load(name);
    const fs::path out = oracle::dir() / (name + ".jsonl");
    std::ofstream f(out);
    for (const auto& s : c["sequences"]) f << nlohmann::json{{"input_ids", s}}.dump() << "\n";
    return out;
}

nlohmann::json run(const std::string& command) {
    const fs::path json = oracle::dir() / "out.json";
    fs::remove(json);
    const prune_test::outcome o = prune_test::run_binary(command + " --json '" + json.string() + "'", oracle::dir(),
                                                         oracle::dir() / "stderr.txt", "OPENBLAS_NUM_THREADS=1");
    INFO(command << "\n" << o.err);
    REQUIRE(o.code == 0);
    std::ifstream in(json);
    return nlohmann::json::parse(in);
}

double worst(const nlohmann::json& got, const nlohmann::json& want) {
    std::vector<double> g, w;
    auto flat = [](const nlohmann::json& j, std::vector<double>& out, auto&& self) -> void {
        if (!j.is_array()) {
            out.push_back(j.get<double>());
            return;
        }
        for (const auto& x : j) self(x, out, self);
    };
    flat(got, g, flat);
    flat(want, w, flat);
    REQUIRE(g.size() == w.size());
    double e = 0.0, scale = 1e-3;
    for (std::size_t i = 0; i < g.size(); ++i) {
        e = std::max(e, std::abs(g[i] - w[i]));
        scale = std::max(scale, std::abs(w[i]));
    }
    return e / scale;
}

}  // namespace

TEST_CASE("prune-eval: perplexity of a causal LM over a JSON Lines file", "[decoder][cli]") {
    for (const std::string name : {"llama_linear_rope", "gpt2_noprefix_f16"}) {  // the ungated cases
        INFO(name);
        const nlohmann::json c = oracle::load(name);
        double nll = 0.0;
        std::int64_t tokens = 0;
        for (std::size_t b = 0; b < c["nll"].size(); ++b) {
            nll += c["nll"][b].get<double>();
            tokens += static_cast<std::int64_t>(c["sequences"][b].size()) - 1;
        }
        const nlohmann::json out = run("prune-eval --model '" + (oracle::dir() / name).string() + "' --data '" +
                                       data_file(name).string() + "' --batch-size 2");
        CHECK(out["tokens"].get<std::int64_t>() == tokens);
        CHECK(std::abs(out["nll_total"].get<double>() - nll) <= 1e-5 * nll);
        CHECK(std::abs(out["perplexity"].get<double>() - std::exp(nll / static_cast<double>(tokens))) <=
              1e-5 * std::exp(nll / static_cast<double>(tokens)));
        CHECK(out["context"].is_null());
    }
}

TEST_CASE("prune-importance: heads, mlps and kv_groups of a causal LM", "[decoder][cli]") {
    const std::string name = "llama_linear_rope";  // 4 query heads on one K/V head, no gates
    const nlohmann::json truth = oracle::load(name, "grads.json")["importance"];
    const std::string base = "prune-importance --model '" + (oracle::dir() / name).string() + "' --data '" + data_file(name).string() + "'";
    struct mode {
        const char* flags;
        const char* key;
    };
    for (const mode m : {mode{" --batch-size 2", "per_example"}, mode{" --abs per-batch --batch-size 2", "per_batch_2"},
                         mode{" --normalize layer+global", "per_example_layer_global"}}) {
        INFO(m.flags);
        const nlohmann::json out = run(base + m.flags);
        CHECK(worst(out["heads"], truth[m.key]["heads"]) <= 2e-5);
        CHECK(worst(out["mlps"], truth[m.key]["mlps"]) <= 2e-5);
        REQUIRE(out.contains("kv_groups"));
        CHECK(worst(out["kv_groups"], truth[m.key]["kv_groups"]) <= 2e-5);
    }
    const nlohmann::json gpt2 = run("prune-importance --model '" + (oracle::dir() / "gpt2_noprefix_f16").string() + "' --data '" +
                                    data_file("gpt2_noprefix_f16").string() + "'");
    CHECK(!gpt2.contains("kv_groups"));  // multi-head attention: K/V groups are the heads
    CHECK(gpt2["heads"].size() == 2);
}
