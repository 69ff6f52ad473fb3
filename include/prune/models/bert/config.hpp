// prune/models/bert/config.hpp: the shape of a BERT model, read from and written to Hugging
// Face's config.json, with the tiny / mini / base presets used by tests and benchmarks.
//
// Keys read: hidden_size, num_attention_heads, num_hidden_layers, intermediate_size,
// max_position_embeddings, type_vocab_size, vocab_size, layer_norm_eps, hidden_act
// ("gelu", the erf form, or its alias "gelu_python"), num_labels or id2label, and the
// structure left by physical pruning:
//   "pruned_heads": {"3": [0, 5], ...}   Hugging Face's key: original head indices removed per layer
//   "pruned_mlps":  [2, 7]               this library's key: layers whose feed-forward block
//                                        (intermediate + output dense, biases included) is removed
// Every other key is kept verbatim in `extra` and written back on save.
#pragma once

#include <prune/error.hpp>
#include <prune/io/json.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace prune::bert {

/// The hyper-parameters of a BERT encoder with a sequence-classification head.
struct config {
    int vocab_size = 30522;               ///< rows of the word-embedding table
    int hidden_size = 768;                ///< model width
    int num_hidden_layers = 12;           ///< encoder layers
    int num_attention_heads = 12;         ///< heads per layer before pruning
    int intermediate_size = 3072;         ///< feed-forward width before pruning
    int max_position_embeddings = 512;    ///< longest sequence
    int type_vocab_size = 2;              ///< token-type (segment) ids
    float layer_norm_eps = 1e-12f;        ///< LayerNorm epsilon
    int num_labels = 2;                   ///< classifier outputs; 1 means regression
    std::string hidden_act = "gelu";      ///< activation (only the erf GELU is supported)
    /// pruned_heads[l] = sorted original indices of the heads removed from layer l.
    std::vector<std::vector<int>> pruned_heads;
    /// pruned_mlps[l] = true when layer l's feed-forward block is removed.
    std::vector<bool> pruned_mlps;
    /// Every other config.json key, written back unchanged on save.
    nlohmann::json extra = nlohmann::json::object();

    /// Width of one attention head.
    [[nodiscard]] int head_size() const { return hidden_size / num_attention_heads; }
    /// Heads remaining in layer l after pruned_heads.
    [[nodiscard]] int heads_in_layer(int l) const {
        return num_attention_heads - static_cast<int>(pruned_heads.empty() ? 0 : pruned_heads.at(static_cast<std::size_t>(l)).size());
    }
    /// Original indices of the heads remaining in layer l, in order.
    [[nodiscard]] std::vector<int> kept_heads(int l) const {
        std::vector<int> kept;
        for (int h = 0; h < num_attention_heads; ++h) {
            if (pruned_heads.empty() ||
                !std::binary_search(pruned_heads[static_cast<std::size_t>(l)].begin(),
                                    pruned_heads[static_cast<std::size_t>(l)].end(), h)) {
                kept.push_back(h);
            }
        }
        return kept;
    }
    /// True when layer l still has its feed-forward block.
    [[nodiscard]] bool has_mlp(int l) const {
        return pruned_mlps.empty() || !pruned_mlps.at(static_cast<std::size_t>(l));
    }
    /// Feed-forward width of layer l (0 when its MLP is pruned).
    [[nodiscard]] int ffn_in_layer(int l) const { return has_mlp(l) ? intermediate_size : 0; }

