// Physical compaction of decoders (prune/models/decoder/compact.hpp).
//
// The truth is the masked model: the same weights run with query-head, K/V-group and MLP gates
// from the masks, the removed MLP channels' down-projection columns zeroed, and a removed layer
// gated off entirely (heads and MLP at 0, its attention output bias zeroed). It is built here
// from the masks alone, without compact.hpp's code. The compacted model must give the same
// logits within 1e-5 (absolute, float32), for each unit kind on a GQA Llama (8 query heads,
// 2 K/V heads; tied with biases, and untied without) and on GPT-2, for cached decoding, and
// after save_model + load_model (uniform widths: stock Hugging Face keys; per-layer widths:
// lists; GPT-2: pruned_heads). Bad masks are refused with messages naming the part and layer.
//
// Against PyTorch: uniformly compacted models saved by prune (config.json with Hugging Face's
// own keys) are run by tests/decoder/compact_oracle.py through independent float64 models
// that read the widths as Hugging Face does -- oracle.py's Llama, and a GPT-2 applying
// pruned_heads as GPT2Attention.prune_heads does: same logits (1e-4 relative to max(1, |x|),
// test_decoder_oracle's bound). transformers itself is not installed.
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/compact.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/generate.hpp>
#include <prune/io/gguf_convert.hpp>

#include "../io/gguf_support.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using namespace prune;

namespace {

/// A 3-layer GQA Llama: 8 query heads, 2 K/V heads (groups of 4), head_dim 6, MLP 20.
decoder::weights llama_model(bool tied, bool bias) {
    const std::string text = std::string(R"({"model_type": "llama", "hidden_size": 24, "num_attention_heads": 8,
        "num_key_value_heads": 2, "head_dim": 6, "num_hidden_layers": 3, "intermediate_size": 20, "vocab_size": 40,
        "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "tie_word_embeddings": )") +
                             (tied ? "true" : "false") + R"(, "attention_bias": )" + (bias ? "true" : "false") +
                             R"(, "mlp_bias": )" + (bias ? "true" : "false") + "}";
    return decoder::random_weights(decoder::config_from_json(io::parse_json(text, "config.json")), tied ? 11 : 12, 0.2f);
}

/// A 3-layer GPT-2: 4 heads of 6, MLP 20.
decoder::weights gpt2_model() {
    const std::string text = R"({"model_type": "gpt2", "n_embd": 24, "n_head": 4, "n_layer": 3, "n_inner": 20,
        "vocab_size": 40, "n_positions": 32})";
    return decoder::random_weights(decoder::config_from_json(io::parse_json(text, "config.json")), 13, 0.2f);
}

decoder::sequences batch() {
    decoder::sequences s;
    s.add(std::vector<std::int32_t>{3, 17, 5, 39, 0, 22, 8});
    s.add(std::vector<std::int32_t>{11, 2, 30, 7, 19});
    return s;
}

std::vector<float> logits(const decoder::weights& w, const decoder::gates* g = nullptr) {
    decoder::workspace ws(2);
    decoder::forward_options o;
    o.gate = g;
    (void)decoder::forward(w, batch(), ws, o);
    return {ws.logits().begin(), ws.logits().end()};
}

/// Whether unit i of row l of a mask part is kept (empty = kept).
bool keeps(const std::vector<std::vector<float>>& part, std::size_t l, std::size_t i) {
    return part.empty() || part[l].empty() || part[l][i] != 0.0f;
}

/// The masked model's weights and gates (see the header comment).
struct masked {
    decoder::weights w;
    decoder::gates g;
};

