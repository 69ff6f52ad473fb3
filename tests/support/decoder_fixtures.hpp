// tests/support/decoder_fixtures.hpp: causal-LM fixtures shared by the decoder and sparsify
// tests: small models and packed batches, and the 12-layer Llama of the peak-RSS tests with its data.
#pragma once

#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace prune_test {

/// `count` batches of 2 sequences of lengths 3 + (5 i + 2 j) % 11, token ids mod vocab.
inline std::vector<prune::decoder::sequences> small_batches(int count, int vocab) {
    std::vector<prune::decoder::sequences> out(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        for (int j = 0; j < 2; ++j) {
            std::vector<std::int32_t> row;
            for (int t = 0; t < 3 + (5 * i + 2 * j) % 11; ++t) row.push_back((13 * i + 7 * t + 3 * j + 1) % vocab);
            out[static_cast<std::size_t>(i)].add(row);
        }
    }
    return out;
}

/// A small Llama: hidden 32, 3 layers of 4 query heads over 2 K/V heads (grouped-query
/// attention), FFN 48, vocab 50, 16 positions, lm_head untied.
inline prune::decoder::config small_llama() {
    return prune::decoder::config_from_json(prune::io::parse_json(
        R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 3, "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 16,
            "tie_word_embeddings": false})", "llama"));
}

/// A small GPT-2: n_embd 32, 3 layers of 4 heads, 16 positions, vocab 40 (embeddings tied).
inline prune::decoder::config small_gpt2() {
    return prune::decoder::config_from_json(prune::io::parse_json(
        R"({"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 3, "n_positions": 16, "vocab_size": 40})", "gpt2"));
}

/// Writes dir/lm, a random 12-layer Llama (hidden 512, 8 heads, 4 K/V heads, FFN 1536, vocab
/// 1000, untied) in F16 -- 155 MB as float32, one layer 12.6 MB of it -- and dir/`data`, 8 rows
/// of 32 token ids; returns the model's float32 size in bytes.
inline double write_twelve_layer_llama(const std::filesystem::path& dir, const std::string& data) {
    namespace dec = prune::decoder;
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(
        R"({"model_type": "llama", "hidden_size": 512, "num_attention_heads": 8, "num_key_value_heads": 4,
            "num_hidden_layers": 12, "intermediate_size": 1536, "vocab_size": 1000, "max_position_embeddings": 64,
            "tie_word_embeddings": false})", "cfg"));
    dec::save_model(dec::random_weights(cfg, 3), dir / "lm", prune::io::dtype::F16);
    std::ofstream rows(dir / data);
    for (int i = 0; i < 8; ++i) {
        nlohmann::json ids = nlohmann::json::array();
        for (int t = 0; t < 32; ++t) ids.push_back((37 * i + 11 * t) % 1000);
        rows << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
    }
    return 4.0 * dec::parameter_count(cfg);
}

}  // namespace prune_test