    /// Throws format_error (naming `where`) when the values are inconsistent.
    void validate(const std::string& where = "config") const {
        auto fail = [&](const std::string& what) { throw format_error(where + ": " + what); };
        auto positive = [&](int v, const char* name) {
            if (v <= 0) {
                fail(std::string(name) + " = " + std::to_string(v) + " (expected > 0)");
            }
        };
        positive(vocab_size, "vocab_size");
        positive(hidden_size, "hidden_size");
        positive(num_hidden_layers, "num_hidden_layers");
        positive(num_attention_heads, "num_attention_heads");
        positive(intermediate_size, "intermediate_size");
        positive(max_position_embeddings, "max_position_embeddings");
        positive(type_vocab_size, "type_vocab_size");
        positive(num_labels, "num_labels");
        if (hidden_size % num_attention_heads != 0) {
            fail("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
                 std::to_string(num_attention_heads));
        }
        if (!(layer_norm_eps > 0.0f) || !std::isfinite(layer_norm_eps)) {  // 1e39 reads as inf: not savable
            fail("layer_norm_eps = " + number_text(layer_norm_eps) + " (expected a finite number > 0 as a float)");
        }
        if (hidden_act != "gelu" && hidden_act != "gelu_python") {
            fail("hidden_act \"" + hidden_act + "\" is not supported (expected \"gelu\", the erf form)");
        }
        if (!pruned_heads.empty() && pruned_heads.size() != static_cast<std::size_t>(num_hidden_layers)) {
            fail("pruned_heads has " + std::to_string(pruned_heads.size()) + " layers (expected " +
                 std::to_string(num_hidden_layers) + ")");
        }
        for (std::size_t l = 0; l < pruned_heads.size(); ++l) {
            const auto& row = pruned_heads[l];
            for (std::size_t i = 0; i < row.size(); ++i) {
                if (row[i] < 0 || row[i] >= num_attention_heads || (i > 0 && row[i] <= row[i - 1])) {
                    fail("pruned_heads of layer " + std::to_string(l) +
                         " must be distinct head indices in [0, " + std::to_string(num_attention_heads) + ")");
                }
            }
        }
        if (!pruned_mlps.empty() && pruned_mlps.size() != static_cast<std::size_t>(num_hidden_layers)) {
            fail("pruned_mlps covers " + std::to_string(pruned_mlps.size()) + " layers (expected " +
                 std::to_string(num_hidden_layers) + ")");
        }
    }