masked masked_model(const decoder::weights& w, const decoder::unit_masks& m) {
    masked r{w, {}};
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        auto& L = r.w.layers[l];
        const bool layer_on = m.layers.empty() || m.layers[l] != 0.0f;
        r.g.heads.emplace_back();
        r.g.kv_groups.emplace_back();
        for (std::size_t h = 0; h < static_cast<std::size_t>(L.q_heads); ++h) r.g.heads[l].push_back(layer_on && keeps(m.heads, l, h) ? 1.0f : 0.0f);
        for (std::size_t k = 0; k < static_cast<std::size_t>(L.kv_heads); ++k) r.g.kv_groups[l].push_back(keeps(m.kv_groups, l, k) ? 1.0f : 0.0f);
        bool any_channel = false;
        for (std::size_t j = 0; j < static_cast<std::size_t>(L.ffn); ++j) {
            if (keeps(m.channels, l, j)) any_channel = true;
            else for (std::size_t o = 0; o < static_cast<std::size_t>(w.cfg.hidden_size); ++o) L.down[o * static_cast<std::size_t>(L.ffn) + j] = 0.0f;
        }
        r.g.mlps.push_back(layer_on && any_channel && (m.mlps.empty() || m.mlps[l] != 0.0f) ? 1.0f : 0.0f);
        if (!layer_on) std::fill(L.out_bias.begin(), L.out_bias.end(), 0.0f);
    }
    return r;
}

double worst(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double e = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, static_cast<double>(std::abs(a[i] - b[i])));
    return e;
}

/// Compacts w by m, checks the logits against the masked model's (1e-5) and returns the result.
decoder::weights check_equivalent(const decoder::weights& w, const decoder::unit_masks& m, const char* what) {
    const masked ref = masked_model(w, m);
    const std::vector<float> want = logits(ref.w, &ref.g);
    decoder::weights c = decoder::compact(w, m);
    const double e = worst(logits(c), want);
    INFO(what << ": compacted vs masked logits, worst abs difference " << e);
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("%-40s compacted vs masked: %.3g\n", what, e);
    CHECK(e <= 1e-5);
    CHECK(worst(logits(w), want) > 1e-3);  // the masks change the model: the check can fail
    return c;
}

std::vector<int> widths(const decoder::weights& w, int decoder::layer_weights::*m) {
    std::vector<int> v;
    for (const auto& L : w.layers) v.push_back(L.*m);
    return v;
}

/// This process's temporary directory, removed at exit.
fs::path scratch() {
    struct cleanup {
        fs::path path;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(path, ec);
        }
    };
    static const cleanup dir{fs::temp_directory_path() / ("prune_compact_" + std::to_string(::getpid()))};
    return dir.path;
}

fs::path dir_of(const std::string& name) { return scratch() / name; }

fs::path temp(const std::string& name) {
    const fs::path d = dir_of(name);
    fs::remove_all(d);
    fs::create_directories(d.parent_path());
    return d;
}

/// Saves, loads back and checks the logits are unchanged; returns the config.json written.
io::json round_trip(const decoder::weights& c, const std::string& name) {
    const fs::path d = temp(name);
    decoder::save_model(c, d);
    const decoder::weights back = decoder::load_model(d);
    CHECK(widths(back, &decoder::layer_weights::q_heads) == widths(c, &decoder::layer_weights::q_heads));
    CHECK(widths(back, &decoder::layer_weights::kv_heads) == widths(c, &decoder::layer_weights::kv_heads));
    CHECK(widths(back, &decoder::layer_weights::ffn) == widths(c, &decoder::layer_weights::ffn));
    CHECK(worst(logits(back), logits(c)) <= 1e-6);
    return io::read_json_file(d / "config.json");
}

}  // namespace

TEST_CASE("unit_counts", "[decoder][compact]") {
    const decoder::unit_count n = decoder::unit_counts(llama_model(false, false));
    CHECK(n.layers() == 3);
    CHECK(n.total(decoder::unit_kind::query_head) == 24);
    CHECK(n.total(decoder::unit_kind::kv_group) == 6);
    CHECK(n.total(decoder::unit_kind::mlp) == 3);
    CHECK(n.total(decoder::unit_kind::mlp_channel) == 60);
    CHECK(n.total(decoder::unit_kind::layer) == 3);
}

