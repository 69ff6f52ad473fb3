// prune-heads on causal-LM directories (tests/decoder/oracle.py's checkpoints): the s-pruning
// history obeys its rule (a mask passes iff its perplexity <= full / threshold), the full
// perplexity is prune-eval's, the first phase-1 step masks the lowest heads of prune-importance's
// layer+global scores (prune-importance is checked against PyTorch's autograd in test_cli.cpp),
// masks.json evaluated by prune-eval gives the reported perplexity, and model/ -- the masked
// units physically removed, written in the input's dtype -- gives that perplexity too when
// prune-eval loads it, with a config.json whose head counts match what was kept.
#include "oracle_cases.hpp"
#include "../support/files.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// The case's sequences as {"input_ids": [...]} rows; returns the file.
fs::path data_file(const std::string& name) {
    const nlohmann::json c = oracle::load(name);
    const fs::path out = oracle::dir() / (name + "_heads.jsonl");
    std::ofstream f(out);
    for (const auto& s : c["sequences"]) f << nlohmann::json{{"input_ids", s}}.dump() << "\n";
    return out;
}

/// Runs a binary (exit 0 required) and returns its stderr.
std::string run_ok(const std::string& command) {
    const prune_test::outcome o = prune_test::run_binary(command, oracle::dir(), oracle::dir() / "stderr.txt", "OPENBLAS_NUM_THREADS=1");
    INFO(command << "\n" << o.err);
    REQUIRE(o.code == 0);
    return o.err;
}

nlohmann::json read_json(const fs::path& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
}

/// prune-eval's perplexity of `model` over `data` (with a structure mask when given).
double eval_perplexity(const fs::path& model, const fs::path& data, const std::string& mask = "") {
    const fs::path json = oracle::dir() / "eval.json";
    run_ok("prune-eval --model '" + model.string() + "' --data '" + data.string() + "'" +
           (mask.empty() ? "" : " --mask '" + mask + "'") + " --json '" + json.string() + "'");
    return read_json(json)["perplexity"].get<double>();
}

bool close(double a, double b, double rel = 1e-5) { return std::abs(a - b) <= rel * std::abs(b); }

/// Runs prune-heads on case `name` with `flags`; returns the output directory.
fs::path prune_heads(const std::string& name, const std::string& flags, const std::string& out_name) {
    const fs::path out = oracle::dir() / out_name;
    fs::remove_all(out);
    run_ok("prune-heads --model '" + (oracle::dir() / name).string() + "' --data '" + data_file(name).string() + "' --out '" +
           out.string() + "'" + flags);
    return out;
}

/// The checks every run must pass: the rule, the full perplexity, masks.json and model/.
void check_run(const std::string& name, const fs::path& out) {
    const nlohmann::json h = read_json(out / "history.json");
    const fs::path data = data_file(name);
    const double full = h["perplexity_full"].get<double>();
    CHECK(close(full, eval_perplexity(oracle::dir() / name, data)));
    CHECK(close(h["perplexity_limit"].get<double>(), full / 0.9));
    std::size_t passed = 0, failed = 0;
    for (const auto& r : h["history"]) {
        const double ppl = r["perplexity"].get<double>();
        INFO(r.dump());
        CHECK(r["passed"].get<bool>() == (ppl <= full / 0.9 * (1 + 1e-12)));
        (r["passed"].get<bool>() ? passed : failed) += 1;
    }
    CHECK(passed >= 2);  // the start and at least one step: random weights tolerate a head or two
    CHECK(failed >= 1);  // every phase ends on a failure or on nothing left
    const double pruned = h["perplexity"].get<double>();
    CHECK(pruned <= full / 0.9);
    CHECK(close(eval_perplexity(oracle::dir() / name, data, (out / "masks.json").string()), pruned));
    CHECK(close(eval_perplexity(out / "model", data), pruned));
}

/// Kept entries per row of a 0/1 matrix.
std::vector<int> kept_per_row(const nlohmann::json& rows) {
    std::vector<int> out;
    for (const auto& r : rows) out.push_back(static_cast<int>(std::count(r.begin(), r.end(), 1)));
    return out;
}

}  // namespace

