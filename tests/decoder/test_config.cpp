// Decoder configs, checkpoints and batches that must be refused, each with a message that
// names what was wrong: unknown model_type, a GQA ratio that does not divide, RoPE scalings we
// cannot compute, a missing or misshaped tensor (named), tokens out of the vocabulary,
// sequences longer than max_position_embeddings, empty batches; and what must be accepted
// (defaults, head_dim, GPT-2's n_inner / n_ctx, element masks in the checkpoint's layout).
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <fstream>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace prune;
using Catch::Matchers::Contains;

namespace {

decoder::config parse(const std::string& text) { return decoder::config_from_json(io::parse_json(text, "config.json")); }

const std::string llama_base =
    R"("model_type": "llama", "hidden_size": 16, "num_attention_heads": 4, "num_hidden_layers": 1,
       "intermediate_size": 24, "vocab_size": 20, "max_position_embeddings": 8)";

fs::path temp(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("prune_decoder_config_" + std::to_string(::getpid())) / name;
    fs::remove_all(d);
    fs::create_directories(d.parent_path());
    return d;
}

}  // namespace

TEST_CASE("Llama config: defaults and keys", "[decoder][config]") {
    const decoder::config c = parse("{" + llama_base + "}");
    CHECK(c.is_llama());
    CHECK(c.num_key_value_heads == 4);
    CHECK(c.head_dim == 4);
    CHECK(c.norm_eps == Approx(1e-6f));
    CHECK(!c.tie_word_embeddings);
    const decoder::config d = parse("{" + llama_base + R"(, "num_key_value_heads": 2, "head_dim": 6, "tie_word_embeddings": true,
        "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
                         "original_max_position_embeddings": 8192}})");
    CHECK(d.group_size() == 2);
    CHECK(d.head_dim == 6);
    CHECK(d.rope.type == decoder::rope_scaling_type::llama3);
}

TEST_CASE("Decoder configs that are refused", "[decoder][config]") {
    CHECK_THROWS_WITH(parse(R"({"model_type": "bert", "hidden_size": 4})"), Contains("unknown model_type \"bert\""));
    CHECK_THROWS_WITH(parse(R"({"hidden_size": 4})"), Contains("missing key \"model_type\""));
    CHECK_THROWS_WITH(parse("{" + llama_base + R"(, "num_key_value_heads": 3})"),
                      Contains("num_attention_heads 4 is not a multiple of num_key_value_heads 3"));
    CHECK_THROWS_WITH(parse("{" + llama_base + R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4}})"),
                      Contains("type \"yarn\" is not supported"));
    CHECK_THROWS_WITH(parse("{" + llama_base + R"(, "rope_scaling": {"type": "dynamic", "factor": 4}})"),
                      Contains("type \"dynamic\" is not supported"));
    CHECK_THROWS_WITH(parse("{" + llama_base + R"(, "head_dim": 5})"), Contains("rotary embeddings need an even width"));
    CHECK_THROWS_WITH(parse("{" + llama_base + R"(, "hidden_act": "gelu"})"), Contains("hidden_act \"gelu\""));
    CHECK_THROWS_WITH(parse(R"({"model_type": "llama", "hidden_size": 16, "num_attention_heads": 4, "num_hidden_layers": 1,
                               "intermediate_size": 24})"),
                      Contains("missing key \"vocab_size\""));
    CHECK_THROWS_WITH(parse(R"({"model_type": "llama", "hidden_size": 18, "num_attention_heads": 4, "num_hidden_layers": 1,
                               "intermediate_size": 24, "vocab_size": 5})"),
                      Contains("no head_dim"));
    CHECK_THROWS_WITH(parse(R"({"model_type": "gpt2", "n_embd": 16, "n_head": 4, "n_layer": 1, "vocab_size": 9,
                               "activation_function": "relu"})"),
                      Contains("activation_function \"relu\""));
}

TEST_CASE("GPT-2 config: n_inner, n_ctx", "[decoder][config]") {
    const decoder::config c = parse(R"({"model_type": "gpt2", "n_embd": 16, "n_head": 4, "n_layer": 2, "vocab_size": 9,
                                        "n_ctx": 32, "n_inner": null})");
    CHECK(!c.is_llama());
    CHECK(c.intermediate_size == 64);
    CHECK(c.max_position_embeddings == 32);
    CHECK(c.tie_word_embeddings);
}