TEST_CASE("Llama: query heads alone keep K/V; all heads of a layer", "[decoder][compact]") {
    for (bool tied : {false, true}) {
        const decoder::weights w = llama_model(tied, tied);
        decoder::unit_masks m;
        m.heads = {{1, 0, 1, 0, 0, 1, 1, 0}, {}, {0, 0, 0, 0, 0, 0, 0, 0}};
        const decoder::weights c = check_equivalent(w, m, tied ? "llama tied+bias: query heads" : "llama: query heads");
        CHECK(widths(c, &decoder::layer_weights::q_heads) == std::vector<int>{4, 8, 0});
        CHECK(widths(c, &decoder::layer_weights::kv_heads) == std::vector<int>{2, 2, 0});
        CHECK(c.cfg.layer_heads == std::vector<int>{4, 8, 0});
        CHECK(c.cfg.source["num_attention_heads"] == io::json({4, 8, 0}));
    }
}

TEST_CASE("Llama: K/V groups take their query heads; a group emptied by head masks goes", "[decoder][compact]") {
    const decoder::weights w = llama_model(false, true);
    decoder::unit_masks m;
    m.kv_groups = {{1, 1}, {0, 1}, {1, 0}};
    m.heads = {{0, 0, 0, 0, 1, 1, 1, 1}, {}, {1, 0, 1, 1, 1, 1, 1, 1}};  // layer 0: group 0's heads all gone
    const decoder::weights c = check_equivalent(w, m, "llama: K/V groups");
    CHECK(widths(c, &decoder::layer_weights::q_heads) == std::vector<int>{4, 4, 3});
    CHECK(widths(c, &decoder::layer_weights::kv_heads) == std::vector<int>{1, 1, 1});
    // Layer 0 kept group 1: its K rows are the old K head 1 (rows (8 + 1) * 6 of the stacked qkv).
    const auto& L0 = w.layers[0];
    CHECK(std::equal(c.layers[0].qkv.begin() + 4 * 6 * 24, c.layers[0].qkv.begin() + 5 * 6 * 24, L0.qkv.begin() + 9 * 6 * 24));
}

TEST_CASE("Llama: MLPs and MLP channels", "[decoder][compact]") {
    for (bool tied : {false, true}) {
        const decoder::weights w = llama_model(tied, tied);
        decoder::unit_masks m;
        m.mlps = {1, 0, 1};
        m.channels.assign(3, std::vector<float>(20, 1.0f));
        for (int j = 0; j < 20; j += 2) m.channels[0][static_cast<std::size_t>(j)] = 0.0f;
        m.channels[2].assign(20, 0.0f);  // every channel: the MLP goes
        const decoder::weights c = check_equivalent(w, m, tied ? "llama tied+bias: MLPs, channels" : "llama: MLPs, channels");
        CHECK(widths(c, &decoder::layer_weights::ffn) == std::vector<int>{10, 0, 0});
        CHECK(c.cfg.source["intermediate_size"] == io::json({10, 0, 0}));
    }
}

TEST_CASE("Llama: layers removed and renumbered", "[decoder][compact]") {
    const decoder::weights w = llama_model(false, false);
    decoder::unit_masks m;
    m.layers = {1, 0, 1};
    m.heads = {{}, {}, {0, 1, 0, 1, 0, 1, 0, 1}};
    const decoder::weights c = check_equivalent(w, m, "llama: layers");
    REQUIRE(c.layers.size() == 2);
    CHECK(c.cfg.num_hidden_layers == 2);
    CHECK(c.cfg.source["num_hidden_layers"] == 2);
    CHECK(c.layers[0].qkv == w.layers[0].qkv);
    CHECK(c.layers[1].down == w.layers[2].down);  // old layer 2 is layer 1
    CHECK(c.layers[1].q_heads == 4);
}