    /// Reads a config from parsed config.json; throws format_error naming `where` on bad keys.
    [[nodiscard]] static config from_json(const nlohmann::json& j, const std::string& where = "config.json") {
        if (!j.is_object()) {
            throw format_error(where + ": expected a JSON object");
        }
        config c;
        c.extra = j;
        auto take_int = [&](const char* key, int& out, bool required) {
            auto it = j.find(key);
            if (it == j.end()) {
                if (required) {
                    throw format_error(where + ": missing key \"" + key + "\"");
                }
                return;
            }
            if (!it->is_number_integer()) {
                throw format_error(where + ": \"" + key + "\" must be an integer, got " + it->dump());
            }
            const auto v = it->get<long long>();
            if (v < -(1LL << 31) || v > (1LL << 31) - 1) {
                throw format_error(where + ": \"" + key + "\" out of range: " + it->dump());
            }
            out = static_cast<int>(v);
            c.extra.erase(key);
        };
        take_int("hidden_size", c.hidden_size, true);
        take_int("num_attention_heads", c.num_attention_heads, true);
        take_int("num_hidden_layers", c.num_hidden_layers, true);
        take_int("intermediate_size", c.intermediate_size, true);
        take_int("vocab_size", c.vocab_size, true);
        take_int("max_position_embeddings", c.max_position_embeddings, false);
        take_int("type_vocab_size", c.type_vocab_size, false);
        if (auto it = j.find("layer_norm_eps"); it != j.end()) {
            if (!it->is_number()) {
                throw format_error(where + ": \"layer_norm_eps\" must be a number, got " + it->dump());
            }
            c.layer_norm_eps = it->get<float>();
            c.extra.erase("layer_norm_eps");
        }
        if (auto it = j.find("hidden_act"); it != j.end()) {
            if (!it->is_string()) {
                throw format_error(where + ": \"hidden_act\" must be a string, got " + it->dump());
            }
            c.hidden_act = it->get<std::string>();
            c.extra.erase("hidden_act");
        }
        if (auto it = j.find("position_embedding_type"); it != j.end() && *it != "absolute") {
            throw format_error(where + ": position_embedding_type " + it->dump() + " is not supported (expected \"absolute\")");
        }
        bool labels_set = false;
        if (j.contains("num_labels")) {
            take_int("num_labels", c.num_labels, true);
            labels_set = true;
        }
        if (auto it = j.find("id2label"); it != j.end()) {
            if (!it->is_object() || it->empty()) {
                throw format_error(where + ": \"id2label\" must be a non-empty object");
            }
            if (labels_set && static_cast<int>(it->size()) != c.num_labels) {
                throw format_error(where + ": num_labels " + std::to_string(c.num_labels) + " disagrees with id2label's " +
                                   std::to_string(it->size()) + " entries");
            }
            c.num_labels = static_cast<int>(it->size());
        }
        if (c.num_hidden_layers <= 0 || c.num_hidden_layers > 4096) {
            throw format_error(where + ": num_hidden_layers = " + std::to_string(c.num_hidden_layers) +
                               " (expected 1..4096)");
        }
        if (auto it = j.find("pruned_heads"); it != j.end()) {
            if (!it->is_object()) {
                throw format_error(where + ": \"pruned_heads\" must be an object {\"layer\": [heads]}");
            }
            c.pruned_heads.assign(static_cast<std::size_t>(c.num_hidden_layers), {});
            for (const auto& [key, heads] : it->items()) {
                std::size_t used = 0;
                int layer = -1;
                try {
                    layer = std::stoi(key, &used);
                } catch (const std::exception&) {
                    used = 0;
                }
                if (used != key.size() || layer < 0 || layer >= c.num_hidden_layers) {
                    throw format_error(where + ": pruned_heads key \"" + key + "\" is not a layer index in [0, " +
                                       std::to_string(c.num_hidden_layers) + ")");
                }
                if (!heads.is_array()) {
                    throw format_error(where + ": pruned_heads[\"" + key + "\"] must be an array of head indices");
                }
                auto& row = c.pruned_heads[static_cast<std::size_t>(layer)];
                for (const auto& h : heads) {
                    if (!h.is_number_integer()) {
                        throw format_error(where + ": pruned_heads[\"" + key + "\"] holds " + h.dump() +
                                           " (expected head indices)");
                    }
                    const auto v = h.get<long long>();
                    row.push_back(v < 0 || v > (1 << 30) ? -1 : static_cast<int>(v));
                }
                std::sort(row.begin(), row.end());
                row.erase(std::unique(row.begin(), row.end()), row.end());
            }
            c.extra.erase("pruned_heads");
        }
        if (auto it = j.find("pruned_mlps"); it != j.end()) {
            if (!it->is_array()) {
                throw format_error(where + ": \"pruned_mlps\" must be an array of layer indices");
            }
            c.pruned_mlps.assign(static_cast<std::size_t>(c.num_hidden_layers), false);
            for (const auto& v : *it) {
                if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() >= c.num_hidden_layers) {
                    throw format_error(where + ": pruned_mlps holds " + v.dump() + " (expected layer indices in [0, " +
                                       std::to_string(c.num_hidden_layers) + "))");
                }
                c.pruned_mlps[static_cast<std::size_t>(v.get<long long>())] = true;
            }
            c.extra.erase("pruned_mlps");
        }
        // Normalise: "no pruning" is the empty vector, however the file spelled it.
        if (std::all_of(c.pruned_heads.begin(), c.pruned_heads.end(), [](const auto& r) { return r.empty(); })) {
            c.pruned_heads.clear();
        }
        if (std::none_of(c.pruned_mlps.begin(), c.pruned_mlps.end(), [](bool b) { return b; })) {
            c.pruned_mlps.clear();
        }
        c.validate(where);
        return c;
    }

    /// The config as config.json content (HF keys, pruned_heads, pruned_mlps, then `extra`).
    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json j = extra.is_object() ? extra : nlohmann::json::object();
        j["hidden_size"] = hidden_size;
        j["num_attention_heads"] = num_attention_heads;
        j["num_hidden_layers"] = num_hidden_layers;
        j["intermediate_size"] = intermediate_size;
        j["vocab_size"] = vocab_size;
        j["max_position_embeddings"] = max_position_embeddings;
        j["type_vocab_size"] = type_vocab_size;
        j["layer_norm_eps"] = layer_norm_eps;
        j["hidden_act"] = hidden_act;
        j["num_labels"] = num_labels;
        if (!j.contains("model_type")) {
            j["model_type"] = "bert";
        }
        if (!j.contains("architectures")) {
            j["architectures"] = {"BertForSequenceClassification"};
        }
        if (j.contains("id2label") && static_cast<int>(j["id2label"].size()) != num_labels) {
            j.erase("id2label");
            j.erase("label2id");
        }
        if (!j.contains("id2label")) {
            nlohmann::json id2label = nlohmann::json::object();
            nlohmann::json label2id = nlohmann::json::object();
            for (int i = 0; i < num_labels; ++i) {
                id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
                label2id["LABEL_" + std::to_string(i)] = i;
            }
            j["id2label"] = id2label;
            j["label2id"] = label2id;
        }
        nlohmann::json heads = nlohmann::json::object();
        for (std::size_t l = 0; l < pruned_heads.size(); ++l) {
            if (!pruned_heads[l].empty()) {
                heads[std::to_string(l)] = pruned_heads[l];
            }
        }
        j["pruned_heads"] = heads;
        nlohmann::json mlps = nlohmann::json::array();
        for (std::size_t l = 0; l < pruned_mlps.size(); ++l) {
            if (pruned_mlps[l]) {
                mlps.push_back(l);
            }
        }
        j["pruned_mlps"] = mlps;
        return j;
    }

    /// A small model for tests: 2 layers x 128 hidden x 2 heads x 512 feed-forward.
    [[nodiscard]] static config tiny(int vocab = 30522, int labels = 2) {
        return make(2, 128, 2, 512, vocab, labels);
    }
    /// BERT-mini: 4 layers x 256 hidden x 4 heads x 1024 feed-forward.
    [[nodiscard]] static config mini(int vocab = 30522, int labels = 2) {
        return make(4, 256, 4, 1024, vocab, labels);
    }
    /// BERT-base: 12 layers x 768 hidden x 12 heads x 3072 feed-forward.
    [[nodiscard]] static config base(int vocab = 30522, int labels = 2) {
        return make(12, 768, 12, 3072, vocab, labels);
    }
    /// A config with the given dimensions (and the HF defaults for the rest).
    [[nodiscard]] static config make(int layers, int hidden, int heads, int intermediate, int vocab = 30522,
                                     int labels = 2) {
        config c;
        c.num_hidden_layers = layers;
        c.hidden_size = hidden;
        c.num_attention_heads = heads;
        c.intermediate_size = intermediate;
        c.vocab_size = vocab;
        c.num_labels = labels;
        c.validate("config::make");
        return c;
    }
};

/// Parses and validates config.json text with the library's JSON reader (io::parse_json_as):
/// format_error naming `where` on invalid JSON, a duplicate key, arrays/objects nested deeper
/// than 64 (deeper ones would overflow the stack when copied; found running fuzz/fuzz_config on a
/// crafted input) and on bad keys.
[[nodiscard]] inline config parse_config(std::string_view text, const std::string& where) {
    return config::from_json(io::parse_json_as<io::sorted_json>(text, where), where);
}

/// Reads and validates a config.json file; throws io_error / format_error naming the path.
[[nodiscard]] inline config read_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw io_error("cannot open " + path);
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
        throw io_error("error while reading " + path);
    }
    return parse_config(text, path);
}

}  // namespace prune::bert