TEST_CASE("Checkpoints: missing and misshaped tensors are named", "[decoder][checkpoint]") {
    const decoder::config c = parse("{" + llama_base + R"(, "num_key_value_heads": 2})");
    const decoder::weights w = decoder::random_weights(c, 3);
    const fs::path dir = temp("model");
    decoder::save_model(w, dir);
    const io::checkpoint ckpt = io::checkpoint::open(dir);
    auto rewrite = [&](const std::string& drop, const std::string& reshape) {
        io::safetensors_writer out;
        for (const auto& t : ckpt.tensors()) {
            if (t.name == drop) continue;
            std::vector<std::size_t> shape = t.shape;
            if (t.name == reshape) std::swap(shape[0], shape[1]);
            out.add(t.name, t.type, shape, ckpt.bytes(t.name));
        }
        const fs::path bad = temp("bad");
        fs::create_directories(bad);
        fs::copy_file(dir / "config.json", bad / "config.json");
        out.write(bad / "model.safetensors");
        return bad;
    };
    CHECK_THROWS_WITH(decoder::load_model(rewrite("model.layers.0.self_attn.k_proj.weight", "")),
                      Contains("missing tensor 'model.layers.0.self_attn.k_proj.weight' (expected shape [8, 16])"));
    CHECK_THROWS_WITH(decoder::load_model(rewrite("", "model.layers.0.mlp.down_proj.weight")),
                      Contains("tensor 'model.layers.0.mlp.down_proj.weight' has shape [24, 16], expected [16, 24]"));
    CHECK_THROWS_WITH(decoder::load_model(rewrite("lm_head.weight", "")), Contains("missing tensor 'lm_head.weight'"));
    // A config.json describing far more weights than the file holds is refused before the
    // weights are allocated: 12800001968 = 2 x 4e8 x 16 (embed_tokens and lm_head) + 16 (final
    // norm) + 1952 (the layer: norms 32, q/k/v 512, o 256, gate/up 768, down 384), 51 GB of floats.
    const fs::path huge = rewrite("", "");
    std::ofstream(huge / "config.json") << "{" + llama_base.substr(0, llama_base.find("\"vocab_size\"")) +
                                                R"("vocab_size": 400000000, "max_position_embeddings": 8, "num_key_value_heads": 2})";
    CHECK_THROWS_WITH(decoder::load_model(huge), Contains("config.json describes 12800001968 weights, more than twice the ") &&
                                                     Contains(" the checkpoint holds (expected the config.json saved with these weights)"));
    fs::remove_all(dir.parent_path());
}

// parameter_count (checked against the checkpoint before allocating) is the number of elements
// allocate() holds, counted over the allocated tensors, for Llama (GQA, biases, tied or not,
// head_dim) and GPT-2.
TEST_CASE("parameter_count equals the elements of the allocated weights", "[decoder][checkpoint]") {
    for (const std::string extra : {R"(, "num_key_value_heads": 2})", R"(, "num_key_value_heads": 1, "head_dim": 6, "tie_word_embeddings": true})",
                                    R"(, "attention_bias": true, "mlp_bias": true})"}) {
        INFO(extra);
        const decoder::config c = parse("{" + llama_base + extra);
        decoder::weights w = decoder::allocate(c);
        double n = 0.0;
        for (const auto& p : decoder::parameters(w)) n += static_cast<double>(p.size());
        CHECK(decoder::parameter_count(c) == n);
    }
    const decoder::config g = parse(R"({"model_type": "gpt2", "n_embd": 12, "n_head": 3, "n_layer": 2, "n_positions": 9, "vocab_size": 30})");
    decoder::weights w = decoder::allocate(g);
    double n = 0.0;
    for (const auto& p : decoder::parameters(w)) n += static_cast<double>(p.size());
    CHECK(decoder::parameter_count(g) == n);
}