TEST_CASE("GPT-2: heads, all heads of a layer, MLPs, channels, layers", "[decoder][compact]") {
    const decoder::weights w = gpt2_model();
    decoder::unit_masks m;
    m.heads = {{1, 0, 0, 1}, {0, 0, 0, 0}, {}};
    m.channels = {{}, {}, std::vector<float>(20, 1.0f)};
    for (int j = 1; j < 20; j += 3) m.channels[2][static_cast<std::size_t>(j)] = 0.0f;
    m.mlps = {0, 1, 1};
    decoder::weights c = check_equivalent(w, m, "gpt2: heads, MLP, channels");
    CHECK(widths(c, &decoder::layer_weights::q_heads) == std::vector<int>{2, 0, 4});
    CHECK(widths(c, &decoder::layer_weights::ffn) == std::vector<int>{0, 20, 13});
    CHECK(c.cfg.source["n_head"] == 4);
    CHECK(c.cfg.source["pruned_heads"] == io::json::parse(R"({"0": [1, 2], "1": [0, 1, 2, 3]})"));
    CHECK(c.cfg.source["n_inner"] == io::json({0, 20, 13}));

    decoder::unit_masks drop;
    drop.layers = {0, 1, 1};
    drop.kv_groups = {{}, {}, {1, 0, 1, 1}};  // GPT-2: a K/V group is a head
    (void)check_equivalent(w, drop, "gpt2: layer, head as K/V group");
}

TEST_CASE("A structure mask (heads, K/V groups, MLPs) compacts like the same unit masks", "[decoder][compact]") {
    const decoder::weights w = llama_model(false, false);
    structure_mask s{group_mask::uniform(3, 8), group_mask::uniform(3, 1), group_mask::uniform(3, 2)};
    s.heads.set(0, 1, false);
    s.heads.set(0, 5, false);
    s.kv_groups.set(2, 0, false);
    s.mlps.set(1, 0, false);
    const decoder::unit_masks m = decoder::unit_masks::from_mask(s, w);
    CHECK(m.heads[0] == std::vector<float>{1, 0, 1, 1, 1, 0, 1, 1});
    CHECK(m.kv_groups[2] == std::vector<float>{0, 1});
    CHECK(m.mlps == std::vector<float>{1, 0, 1});
    const decoder::weights c = check_equivalent(w, m, "llama: from a structure mask");
    CHECK(widths(c, &decoder::layer_weights::q_heads) == std::vector<int>{6, 8, 4});
    CHECK(widths(c, &decoder::layer_weights::ffn) == std::vector<int>{20, 0, 20});
    s.heads = group_mask::uniform(3, 4);
    CHECK_THROWS_AS(decoder::unit_masks::from_mask(s, w), shape_error);
}

TEST_CASE("Cached decoding of a compacted model equals the masked model", "[decoder][compact]") {
    const decoder::weights w = llama_model(false, true);
    decoder::unit_masks m;
    m.kv_groups = {{1, 0}, {}, {}};
    m.heads = {{}, {1, 1, 0, 0, 0, 0, 1, 1}, {}};
    m.channels = {{}, std::vector<float>(20, 0.0f), {}};
    m.channels[1][3] = 1.0f;
    m.layers = {1, 1, 0};
    const masked ref = masked_model(w, m);
    const decoder::weights c = decoder::compact(w, m);
    const std::vector<std::int32_t> ids{3, 17, 5, 39, 0, 22, 8, 1, 9};
    decoder::workspace ws(2), full(1);
    decoder::sequences seq;
    seq.add(ids);
    decoder::forward_options o;
    o.gate = &ref.g;
    (void)decoder::forward(ref.w, seq, full, o);
    const std::vector<float> want(full.logits().begin(), full.logits().end());
    decoder::kv_cache cache = decoder::make_kv_cache(c, static_cast<int>(ids.size()));
    std::vector<float> got;
    for (std::size_t start = 0; start < ids.size(); start += start == 0 ? 4 : 1) {
        decoder::decode(c, std::span<const std::int32_t>(ids).subspan(start, start == 0 ? 4 : 1), cache, ws);
        got.insert(got.end(), ws.logits().begin(), ws.logits().end());
    }
    CHECK(worst(got, want) <= 1e-5);
}

