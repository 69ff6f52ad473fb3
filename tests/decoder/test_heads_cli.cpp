// prune-heads and prune-compact on causal-LM directories (tests/decoder/oracle.py's checkpoints): the s-pruning
// history obeys its rule (a mask passes iff its perplexity <= full / threshold), the full
// perplexity is prune-eval's, the first phase-1 step masks the lowest heads of prune-importance's
// layer+global scores (prune-importance is checked against PyTorch's autograd in test_cli.cpp),
// masks.json evaluated by prune-eval gives the reported perplexity, and model/ -- the masked
// units physically removed, written in the input's dtype -- gives that perplexity too when
// prune-eval loads it, with a config.json whose head counts match what was kept. prune-compact
// on a hand-written mask gives prune-eval's perplexity of the masked model, widths per layer;
// --remove-layers-by-bi N reports decoder::block_influence's scores (under --mask's gates when
// given; to float rounding, the binary built otherwise), removes the N lowest, and its directory's logits are those of the model
// with those layers skipped.
#include "oracle_cases.hpp"
#include "../support/files.hpp"
#include "../support/run_ok.hpp"
#include "synthetic_text.hpp"

#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/pretrain.hpp>
#include <prune/models/decoder/unit_scores.hpp>
#include <prune/text/bpe.hpp>
#include <prune/io/masks.hpp>

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

using prune_test::read_json;
using prune_test::run_in;

