// Tests for prune/io/gguf_convert.hpp: tiny Hugging Face Llama (F32 with biases, F16, BF16,
// a physically pruned one with per-layer widths) and GPT-2 (with and without the
// "transformer." prefix) checkpoints written by PyTorch (tests/io/gguf_convert_reference.py)
// convert to the GGUF tensors that script computes independently as convert_hf_to_gguf.py
// does (names, ne, types, bytes, the q/k permutation whose rotary equivalence it checks),
// @huggingface/gguf parses the converted files, and GGUF -> Hugging Face gives back every
// original tensor bit for bit. Per-layer metadata arrays, block removal and the name maps.
#include <prune/io/gguf_convert.hpp>

#include "gguf_support.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cstring>

using namespace prune;
using namespace prune::io;

using prune_test::hex;
using prune_test::temp_dir;

namespace {

/// The PyTorch reference checkpoints and expectations, generated once per process.
const temp_dir& reference_models() {
    static const temp_dir dir;
    static const bool written = [] {
        prune_test::run_python("io/gguf_convert_reference.py write " + dir.path().string());
        return true;
    }();
    (void)written;
    return dir;
}

/// Checks a converted GGUF file against the reference's {name: {ne, type, hex}}.
void check_converted(const gguf_file& file, const nlohmann::json& expected) {
    REQUIRE(file.tensors().size() == expected.size());
    for (const auto& [name, e] : expected.items()) {
        INFO("tensor " << name);
        REQUIRE(file.contains(name));
        const gguf_tensor_info& t = file.info(name);
        CHECK(t.ne == e["ne"].get<std::vector<std::uint64_t>>());
        CHECK(static_cast<std::uint32_t>(t.type) == e["type"].get<std::uint32_t>());
        CHECK(hex(file.bytes(name)) == e["hex"].get<std::string>());
    }
}

}  // namespace