TEST_CASE("Compacted models saved and loaded: uniform and per-layer configs", "[decoder][compact]") {
    SECTION("Llama, uniform: Hugging Face's own keys") {
        const decoder::weights w = llama_model(false, false);
        decoder::unit_masks m;
        m.heads.assign(3, {1, 0, 1, 0, 1, 1, 0, 0});  // 2 of 4 in each group
        m.channels.assign(3, std::vector<float>(20, 1.0f));
        for (auto& row : m.channels) row[5] = row[7] = 0.0f;
        m.layers = {1, 1, 0};
        const decoder::weights c = check_equivalent(w, m, "llama uniform");
        CHECK(c.cfg.layer_heads.empty());
        const io::json j = round_trip(c, "llama_uniform");
        CHECK(j["num_attention_heads"] == 4);
        CHECK(j["num_key_value_heads"] == 2);
        CHECK(j["head_dim"] == 6);
        CHECK(j["intermediate_size"] == 18);
        CHECK(j["num_hidden_layers"] == 2);
    }
    SECTION("Llama, per-layer lists") {
        const decoder::weights w = llama_model(true, true);
        decoder::unit_masks m;
        m.kv_groups = {{0, 1}, {}, {}};
        m.heads = {{}, {}, std::vector<float>(8, 0.0f)};
        m.mlps = {1, 0, 1};
        const decoder::weights c = check_equivalent(w, m, "llama per-layer");
        const io::json j = round_trip(c, "llama_layers");
        CHECK(j["num_attention_heads"] == io::json({4, 8, 0}));
        CHECK(j["num_key_value_heads"] == io::json({1, 2, 0}));
        CHECK(j["intermediate_size"] == io::json({20, 0, 20}));
        // GGUF: per-layer i32 arrays as llama.cpp reads them, checked by @huggingface/gguf; and back
        // to a Hugging Face directory that loads with the same widths and logits. (llama.cpp's
        // Llama has no MLP biases: the same masks on the model without biases.)
        const decoder::weights plain = decoder::compact(llama_model(true, false), m);
        decoder::save_model(plain, temp("llama_layers_plain"));
        const fs::path gguf = dir_of("llama_layers.gguf"), back_dir = temp("llama_layers_back");
        io::convert_hf_to_gguf(dir_of("llama_layers_plain"), gguf);
        const nlohmann::json seen = prune_test::js_read_gguf(gguf);
        std::map<std::string, nlohmann::json> meta;
        for (const auto& kv : seen["metadata"]) meta[kv["key"].get<std::string>()] = kv;
        for (const auto& [key, want] : {std::pair<std::string, nlohmann::json>{"llama.attention.head_count", {4, 8, 0}},
                                        {"llama.attention.head_count_kv", {1, 2, 0}},
                                        {"llama.feed_forward_length", {20, 0, 20}}}) {
            INFO(key);
            REQUIRE(meta.count(key) == 1);
            CHECK(meta[key]["type"] == 9);      // array
            CHECK(meta[key]["sub_type"] == 5);  // of i32
            CHECK(meta[key]["value"] == want);
        }
        CHECK(meta["llama.block_count"]["value"] == 3);
        io::convert_gguf_to_hf(gguf, back_dir);
        const decoder::weights from_gguf = decoder::load_model(back_dir);
        CHECK(widths(from_gguf, &decoder::layer_weights::q_heads) == widths(plain, &decoder::layer_weights::q_heads));
        CHECK(widths(from_gguf, &decoder::layer_weights::ffn) == widths(plain, &decoder::layer_weights::ffn));
        CHECK(worst(logits(from_gguf), logits(plain)) <= 1e-6);
    }
    SECTION("GPT-2: pruned_heads, n_inner list; compacting again composes original indices") {
        const decoder::weights w = gpt2_model();
        decoder::unit_masks m;
        m.heads = {{1, 0, 1, 1}, {}, {0, 1, 1, 0}};
        m.mlps = {1, 1, 0};
        const decoder::weights c = check_equivalent(w, m, "gpt2 saved");
        (void)round_trip(c, "gpt2_once");
        const decoder::weights back = decoder::load_model(dir_of("gpt2_once"));
        decoder::unit_masks again;
        again.layers = {0, 1, 1};
        again.heads = {{}, {}, {0, 1}};  // layer 2 holds original heads 1, 2: original 2 stays
        const decoder::weights twice = decoder::compact(back, again);
        CHECK(twice.cfg.source["pruned_heads"] == io::json::parse(R"({"1": [0, 1, 3]})"));
        CHECK(twice.cfg.source["n_layer"] == 2);
        const io::json j = round_trip(twice, "gpt2_twice");
        CHECK(j["n_inner"] == io::json({20, 0}));
    }
}