TEST_CASE("prune-heads on a GQA Llama: the rule, masks.json and the compacted model/", "[decoder][cli]") {
    const std::string name = "llama_gqa4_bf16_shards";  // 3 layers x 8 query heads on 2 K/V heads, BF16 shards
    const fs::path out = prune_heads(name, " --batch-size 2", "heads_gqa");
    check_run(name, out);
    const nlohmann::json h = read_json(out / "history.json");
    const nlohmann::json first = h["history"][1];
    REQUIRE(first["phase"] == 1);
    // Phase 1's first step masks floor(0.1 x 24) = 2 heads: the two lowest of prune-importance's
    // layer+global scores of the full model (ties: lower flat index first), and 1 MLP.
    const fs::path scores_file = oracle::dir() / "heads_scores.json";
    run_ok("prune-importance --model '" + (oracle::dir() / name).string() + "' --data '" + data_file(name).string() +
           "' --normalize layer+global --batch-size 2 --json '" + scores_file.string() + "'");
    const nlohmann::json scores = read_json(scores_file);
    std::vector<std::pair<double, int>> ranked;
    for (std::size_t l = 0; l < scores["heads"].size(); ++l)
        for (std::size_t i = 0; i < scores["heads"][l].size(); ++i)
            ranked.emplace_back(scores["heads"][l][i].get<double>(), static_cast<int>(l * 8 + i));
    std::sort(ranked.begin(), ranked.end());
    for (int flat = 0; flat < 24; ++flat) {
        const bool expected_masked = flat == ranked[0].second || flat == ranked[1].second;
        CHECK((first["heads"][flat / 8][flat % 8] == 0) == expected_masked);
    }
    CHECK(first["mlps_kept"] == 2);
    // model/: the input's dtype, and config.json's head counts are what masks.json keeps (a
    // K/V group whose query heads are all masked is gone; the others keep equal numbers).
    const nlohmann::json masks = read_json(out / "masks.json");
    const nlohmann::json config = read_json(out / "model" / "config.json");
    const std::vector<int> kept = kept_per_row(masks["heads"]);
    const auto& heads = config["num_attention_heads"];
    for (std::size_t l = 0; l < kept.size(); ++l) {
        const int written = heads.is_array() ? heads[l].get<int>() : heads.get<int>();
        CHECK(written >= kept[l]);  // masked heads kept (zeroed) only to even out the groups
    }
    const std::string header = prune_test::read_file(out / "model" / "model.safetensors").substr(0, 4096);
    CHECK(header.find("\"BF16\"") != std::string::npos);
    CHECK(header.find("\"F32\"") == std::string::npos);
}

TEST_CASE("prune-heads --unit kv-groups: whole K/V groups go", "[decoder][cli]") {
    const std::string name = "llama_gqa4_bf16_shards";
    const fs::path out = prune_heads(name, " --unit kv-groups --heads-step 0.2", "heads_kv");
    check_run(name, out);
    const nlohmann::json h = read_json(out / "history.json");
    CHECK(h["unit"] == "kv-groups");
    REQUIRE(h["history"][1].contains("kv_groups"));
    CHECK(kept_per_row(h["history"][1]["kv_groups"]) != std::vector<int>{2, 2, 2});  // floor(0.2 x 6) = 1 group masked
    const nlohmann::json masks = read_json(out / "masks.json");
    REQUIRE(masks.contains("kv_groups"));
    const nlohmann::json config = read_json(out / "model" / "config.json");
    const std::vector<int> groups = kept_per_row(masks["kv_groups"]);
    const auto& kv = config["num_key_value_heads"];
    for (std::size_t l = 0; l < groups.size(); ++l) CHECK((kv.is_array() ? kv[l].get<int>() : kv.get<int>()) == groups[l]);
}

TEST_CASE("prune-heads on GPT-2 (multi-head attention, F16 shards)", "[decoder][cli]") {
    const std::string name = "gpt2_noprefix_f16";  // 2 layers x 3 heads, no `transformer.` prefix
    const fs::path out = prune_heads(name, "", "heads_gpt2");
    check_run(name, out);
    const nlohmann::json masks = read_json(out / "masks.json");
    const nlohmann::json config = read_json(out / "model" / "config.json");
    const std::vector<int> kept = kept_per_row(masks["heads"]);
    const auto& n = config["n_head"];
    for (std::size_t l = 0; l < kept.size(); ++l) CHECK((n.is_array() ? n[l].get<int>() : n.get<int>()) == kept[l]);
}