TEST_CASE("Hugging Face -> GGUF gives what convert_hf_to_gguf.py gives, and back bit for bit") {
    const temp_dir& ref = reference_models();
    const nlohmann::json expected = prune_test::read_json(ref / "expected.json");
    // the permutation is what makes ggml's adjacent-pair rotary equal Hugging Face's rotate_half
    CHECK(expected["rope_max_abs_diff"].get<double>() < 1e-10);
    CHECK(expected["rope_max_abs_diff_unpermuted"].get<double>() > 1.0);
    temp_dir out;
    for (const char* model : {"llama-f32", "llama-f16", "llama-bf16", "llama-pruned", "gpt2", "gpt2-noprefix"}) {
        INFO("model " << model);
        const std::filesystem::path gguf_path = out / (std::string(model) + ".gguf");
        convert_hf_to_gguf(ref / model, gguf_path);
        const gguf_file file = gguf_file::open(gguf_path);
        check_converted(file, expected[model]);
        const bool llama = std::string(model).starts_with("llama");
        const std::string a = llama ? "llama" : "gpt2";
        CHECK(file.get("general.architecture").as_string() == a);
        CHECK(file.get(a + ".block_count").as_count() == 2);
        CHECK(file.get(a + ".context_length").as_count() == (llama ? 64u : 16u));
        CHECK(file.get(a + ".embedding_length").as_count() == (llama ? 16u : 8u));
        if (std::string(model) == "llama-pruned") {
            CHECK(file.get("llama.attention.head_count").as_integers() == std::vector<std::int64_t>{4, 2});
            CHECK(file.get("llama.attention.head_count_kv").as_integers() == std::vector<std::int64_t>{2, 1});
            CHECK(file.get("llama.feed_forward_length").as_integers() == std::vector<std::int64_t>{24, 8});
            CHECK(file.get("llama.attention.key_length").as<std::uint32_t>() == 4);
            CHECK(file.get("general.file_type").as<std::uint32_t>() == 32);  // mostly BF16
        } else if (llama) {
            CHECK(file.get("llama.attention.head_count").as<std::uint32_t>() == 4);
            CHECK(file.get("llama.attention.head_count_kv").as<std::uint32_t>() == 2);
            CHECK(file.get("llama.feed_forward_length").as<std::uint32_t>() == 24);
            CHECK(file.get("llama.rope.freq_base").as<float>() == 10000.0f);
            CHECK(file.get("llama.attention.layer_norm_rms_epsilon").as<float>() == 1e-5f);
            CHECK(file.get("llama.rope.dimension_count").as<std::uint32_t>() == 4);
            CHECK(file.find("llama.attention.key_length") == nullptr);  // 16 / 4 heads = 4
        } else {
            CHECK(file.get("gpt2.feed_forward_length").as<std::uint32_t>() == 32);  // n_inner null: 4 x n_embd
            CHECK(file.get("gpt2.attention.head_count").as<std::uint32_t>() == 2);
            CHECK(file.get("gpt2.attention.layer_norm_epsilon").as<float>() == 1e-5f);
        }
        // back to Hugging Face: every original tensor (less the dropped buffers) bit for bit
        const checkpoint original = checkpoint::open(ref / model);
        const dtype small = original.info(llama ? "model.norm.weight" : (std::string(model) == "gpt2" ? "transformer.ln_f.weight" : "ln_f.weight")).type;
        const std::filesystem::path back = out / (std::string(model) + "-back");
        convert_gguf_to_hf(gguf_path, back, *ggml_type_from(small));
        const checkpoint again = checkpoint::open(back);
        const json config = read_json_file(back / "config.json");
        const decoder_hparams hp = hparams_from_hf_config(config, "back");
        const decoder_hparams hp0 = hparams_from_hf_config(read_json_file(ref / model / "config.json"), "ref");
        CHECK(hp.n_head == hp0.n_head);
        CHECK(hp.n_head_kv == hp0.n_head_kv);
        CHECK(hp.n_ff == hp0.n_ff);
        CHECK(hp.head_dim == hp0.head_dim);
        std::size_t compared = 0;
        for (const tensor_info& t : original.tensors()) {
            const std::string name = std::string(model) == "gpt2-noprefix" ? "transformer." + t.name : t.name;
            if (t.name.ends_with("inv_freq") || t.name.ends_with(".attn.bias")) {
                CHECK_FALSE(again.contains(name));
                continue;
            }
            INFO("tensor " << t.name);
            REQUIRE(again.contains(name));
            CHECK(again.info(name).type == t.type);
            CHECK(again.info(name).shape == t.shape);
            CHECK(hex(again.bytes(name)) == hex(original.bytes(t.name)));
            ++compared;
        }
        CHECK(compared == again.tensors().size());
    }
}

TEST_CASE("@huggingface/gguf parses a converted model") {
    const temp_dir& ref = reference_models();
    temp_dir out;
    convert_hf_to_gguf(ref / "llama-pruned", out / "m.gguf");
    const gguf_file ours = gguf_file::open(out / "m.gguf");
    const nlohmann::json seen = prune_test::js_read_gguf(out / "m.gguf");
    CHECK(seen["tensor_data_offset"] == std::to_string(ours.data_offset()));
    REQUIRE(seen["tensors"].size() == ours.tensors().size());
    for (std::size_t i = 0; i < ours.tensors().size(); ++i) {
        const gguf_tensor_info& t = ours.tensors()[i];
        CHECK(seen["tensors"][i]["name"] == t.name);
        CHECK(seen["tensors"][i]["ne"].get<std::vector<std::uint64_t>>() == t.ne);
        CHECK(seen["tensors"][i]["hex"] == hex(ours.bytes(t.name)));
    }
    bool found = false;
    for (const auto& m : seen["metadata"]) {
        if (m["key"] == "llama.attention.head_count") {
            CHECK(m["type"] == 9);
            CHECK(m["sub_type"] == 5);  // i32, as gguf-py writes per-layer arrays and llama.cpp reads them
            CHECK(m["value"] == nlohmann::json::array({4, 2}));
            found = true;
        }
    }
    CHECK(found);
}

