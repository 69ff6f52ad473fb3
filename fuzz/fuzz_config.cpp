// libFuzzer target: a Hugging Face config.json read by prune::bert::parse_config (what
// read_config runs on the file's bytes: JSON with a nesting limit, then config::from_json,
// which validates).
// Properties: a config that is accepted is consistent (validate() passes, every layer's
// head and feed-forward counts agree with pruned_heads / pruned_mlps), and writing it back
// with to_json() and reading that again gives the same config.
#include <prune/models/bert/config.hpp>

#include <cstdlib>
#include <string_view>

namespace {
void check_layers(const prune::bert::config& c) {
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        const int heads = c.heads_in_layer(l);
        if (heads < 0 || heads > c.num_attention_heads || static_cast<int>(c.kept_heads(l).size()) != heads) {
            std::abort();
        }
        if (c.ffn_in_layer(l) != (c.has_mlp(l) ? c.intermediate_size : 0)) {
            std::abort();
        }
    }
    if (c.head_size() * c.num_attention_heads != c.hidden_size) {
        std::abort();
    }
}

bool same(const prune::bert::config& a, const prune::bert::config& b) {
    return a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size && a.num_hidden_layers == b.num_hidden_layers &&
           a.num_attention_heads == b.num_attention_heads && a.intermediate_size == b.intermediate_size &&
           a.max_position_embeddings == b.max_position_embeddings && a.type_vocab_size == b.type_vocab_size &&
           a.layer_norm_eps == b.layer_norm_eps && a.num_labels == b.num_labels && a.hidden_act == b.hidden_act &&
           a.pruned_heads == b.pruned_heads && a.pruned_mlps == b.pruned_mlps;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using prune::bert::config;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    config c;
    try {
        c = prune::bert::parse_config(text, "fuzz/config.json");
    } catch (const prune::error&) {
        return 0;
    }
    // Accepted: it must be consistent, and what prune writes back must read back the same
    // (any exception from here on is a finding).
    c.validate("fuzz");
    check_layers(c);
    const std::string written = c.to_json().dump(2);
    const config again = prune::bert::parse_config(written, "again");
    if (!same(c, again)) {
        std::abort();
    }
    return 0;
}