TEST_CASE("Bad masks are refused before anything is built", "[decoder][compact]") {
    const decoder::weights w = llama_model(false, false);
    decoder::unit_masks m;
    m.heads = {{}, {}};
    CHECK_THROWS_AS(decoder::compact(w, m), shape_error);
    CHECK_THROWS_WITH(decoder::compact(w, m), "compact: heads has 2 rows (expected 3, one per layer)");
    m.heads = {{}, {1, 1, 1}, {}};
    CHECK_THROWS_WITH(decoder::compact(w, m), "compact: heads[1] has 3 entries (expected 8, the query heads of layer 1)");
    m = {};
    m.channels = {{}, {}, std::vector<float>(21, 1.0f)};
    CHECK_THROWS_WITH(decoder::compact(w, m), "compact: channels[2] has 21 entries (expected 20, the MLP channels of layer 2)");
    m = {};
    m.mlps = {1, 1};
    CHECK_THROWS_WITH(decoder::compact(w, m), "compact: mlps has 2 entries (expected 3, one per layer)");
    m = {};
    m.kv_groups = {{1, 0.5f}, {}, {}};
    CHECK_THROWS_AS(decoder::compact(w, m), value_error);
    CHECK_THROWS_WITH(decoder::compact(w, m), "compact: kv_groups[0][1] = 0.5 (expected 0 = remove or 1 = keep)");
    m = {};
    m.heads = {{}, {1, 1, 1, 0, 1, 1, 0, 0}, {}};
    CHECK_THROWS_AS(decoder::compact(w, m), value_error);
    CHECK_THROWS_WITH(decoder::compact(w, m),
                      "compact: layer 1 would keep 3 query heads in K/V group 0 and 2 in group 1 (every group must keep the "
                      "same number: the forward pass and config.json assume uniform groups)");
    m = {};
    m.layers = {0, 0, 0};
    CHECK_THROWS_WITH(decoder::compact(w, m), "compact: the layers mask removes every layer (expected at least one kept)");
}