TEST_CASE("removing blocks renumbers the rest and slices the per-layer arrays") {
    decoder_hparams hp;
    hp.arch = decoder_arch::llama;
    hp.n_layer = 4;
    hp.n_ctx = 8;
    hp.n_embd = 4;
    hp.n_vocab = 3;
    hp.head_dim = 2;
    hp.n_head = {2, 1, 2, 2};
    hp.n_head_kv = {1, 1, 1, 1};
    hp.n_ff = {6, 6, 4, 2};
    gguf_writer w;
    put_gguf_metadata(w, hp, 0);
    w.set("tokenizer.ggml.model", gguf_value::string("llama"));
    std::vector<std::vector<float>> payloads;
    for (std::size_t b = 0; b < 4; ++b) {
        payloads.push_back(std::vector<float>(hp.n_ff[b] * 4, static_cast<float>(b)));
        w.add("blk." + std::to_string(b) + ".ffn_up.weight", tensor_view<const float>(std::span<const float>(payloads.back()), shape{hp.n_ff[b], 4}));
    }
    const std::vector<float> embd(12, 9.0f);
    w.add("token_embd.weight", tensor_view<const float>(std::span<const float>(embd), shape{3, 4}));
    const std::vector<std::byte> bytes = w.to_bytes();
    const gguf_file file = gguf_file::from_bytes(bytes, "four-blocks");
    gguf_model m = borrow_gguf_model(file);
    const std::vector<std::size_t> removed = {2, 0};
    remove_blocks(m, removed);
    temp_dir dir;
    write_gguf_model(m, dir / "two.gguf");
    const gguf_file two = gguf_file::open(dir / "two.gguf");
    CHECK(two.get("llama.block_count").as<std::uint32_t>() == 2);
    CHECK(two.get("llama.feed_forward_length").as_integers() == std::vector<std::int64_t>{6, 2});  // blocks 1 and 3
    CHECK(two.get("llama.attention.head_count").is_array());
    CHECK(two.get("llama.attention.head_count").as_integers() == std::vector<std::int64_t>{1, 2});
    CHECK(two.get("llama.attention.head_count_kv").as<std::uint32_t>() == 1);  // a scalar stays a scalar
    CHECK(two.get("tokenizer.ggml.model").as_string() == "llama");  // other metadata carried through
    REQUIRE(two.tensors().size() == 3);
    CHECK(two.to_float("blk.0.ffn_up.weight") == payloads[1]);
    CHECK(two.to_float("blk.1.ffn_up.weight") == payloads[3]);
    CHECK(two.to_float("token_embd.weight") == embd);
    const decoder_hparams back = hparams_from_gguf(two.metadata(), 3, "two");
    CHECK(back.n_layer == 2);
    CHECK(back.n_ff == std::vector<std::size_t>{6, 2});
    CHECK(back.head_dim == 2);
    // as llama-quantize --prune-layers renames imatrix entries
    const std::map<std::size_t, std::size_t> kept = surviving_blocks(4, removed);
    CHECK(renumber_block("blk.3.ffn_down.weight.in_sum2", kept) == "blk.1.ffn_down.weight.in_sum2");
    CHECK(!renumber_block("blk.2.attn_q.weight", kept).has_value());
    CHECK(renumber_block("output.weight", kept) == "output.weight");
    gguf_model again = borrow_gguf_model(file);
    const std::vector<std::size_t> twice = {1, 1};
    const std::vector<std::size_t> missing = {4};
    CHECK_THROWS_SAYS(remove_blocks(again, twice), value_error, "block 1 listed twice");
    CHECK_THROWS_SAYS(remove_blocks(again, missing), value_error, "block 4 does not exist (the model has 4 blocks)");
}