TEST_CASE("Checkpoints holding NaN or infinities are never written", "[decoder][checkpoint]") {
    const decoder::config c = parse("{" + llama_base + "}");
    decoder::weights w = decoder::random_weights(c, 3);
    const fs::path dir = temp("nonfinite");
    auto set_first = [&](float value) {
        for (auto& p : decoder::parameters(w)) {
            if (p.name == "model.layers.0.mlp.down_proj.weight") p.data[0] = value;
        }
    };
    set_first(std::nanf(""));
    CHECK_THROWS_WITH(decoder::save_model(w, dir),
                      Contains("tensor 'model.layers.0.mlp.down_proj.weight' element 0 is NaN"));
    CHECK(!fs::exists(dir));
    set_first(-std::numeric_limits<float>::infinity());
    CHECK_THROWS_WITH(decoder::save_model(w, dir, io::dtype::BF16), Contains("element 0 is an infinity"));
    CHECK(!fs::exists(dir));
    // 1e5 is finite in float but above F16's largest finite value (65504; IEEE 754 binary16),
    // so F16 would store an infinity; BF16 (float's exponent range) keeps it finite.
    set_first(1e5f);
    CHECK_THROWS_WITH(decoder::save_model(w, dir, io::dtype::F16), Contains("element 0 is 1e+05, which overflows F16"));
    CHECK(!fs::exists(dir));
    decoder::save_model(w, dir, io::dtype::BF16);
    CHECK(fs::exists(dir / "model.safetensors"));
    fs::remove_all(dir.parent_path());
}

TEST_CASE("Batches: tokens out of range, too long, empty", "[decoder][batch]") {
    const decoder::config c = parse("{" + llama_base + "}");
    const decoder::weights w = decoder::random_weights(c, 1);
    decoder::workspace ws(1);
    decoder::sequences s;
    CHECK_THROWS_WITH(decoder::forward(w, s, ws), Contains("no sequences"));
    s.add(std::vector<std::int32_t>{1, 2, 20});
    CHECK_THROWS_WITH(decoder::forward(w, s, ws), Contains("sequence 0 has token id 20 (expected 0..19"));
    decoder::sequences longer;
    longer.add(std::vector<std::int32_t>(9, 1));
    CHECK_THROWS_WITH(decoder::forward(w, longer, ws), Contains("has 9 tokens, more than max_position_embeddings 8"));
    decoder::sequences empty;
    empty.add(std::vector<std::int32_t>{});
    CHECK_THROWS_WITH(decoder::forward(w, empty, ws), Contains("sequence 0 is empty"));
    decoder::gates g;
    g.heads = {{1.0f, 1.0f}};
    decoder::sequences ok;
    ok.add(std::vector<std::int32_t>{1, 2});
    decoder::forward_options o;
    o.gate = &g;
    CHECK_THROWS_WITH(decoder::forward(w, ok, ws, o), Contains("layer 0 has 2 head gates, the model 4"));
}

TEST_CASE("Element masks: GPT-2 Conv1D masks are in the checkpoint's [in, out] layout", "[decoder][masks]") {
    const decoder::config c = parse(R"({"model_type": "gpt2", "n_embd": 4, "n_head": 2, "n_layer": 1, "vocab_size": 9,
                                        "n_positions": 8})");
    decoder::weights w = decoder::random_weights(c, 5);
    const float before = w.layers[0].up[2 * 4 + 1];  // c_fc in memory [out 16, in 4]: out 2, in 1
    io::element_masks masks;
    element_mask m(prune::shape({4, 16}));
    m.set(1 * 16 + 2, false);  // file layout [in 4, out 16]: in 1, out 2
    masks["transformer.h.0.mlp.c_fc.weight"] = m;
    decoder::apply_element_masks(w, masks);
    CHECK(before != 0.0f);
    CHECK(w.layers[0].up[2 * 4 + 1] == 0.0f);
    io::element_masks wrong;
    wrong["transformer.h.0.mlp.c_fc.weight"] = element_mask(prune::shape({16, 4}));
    CHECK_THROWS_WITH(decoder::apply_element_masks(w, wrong), Contains("has shape [16, 4], the parameter [4, 16]"));
    io::element_masks unknown;
    unknown["h.0.mlp.c_fc.weight"] = element_mask(prune::shape({4, 16}));
    CHECK_THROWS_WITH(decoder::apply_element_masks(w, unknown), Contains("names no parameter"));
}