TEST_CASE("Per-layer configs that are refused", "[decoder][compact]") {
    const std::string base = R"("model_type": "llama", "hidden_size": 24, "num_hidden_layers": 2, "vocab_size": 40)";
    auto parse = [&](const std::string& rest) { return decoder::config_from_json(io::parse_json("{" + base + rest + "}", "config.json")); };
    CHECK(parse(R"(, "num_attention_heads": [4, 2], "num_key_value_heads": [2, 1], "head_dim": 6, "intermediate_size": [8, 0])").layer_ffn ==
          std::vector<int>{8, 0});
    CHECK_THROWS_WITH(parse(R"(, "num_attention_heads": [4, 2, 2], "head_dim": 6, "intermediate_size": 8)"),
                      "config.json: \"num_attention_heads\" lists 3 layers (expected 2, the number of layers)");
    CHECK_THROWS_WITH(parse(R"(, "num_attention_heads": [4, 2], "intermediate_size": 8)"),
                      "config.json: per-layer num_attention_heads need a head_dim key");
    CHECK_THROWS_WITH(parse(R"(, "num_attention_heads": [4, 3], "num_key_value_heads": 2, "head_dim": 6, "intermediate_size": 8)"),
                      "config.json: layer 1: 3 query heads are not a multiple of its 2 K/V heads (grouped-query attention needs whole groups)");
    CHECK_THROWS_WITH(parse(R"(, "num_attention_heads": 4, "intermediate_size": [8, -1])"),
                      "config.json: \"intermediate_size\"[1] = -1 (expected a width >= 0)");
    const std::string g = R"({"model_type": "gpt2", "n_embd": 24, "n_head": 4, "n_layer": 2, "vocab_size": 40, "pruned_heads": )";
    CHECK_THROWS_WITH(decoder::config_from_json(io::parse_json(g + R"({"2": [0]}})", "config.json")),
                      "config.json: pruned_heads key \"2\" is not a layer index (expected 0..1)");
    CHECK_THROWS_WITH(decoder::config_from_json(io::parse_json(g + R"({"0": [4]}})", "config.json")),
                      "config.json: pruned_heads[\"0\"] holds head 4 (expected distinct heads 0..3)");
}

/// Saves the compacted model c, runs tests/decoder/compact_oracle.py on it and returns the worst
/// logit difference (relative to max(1, |x|)) from our forward pass of c.
double torch_difference(const decoder::weights& c, const std::string& name) {
    const fs::path d = temp(name);
    decoder::save_model(c, d);
    const std::vector<std::int32_t> ids{3, 17, 5, 39, 0, 22, 8, 1, 9, 30};
    std::ofstream(d.string() + ".ids.json") << nlohmann::json(ids).dump();
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/decoder/compact_oracle.py " +
                                d.string() + " " + d.string() + ".ids.json " + d.string() + ".out.json";
    REQUIRE(std::system(command.c_str()) == 0);
    std::ifstream in(d.string() + ".out.json");
    const auto want = nlohmann::json::parse(in)["logits"].get<std::vector<double>>();
    decoder::sequences seq;
    seq.add(ids);
    decoder::workspace ws(2);
    (void)decoder::forward(c, seq, ws);
    REQUIRE(ws.logits().size() == want.size());
    double e = 0.0;
    for (std::size_t i = 0; i < want.size(); ++i) e = std::max(e, std::abs(ws.logits()[i] - want[i]) / std::max(1.0, std::abs(want[i])));
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("%-40s compacted vs torch oracle: %.3g\n", name.c_str(), e);
    return e;
}

TEST_CASE("Uniformly compacted models, saved, run the same in PyTorch reading Hugging Face's keys", "[decoder][compact][torch]") {
    const decoder::weights w = llama_model(false, true);
    decoder::unit_masks m;
    m.heads.assign(3, {0, 1, 0, 0, 0, 0, 1, 0});  // 2 heads: hidden / heads = 12, not head_dim 6
    m.channels.assign(3, std::vector<float>(20, 1.0f));
    for (auto& row : m.channels) row[0] = row[19] = row[4] = 0.0f;
    m.layers = {1, 0, 1};
    CHECK(torch_difference(decoder::compact(w, m), "llama_torch") <= 1e-4);

    decoder::unit_masks g;  // GPT-2: different heads per layer (pruned_heads), the same MLP width
    g.heads = {{1, 0, 1, 1}, {1, 1, 1, 1}, {0, 1, 1, 0}};
    g.channels.assign(3, std::vector<float>(20, 1.0f));
    for (auto& row : g.channels) row[2] = row[3] = row[11] = 0.0f;
    g.layers = {1, 0, 1};
    const decoder::weights c = decoder::compact(gpt2_model(), g);
    CHECK(c.cfg.source["pruned_heads"] == io::json::parse(R"({"0": [1], "1": [0, 3]})"));
    CHECK(torch_difference(c, "gpt2_torch") <= 1e-4);
}