/// prune-eval's perplexity of `model` over `data` (with a structure mask when given).
double eval_perplexity(const fs::path& model, const fs::path& data, const std::string& mask = "", const std::string& flags = "") {
    const fs::path json = oracle::dir() / "eval.json";
    run_ok("prune-eval --model '" + model.string() + "' --data '" + data.string() + "'" + flags +
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
void check_run(const fs::path& model, const fs::path& data, const fs::path& out, const std::string& flags = "",
               double threshold = 0.9) {
    const nlohmann::json h = read_json(out / "history.json");
    const double full = h["perplexity_full"].get<double>();
    CHECK(close(full, eval_perplexity(model, data, "", flags)));
    CHECK(close(h["perplexity_limit"].get<double>(), full / threshold));
    std::size_t passed = 0, failed = 0;
    for (const auto& r : h["history"]) {
        const double ppl = r["perplexity"].get<double>();
        INFO(r.dump());
        CHECK(r["passed"].get<bool>() == (ppl <= full / threshold * (1 + 1e-12)));
        (r["passed"].get<bool>() ? passed : failed) += 1;
    }
    CHECK(passed >= 2);  // the start and at least one step: random weights tolerate a head or two
    CHECK(failed >= 1);  // every phase ends on a failure or on nothing left
    const double pruned = h["perplexity"].get<double>();
    CHECK(pruned <= full / threshold);
    CHECK(close(eval_perplexity(model, data, (out / "masks.json").string(), flags), pruned));
    CHECK(close(eval_perplexity(out / "model", data, "", flags), pruned));
}

void check_run(const std::string& name, const fs::path& out) { check_run(oracle::dir() / name, data_file(name), out); }

/// Kept entries per row of a 0/1 matrix.
std::vector<int> kept_per_row(const nlohmann::json& rows) {
    std::vector<int> out;
    for (const auto& r : rows) out.push_back(static_cast<int>(std::count(r.begin(), r.end(), 1)));
    return out;
}

/// Checks model/config.json's Llama head counts against masks.json (`group` query heads per K/V
/// head): a layer keeps its K/V groups with any query head left, each with as many query heads as
/// its fullest group (masked heads kept, zeroed, to even them out); their sum is
/// history.json's heads_zeroed_not_removed.
void check_llama_widths(const fs::path& out, int group) {
    const nlohmann::json masks = read_json(out / "masks.json"), config = read_json(out / "model" / "config.json");
    const nlohmann::json h = read_json(out / "history.json");
    const auto& q = config["num_attention_heads"];
    const auto& kv = config["num_key_value_heads"];
    int zeroed = 0;
    for (std::size_t l = 0; l < masks["heads"].size(); ++l) {
        int groups = 0, most = 0, kept = 0;
        for (std::size_t g = 0; g * static_cast<std::size_t>(group) < masks["heads"][l].size(); ++g) {
            int c = 0;
            for (int i = 0; i < group; ++i) c += masks["heads"][l][g * static_cast<std::size_t>(group) + static_cast<std::size_t>(i)].get<int>();
            groups += c > 0 ? 1 : 0;
            most = std::max(most, c);
            kept += c;
        }
        INFO("layer " << l << ": " << masks["heads"][l].dump() << ", config " << config.dump());
        CHECK((q.is_array() ? q[l].get<int>() : q.get<int>()) == groups * most);
        CHECK((kv.is_array() ? kv[l].get<int>() : kv.get<int>()) == groups);
        zeroed += groups * most - kept;
    }
    CHECK(h["heads_zeroed_not_removed"].get<int>() == zeroed);
}

/// dir/lm: a 2-layer Llama (8 query heads on 2 K/V heads) pre-trained for 60 steps on the
/// synthetic text of dir/data/pretrain (written here), with its tokenizer.json.
void train_small_llama(const fs::path& dir) {
    prune_test::write_pretrain_data(dir, 400, 60);
    run_in(dir, "prune-pretrain --arch llama --data data --layers 2 --hidden 32 --heads 8 --kv-heads 2 --intermediate 64 "
                "--vocab-size 320 --max-length 16 --steps 60 --batch-size 8 --lr 1e-2 --seed 3 --threads 1 --out lm");
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
    // model/: config.json's head counts are what masks.json keeps, in the input's dtype.
    check_llama_widths(out, 4);
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
    // GPT-2 keeps n_head and lists what is gone in pruned_heads ({"layer": [heads]}), as Hugging
    // Face's prune_heads() records it: exactly the heads masks.json masks.
    CHECK(config["n_head"] == 3);
    for (std::size_t l = 0; l < masks["heads"].size(); ++l) {
        std::vector<int> gone;
        for (int h = 0; h < 3; ++h)
            if (masks["heads"][l][static_cast<std::size_t>(h)] == 0) gone.push_back(h);
        const std::string key = std::to_string(l);
        if (gone.empty()) CHECK((!config.contains("pruned_heads") || !config["pruned_heads"].contains(key)));
        else CHECK(config["pruned_heads"][key].get<std::vector<int>>() == gone);
    }
}

TEST_CASE("prune-heads on a small trained Llama (GQA 8:2): stops where perplexity would rise past the limit",
          "[decoder][cli]") {
    // Random weights tolerate losing every head (the oracle cases above end with nothing kept);
    // a model trained on structured text does not.
    const prune_test::temp_dir dir("prune_decoder_heads_trained");
    train_small_llama(dir.path());
    auto run_here = [&](const std::string& command) { run_in(dir.path(), command); };
    const fs::path lm = dir.path() / "lm", data = dir.path() / "data" / "pretrain" / "dev.txt", out = dir.path() / "heads";
    run_here("prune-heads --model lm --data data/pretrain/dev.txt --context 16 --heads-step 0.25 --out heads");
    check_run(lm, data, out, " --context 16");
    const nlohmann::json h = read_json(out / "history.json");
    const std::vector<int> kept = kept_per_row(read_json(out / "masks.json")["heads"]);
    const int total = kept[0] + kept[1];
    INFO(h.dump(1));
    CHECK(total > 0);   // the limit stopped the search ...
    CHECK(total < 16);  // ... after it removed something
    // Here (observed) layer 0 keeps 2 query heads of one group and 1 of the other: one masked head
    // stays, zeroed, so both groups keep 2 -- the path that evens groups out runs.
    check_llama_widths(out, 4);
    CHECK(h["heads_zeroed_not_removed"].get<int>() >= 1);
    CHECK(fs::is_regular_file(out / "model" / "tokenizer.json"));
    CHECK(prune_test::read_file(out / "model" / "tokenizer.json") == prune_test::read_file(lm / "tokenizer.json"));
}

TEST_CASE("prune-compact: a structure mask and removed layers, written as a smaller model", "[decoder][cli]") {
    const std::string name = "llama_gqa4_bf16_shards";  // 3 layers x 8 query heads on 2 K/V heads, MLP 48
    const fs::path model = oracle::dir() / name, data = data_file(name), mask = oracle::dir() / "compact_mask.json";
    // Layer 0 keeps 2 query heads of each group, layer 1 everything, layer 2 only group 0's heads
    // (group 1 goes with them); layer 1's MLP goes.
    prune_test::write_file(mask, R"({"heads": [[1, 0, 1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0]],
                                     "mlps": [1, 0, 1]})");
    const fs::path out = oracle::dir() / "compacted", fewer = oracle::dir() / "compacted_layers";
    fs::remove_all(out);
    fs::remove_all(fewer);
    run_ok("prune-compact --model '" + model.string() + "' --mask '" + mask.string() + "' --out '" + out.string() + "'");
    CHECK(close(eval_perplexity(out, data), eval_perplexity(model, data, mask.string())));
    const nlohmann::json config = read_json(out / "config.json");
    CHECK(config["num_attention_heads"] == nlohmann::json({4, 8, 4}));
    CHECK(config["num_key_value_heads"] == nlohmann::json({2, 2, 1}));
    CHECK(config["intermediate_size"] == nlohmann::json({48, 0, 48}));
    const std::string header = prune_test::read_file(out / "model.safetensors").substr(0, 4096);
    CHECK(header.find("\"BF16\"") != std::string::npos);  // the input's dtype
    std::uintmax_t before = 0;
    for (const char* shard : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"})
        before += fs::file_size(model / shard);
    CHECK(fs::file_size(out / "model.safetensors") < before);
    // Layer 1 removed too: two layers left, renumbered; the directory loads and evaluates.
    const std::string err = run_ok("prune-compact --model '" + model.string() + "' --mask '" + mask.string() +
                                   "' --remove-layers 1 --out '" + fewer.string() + "'");
    CHECK(err.find("3 -> 2 layers") != std::string::npos);
    const nlohmann::json two = read_json(fewer / "config.json");
    CHECK(two["num_hidden_layers"] == 2);
    CHECK(two["num_attention_heads"] == nlohmann::json({4, 4}));
    CHECK(std::isfinite(eval_perplexity(fewer, data)));
}

TEST_CASE("prune-heads --score taylor on a small trained Llama: the first step removes the lowest Taylor scores",
          "[decoder][cli]") {
    const prune_test::temp_dir dir("prune_decoder_heads_taylor");
    train_small_llama(dir.path());
    auto run_here = [&](const std::string& command) { run_in(dir.path(), command); };
    const fs::path lm = dir.path() / "lm", data = dir.path() / "data" / "pretrain" / "dev.txt", out = dir.path() / "taylor";
    run_here("prune-heads --model lm --data data/pretrain/dev.txt --context 16 --score taylor --out taylor");
    check_run(lm, data, out, " --context 16");
    const nlohmann::json h = read_json(out / "history.json");
    CHECK(h["score"] == "taylor");
    // The scores in process (decoder::taylor_importance, checked against PyTorch's autograd in
    // test_decoder_unit_scores) over the same 16-token windows: phase 1's first step masks the
    // floor(0.1 x 16) = 1 lowest head and the lowest MLP.
    const prune::decoder::weights w = prune::decoder::load_model(lm);
    const auto tok = prune::text::bpe_tokenizer::from_file(lm / "tokenizer.json");
    const std::vector<std::int32_t> ids = tok.encode(prune_test::read_file(data));
    const auto windows = prune::decoder::token_windows(ids, 16);
    const auto t = prune::decoder::taylor_importance(w, windows);
    std::pair<double, int> lowest{1e300, -1};
    for (int flat = 0; flat < 16; ++flat) {
        const std::pair<double, int> here{t.heads[static_cast<std::size_t>(flat / 8)][static_cast<std::size_t>(flat % 8)], flat};
        lowest = std::min(lowest, here);
    }
    const nlohmann::json first = h["history"][1];
    REQUIRE(first["phase"] == 1);
    for (int flat = 0; flat < 16; ++flat) CHECK((first["heads"][flat / 8][flat % 8] == 0) == (flat == lowest.second));
    const int mlp = t.mlps[0] <= t.mlps[1] ? 0 : 1;
    CHECK(first["mlps"][mlp][0] == 0);  // rows of one MLP per layer
    CHECK(first["mlps"][1 - mlp][0] == 1);
}

/// Kept channels per layer of config.json's intermediate_size (a number or a per-layer list).
int width_of(const nlohmann::json& config, const char* key, std::size_t l) {
    const auto& v = config[key];
    return v.is_array() ? v[l].get<int>() : v.get<int>();
}

TEST_CASE("prune-heads --unit mlp-channels on a small trained Llama: the lowest Taylor channels go first, model/ is narrower",
          "[decoder][cli]") {
    const prune_test::temp_dir dir("prune_decoder_heads_channels");
    train_small_llama(dir.path());  // 2 layers, MLP width 64
    const fs::path lm = dir.path() / "lm", data = dir.path() / "data" / "pretrain" / "dev.txt", out = dir.path() / "channels";
    run_in(dir.path(), "prune-heads --model lm --data data/pretrain/dev.txt --context 16 --unit mlp-channels --out channels");
    // The rule; prune-eval of masks.json (its mlp_channels zero the down projections' inputs)
    // gives the reported perplexity, and so does model/, where those channels are cut out.
    check_run(lm, data, out, " --context 16");
    const nlohmann::json h = read_json(out / "history.json");
    CHECK(h["unit"] == "mlp-channels");
    CHECK(h["score"] == "taylor");
    // The scores in process (decoder::taylor_importance, checked against PyTorch's autograd in
    // test_decoder_unit_scores): phase 1's first step masks the floor(0.1 x 128) = 12 lowest
    // channels of both layers ranked together (ties: lower flat index) and the lowest MLP.
    const prune::decoder::weights w = prune::decoder::load_model(lm);
    const auto tok = prune::text::bpe_tokenizer::from_file(lm / "tokenizer.json");
    const auto windows = prune::decoder::token_windows(tok.encode(prune_test::read_file(data)), 16);
    const auto t = prune::decoder::taylor_importance(w, windows);
    std::vector<std::pair<double, int>> ranked;
    for (int flat = 0; flat < 128; ++flat)
        ranked.emplace_back(t.channels[static_cast<std::size_t>(flat / 64)][static_cast<std::size_t>(flat % 64)], flat);
    std::sort(ranked.begin(), ranked.end());
    const nlohmann::json first = h["history"][1];
    REQUIRE(first["phase"] == 1);
    REQUIRE(first.contains("mlp_channels"));
    for (std::size_t k = 0; k < ranked.size(); ++k) {
        const int flat = ranked[k].second;
        INFO("rank " << k << ": channel " << flat % 64 << " of layer " << flat / 64);
        CHECK((first["mlp_channels"][flat / 64][flat % 64] == 0) == (k < 12));
    }
    const int mlp = t.mlps[0] <= t.mlps[1] ? 0 : 1;
    CHECK(first["mlps"][mlp][0] == 0);
    // model/: each layer's intermediate_size is the channels masks.json keeps (0 where its MLP went).
    const nlohmann::json masks = read_json(out / "masks.json"), config = read_json(out / "model" / "config.json");
    REQUIRE(masks.contains("mlp_channels"));
    const std::vector<int> kept = kept_per_row(masks["mlp_channels"]);
    INFO(masks.dump() << "\n" << config.dump());
    for (std::size_t l = 0; l < 2; ++l)
        CHECK(width_of(config, "intermediate_size", l) == (masks["mlps"][l] == 1 ? kept[l] : 0));
    CHECK(kept[0] + kept[1] < 128);  // something went
}

TEST_CASE("prune-heads --unit mlp-channels on GPT-2 (Conv1D c_proj rows); prune-eval and prune-compact of a channel mask",
          "[decoder][cli]") {
    const std::string name = "gpt2_noprefix_f16";  // 2 layers, MLP width 40, no `transformer.` prefix, F16
    const fs::path model = oracle::dir() / name, data = data_file(name);
    const fs::path out = prune_heads(name, " --unit mlp-channels", "channels_gpt2");
    const nlohmann::json h = read_json(out / "history.json");
    // Random weights lose nothing they need (the search ends with every MLP gone), so the
    // channel masks are checked on phase 1's first step: floor(0.1 x 80) = 8 channels and one MLP.
    const nlohmann::json first = h["history"][1];
    REQUIRE(first.contains("mlp_channels"));
    const std::vector<int> kept = kept_per_row(first["mlp_channels"]);
    CHECK(kept[0] + kept[1] == 72);
    const fs::path mask = oracle::dir() / "channels_gpt2_mask.json";
    prune_test::write_file(mask, nlohmann::json{{"mlps", {1, 1}}, {"mlp_channels", first["mlp_channels"]}}.dump());
    // prune-eval zeroes the channels' c_proj rows (streamed and whole), prune-compact cuts them
    // out: the same perplexity, and the compacted config's widths are the kept channels.
    const double masked = eval_perplexity(model, data, mask.string());
    CHECK(close(eval_perplexity(model, data, mask.string(), " --whole-model"), masked));
    const fs::path compacted = oracle::dir() / "channels_gpt2_compacted";
    fs::remove_all(compacted);
    run_ok("prune-compact --model '" + model.string() + "' --mask '" + mask.string() + "' --out '" + compacted.string() + "'");
    CHECK(close(eval_perplexity(compacted, data), masked));
    const nlohmann::json config = read_json(compacted / "config.json");
    for (std::size_t l = 0; l < 2; ++l) CHECK(width_of(config, "n_inner", l) == kept[l]);
    CHECK(!close(masked, h["perplexity_full"].get<double>(), 1e-3));  // the channels mattered
    // The search's own end: masks.json and model/ give its perplexity.
    CHECK(close(eval_perplexity(model, data, (out / "masks.json").string()), h["perplexity"].get<double>()));
    CHECK(close(eval_perplexity(out / "model", data), h["perplexity"].get<double>()));
}

TEST_CASE("prune-heads --unit mlp-channels refuses --score michel", "[decoder][cli]") {
    const std::string name = "gpt2_noprefix_f16";
    const prune_test::outcome o = prune_test::run_binary(
        "prune-heads --model '" + (oracle::dir() / name).string() + "' --data '" + data_file(name).string() +
            "' --unit mlp-channels --score michel --out '" + (oracle::dir() / "never").string() + "'",
        oracle::dir(), oracle::dir() / "stderr.txt", "OPENBLAS_NUM_THREADS=1");
    CHECK(o.code == 2);
    CHECK(o.err.find("--unit mlp-channels with --score michel") != std::string::npos);
    CHECK(!fs::exists(oracle::dir() / "never"));
}

namespace {

/// The logits of `data` as one batch through `w` under `gate` (null: none).
std::vector<float> logits_of(const prune::decoder::weights& w, const std::vector<std::vector<std::int32_t>>& data,
                             const prune::decoder::gates* gate = nullptr) {
    prune::decoder::sequences batch;
    for (const auto& s : data) batch.add(s);
    prune::decoder::workspace ws(1);
    prune::decoder::forward_options o;
    o.gate = gate;
    (void)prune::decoder::forward(w, batch, ws, o);
    return {ws.logits().begin(), ws.logits().end()};
}

double worst_difference(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double e = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, static_cast<double>(std::abs(a[i] - b[i])));
    return e;
}

/// The `n` layers of lowest `bi` (equal scores lower index first), in increasing order: sorted
/// here by (score, index) pairs, not by prune-compact's code.
std::vector<int> lowest(const std::vector<double>& bi, std::size_t n) {
    std::vector<std::pair<double, int>> ranked;
    for (std::size_t l = 0; l < bi.size(); ++l) ranked.emplace_back(bi[l], static_cast<int>(l));
    std::sort(ranked.begin(), ranked.end());
    std::vector<int> out;
    for (std::size_t k = 0; k < n; ++k) out.push_back(ranked[k].second);
    std::sort(out.begin(), out.end());
    return out;
}

/// Checks prune-compact --remove-layers-by-bi's directory `out` on `model` (3 layers, no
/// o_proj bias) over `data`, under `gate` (null: none): report.json's scores are
/// decoder::block_influence's bits (checked against PyTorch in test_decoder_unit_scores) with
/// the same batches, its removed layers the n lowest, and the directory's logits those of the
/// model with those layers skipped (their heads and MLP gated off: the residual passes through).
void check_by_bi(const fs::path& model, const std::vector<std::vector<std::int32_t>>& data, prune::decoder::gates gate,
                 const fs::path& out, std::size_t n) {
    const prune::decoder::weights w = prune::decoder::load_model(model);
    const nlohmann::json report = read_json(out / "report.json");
    const std::vector<double> bi = prune::decoder::block_influence(w, data, &gate, 3, 2), reported = report["block_influence"];
    INFO("report.json " << report.dump());
    REQUIRE(reported.size() == bi.size());
    // The binary is built -O3 -march=native, this test -O1: float rounding differs (observed
    // at most 1.7e-8), so the bound is the one BI meets against PyTorch.
    for (std::size_t l = 0; l < bi.size(); ++l) CHECK(std::abs(reported[l] - bi[l]) <= 1e-6);
    const std::vector<int> removed = lowest(bi, n);
    CHECK(report["removed_layers"].get<std::vector<int>>() == removed);
    CHECK(lowest(reported, n) == removed);
    CHECK(report["sequences"] == data.size());
    const prune::decoder::weights small = prune::decoder::load_model(out);
    REQUIRE(small.layers.size() == w.layers.size() - n);
    const std::vector<float> kept = logits_of(w, data, &gate);
    if (gate.heads.empty()) gate.heads.assign(w.layers.size(), {});
    if (gate.mlps.empty()) gate.mlps.assign(w.layers.size(), 1.0f);
    for (const int l : removed) {
        const auto i = static_cast<std::size_t>(l);
        REQUIRE(w.layers[i].out_bias.empty());
        gate.heads[i].assign(static_cast<std::size_t>(w.layers[i].q_heads), 0.0f);
        gate.mlps[i] = 0.0f;
    }
    const std::vector<float> skipped = logits_of(w, data, &gate);
    const double e = worst_difference(logits_of(small, data), skipped);
    INFO("compacted vs layers skipped: worst logit difference " << e);
    CHECK(e <= 1e-5);
    CHECK(worst_difference(kept, skipped) > 1e-3);  // removing the layers changes the model: the check can fail
}

}  // namespace

TEST_CASE("prune-compact --remove-layers-by-bi: the layers of lowest Block Influence removed", "[decoder][cli]") {
    const std::string name = "llama_gqa4_bf16_shards";  // 3 layers x 8 query heads on 2 K/V heads, no biases
    const fs::path model = oracle::dir() / name, data = data_file(name), mask = oracle::dir() / "bi_mask.json";
    const auto rows = oracle::load(name)["sequences"].get<std::vector<std::vector<std::int32_t>>>();
    const std::string head = "prune-compact --model '" + model.string() + "' --data '" + data.string() + "' --batch-size 3 --threads 2";
    SECTION("one layer") {
        const fs::path out = oracle::dir() / "bi_one";
        fs::remove_all(out);
        const std::string err = run_ok(head + " --remove-layers-by-bi 1 --out '" + out.string() + "'");
        CHECK(err.find("3 -> 2 layers") != std::string::npos);
        check_by_bi(model, rows, {}, out, 1);
        // One thread: the same scores, bit for bit (block_influence sums rows in order).
        const fs::path one = oracle::dir() / "bi_one_thread";
        fs::remove_all(one);
        run_ok("prune-compact --model '" + model.string() + "' --data '" + data.string() +
               "' --batch-size 3 --threads 1 --remove-layers-by-bi 1 --out '" + one.string() + "'");
        CHECK(read_json(one / "report.json")["block_influence"] == read_json(out / "report.json")["block_influence"]);
    }
    SECTION("two layers under a mask: BI of the masked model") {
        // Layer 0 keeps 2 query heads of each group, layer 2 only group 0's; layer 1's MLP goes.
        prune_test::write_file(mask, R"({"heads": [[1, 0, 1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0]],
                                         "mlps": [1, 0, 1]})");
        const fs::path out = oracle::dir() / "bi_two";
        fs::remove_all(out);
        run_ok(head + " --mask '" + mask.string() + "' --remove-layers-by-bi 2 --out '" + out.string() + "'");
        const prune::decoder::weights w = prune::decoder::load_model(model);
        const prune::decoder::gates gate = prune::decoder::gates::from_mask(prune::io::read_structure_mask(mask), w);
        CHECK(read_json(out / "report.json")["block_influence"].get<std::vector<double>>() !=
              prune::decoder::block_influence(w, rows, nullptr, 3, 2));  // the mask changes the scores
        check_by_bi(model, rows, gate, out, 2);
    }
    SECTION("refused: N outside 1..2, --data without it; nothing written") {
        const fs::path out = oracle::dir() / "bi_refused";
        fs::remove_all(out);
        const std::pair<std::string, std::string> refused[] = {
            {head + " --remove-layers-by-bi 0", "--remove-layers-by-bi 0 (expected 1..2: at least one of the model's 3 layers must stay)"},
            {head + " --remove-layers-by-bi 3", "--remove-layers-by-bi 3 (expected 1..2: at least one of the model's 3 layers must stay)"},
            {head + " --remove-layers 1", "--data without --remove-layers-by-bi (expected it: only BI reads data)"}};
        for (const auto& [command, message] : refused) {
            const prune_test::outcome o =
                prune_test::run_binary(command + " --out '" + out.string() + "'", oracle::dir(), oracle::dir() / "stderr.txt", "");
            INFO(command << "\n" << o.err);
            CHECK(o.code == 2);
            CHECK(o.err.find(message) != std::string::npos);
            CHECK(!fs::exists(out));
        }
    }
}