TEST_CASE("name maps and their errors") {
    CHECK(gguf_tensor_name(decoder_arch::llama, "model.layers.11.mlp.down_proj.weight") == "blk.11.ffn_down.weight");
    CHECK(gguf_tensor_name(decoder_arch::llama, "lm_head.weight") == "output.weight");
    CHECK(!gguf_tensor_name(decoder_arch::llama, "model.layers.0.self_attn.rotary_emb.inv_freq").has_value());
    CHECK(gguf_tensor_name(decoder_arch::gpt2, "h.3.attn.c_attn.bias") == "blk.3.attn_qkv.bias");
    CHECK(gguf_tensor_name(decoder_arch::gpt2, "transformer.wpe.weight") == "position_embd.weight");
    CHECK(hf_tensor_name(decoder_arch::gpt2, "blk.0.ffn_up.weight") == "transformer.h.0.mlp.c_fc.weight");
    CHECK(hf_tensor_name(decoder_arch::gpt2, "token_embd.weight", "") == "wte.weight");
    CHECK(hf_tensor_name(decoder_arch::llama, "blk.7.attn_output.weight") == "model.layers.7.self_attn.o_proj.weight");
    CHECK_THROWS_SAYS(gguf_tensor_name(decoder_arch::llama, "model.layers.0.mlp.experts.0.w1.weight"), format_error,
                      "'model.layers.0.mlp.experts.0.w1.weight' has no GGUF name for a llama model");
    CHECK_THROWS_SAYS(gguf_tensor_name(decoder_arch::llama, "model.layers.01.mlp.up_proj.weight"), format_error, "no GGUF name");
    CHECK_THROWS_SAYS(hf_tensor_name(decoder_arch::gpt2, "blk.0.attn_q.weight"), format_error,
                      "GGUF tensor 'blk.0.attn_q.weight' has no Hugging Face name for a gpt2 model");
    tensor_blob odd{"blk.0.attn_q.weight", ggml_type::F32, {6, 2}, std::vector<std::byte>(48), {}};
    decoder_hparams hp;
    hp.n_layer = 1;
    hp.n_head = {2};
    hp.n_head_kv = {2};
    std::vector<tensor_blob> one;
    one.push_back(odd);
    CHECK_THROWS_SAYS(gguf_to_hf_tensors(hp, one), shape_error, "6 rows, which cannot be split into 2 heads of an even width");
    tensor_blob quant{"blk.0.attn_k.weight", ggml_type::Q8_0, {4, 32}, std::vector<std::byte>(4 * 34), {}};
    CHECK_THROWS_SAYS(convert_blob(quant, ggml_type::F32), dtype_error, "from Q8_0 to F32");
    CHECK_THROWS_SAYS(hparams_from_hf_config(json{{"model_type", "bert"}}, "c.json"), format_error,
                      "c.json: model_type 'bert' (expected llama or gpt2)");
    // a block count from a file is bounded before per-layer vectors are sized by it (fuzz_gguf)
    std::vector<gguf_kv> huge = {{"general.architecture", gguf_value::string("llama")},
                                 {"llama.block_count", gguf_value::scalar<std::uint32_t>(4000000000u)}};
    CHECK_THROWS_SAYS(hparams_from_gguf(huge, 0, "h.gguf"), format_error,
                      "h.gguf: llama.block_count is 4000000000 (expected at most 65536 blocks)");
    gguf_model model{huge, {}};
    const std::vector<std::size_t> first = {0};
    CHECK_THROWS_SAYS(remove_blocks(model, first), format_error, "llama.block_count is 4000000000");
    const json three_heads = parse_json(R"({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 8,
        "max_position_embeddings": 8, "vocab_size": 4, "num_attention_heads": [2, 2, 2], "intermediate_size": 8})", "c.json");
    CHECK_THROWS_SAYS(hparams_from_hf_config(three_heads, "c.json"),
                      format_error, "num_attention_heads has 3 entries (expected one per layer, 2)");
}
