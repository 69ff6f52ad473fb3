// prune-convert (examples/prune-convert.cpp) on small causal LMs written by the decoder library:
// a Llama in two BF16 shards, a physically pruned Llama (prune-compact's per-layer widths) and a
// GPT-2 with pruned heads and a narrower MLP (F16). Hugging Face -> GGUF through the binary gives
// the bytes of the library call convert_hf_to_gguf (tested against PyTorch in
// test_gguf_convert.cpp), which npm's @huggingface/gguf reads back tensor by tensor; GGUF ->
// Hugging Face gives every tensor back bit for bit and a config.json that the decoder library
// reads into the same model (equal logits); --remove-layers gives the bytes of remove_blocks, and
// the model it gives, back in Hugging Face form, computes what decoder::compact computes when it
// removes the same layers. Flags that do not fit the direction: exit 2, nothing written.
#include <prune/io/gguf_convert.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/compact.hpp>
#include <prune/models/decoder/forward.hpp>

#include "../support/decoder_fixtures.hpp"
#include "../support/shards.hpp"
#include "gguf_support.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace fs = std::filesystem;
using namespace prune;

using prune_test::hex;
using prune_test::read_bytes;
using prune_test::temp_dir;

namespace {

/// What a run of prune-convert gave: exit code and stderr.
struct run_result {
    int code;
    std::string err;
};

/// Runs build/bin/prune-convert with `args` (quoted by the caller) in `dir`.
run_result convert(const temp_dir& dir, const std::string& args) {
    const std::string command = "cd '" + dir.path().string() + "' && " + PRUNE_BINARY_DIR + "/bin/prune-convert " + args +
                                " > /dev/null 2> err.txt";
    const int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_bytes(dir / "err.txt")};
}

/// Runs prune-convert and requires exit 0.
void convert_ok(const temp_dir& dir, const std::string& args) {
    const run_result r = convert(dir, args);
    INFO("prune-convert " << args << "\n" << r.err);
    REQUIRE(r.code == 0);
}

/// The logits of a model on two sequences (the decoder library's forward pass).
std::vector<float> logits_of(const decoder::weights& w) {
    decoder::sequences s;
    s.add(std::vector<std::int32_t>{3, 17, 5, 39, 0, 22, 8});
    s.add(std::vector<std::int32_t>{11, 2, 30, 7, 19});
    decoder::workspace ws(1);
    (void)decoder::forward(w, s, ws);
    return {ws.logits().begin(), ws.logits().end()};
}

/// The fixtures under `dir`: llama (two BF16 shards), llama-compact (per-layer widths, F32),
/// gpt2 (heads pruned in layer 1, MLP narrowed in layer 2, F16) and llama-bias (attention and
/// MLP biases, tied embeddings, F32).
void write_fixtures(const temp_dir& dir) {
    const decoder::weights llama = decoder::random_weights(prune_test::small_llama(), 5, 0.2f);
    decoder::save_model(llama, dir / "llama-one", io::dtype::BF16);
    prune_test::reshard(dir / "llama-one", dir / "llama",
                        [](const std::string& name) {
                            return name.find("layers.0.") != std::string::npos ? "model-00001-of-00002.safetensors"
                                                                                : "model-00002-of-00002.safetensors";
                        },
                        [](const std::string&) { return false; });
    decoder::unit_masks m;  // layer 0 whole, layer 1 without K/V group 1, layer 2 with 40 of 48 MLP channels
    m.kv_groups = {{1, 1}, {1, 0}, {1, 1}};
    m.channels = {{}, {}, std::vector<float>(48, 1.0f)};
    std::fill(m.channels[2].begin(), m.channels[2].begin() + 8, 0.0f);
    decoder::save_model(decoder::compact(llama, m), dir / "llama-compact");
    decoder::unit_masks g;  // GPT-2: head 2 of layer 1 removed, 100 of 128 MLP channels in layer 2
    g.heads = {{1, 1, 1, 1}, {1, 1, 0, 1}, {1, 1, 1, 1}};
    g.channels = {{}, {}, std::vector<float>(128, 1.0f)};
    std::fill(g.channels[2].begin() + 100, g.channels[2].end(), 0.0f);
    decoder::save_model(decoder::compact(decoder::random_weights(prune_test::small_gpt2(), 7, 0.2f), g), dir / "gpt2",
                        io::dtype::F16);
    const decoder::config biased = decoder::config_from_json(io::parse_json(  // q/k/v/o and MLP biases, tied embeddings
        R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 16,
            "tie_word_embeddings": true, "attention_bias": true, "mlp_bias": true})", "llama-bias"));
    decoder::save_model(decoder::random_weights(biased, 9, 0.2f), dir / "llama-bias");
}

/// Every tensor of `original` is in `back` with the same type, shape and bytes, and nothing else.
void check_same_tensors(const fs::path& original, const fs::path& back) {
    const io::checkpoint a = io::checkpoint::open(original);
    const io::checkpoint b = io::checkpoint::open(back);
    CHECK(a.tensors().size() == b.tensors().size());
    for (const io::tensor_info& t : a.tensors()) {
        INFO("tensor " << t.name);
        REQUIRE(b.contains(t.name));
        CHECK(b.info(t.name).type == t.type);
        CHECK(b.info(t.name).shape == t.shape);
        CHECK(hex(b.bytes(t.name)) == hex(a.bytes(t.name)));
    }
}

}  // namespace

TEST_CASE("prune-convert: Hugging Face -> GGUF is the library's conversion, and @huggingface/gguf reads it") {
    temp_dir dir;
    write_fixtures(dir);
    for (const char* model : {"llama", "llama-compact", "gpt2"}) {
        INFO("model " << model);
        const std::string name = model;
        convert_ok(dir, "--model " + name + " --out " + name + ".gguf --json " + name + ".json");
        io::convert_hf_to_gguf(dir / model, dir / (name + "-lib.gguf"));
        CHECK(read_bytes(dir / (name + ".gguf")) == read_bytes(dir / (name + "-lib.gguf")));
        const io::gguf_file ours = io::gguf_file::open(dir / (name + ".gguf"));
        const nlohmann::json summary = prune_test::read_json(dir / (name + ".json"));
        CHECK(summary["direction"] == "hf-to-gguf");
        CHECK(summary["tensors"] == ours.tensors().size());
        CHECK(summary["bytes"] == fs::file_size(dir / (name + ".gguf")));
        CHECK(summary["peak_rss_bytes"].get<long long>() > 0);
        const nlohmann::json seen = prune_test::js_read_gguf(dir / (name + ".gguf"));
        REQUIRE(seen["tensors"].size() == ours.tensors().size());
        for (std::size_t i = 0; i < ours.tensors().size(); ++i) {
            const io::gguf_tensor_info& t = ours.tensors()[i];
            CHECK(seen["tensors"][i]["name"] == t.name);
            CHECK(seen["tensors"][i]["ne"].get<std::vector<std::uint64_t>>() == t.ne);
            CHECK(seen["tensors"][i]["hex"] == hex(ours.bytes(t.name)));
        }
    }
    // the per-layer widths of the pruned models, as @huggingface/gguf reads them
    const auto metadata = [&](const std::string& file, const std::string& key) {
        const nlohmann::json seen = prune_test::js_read_gguf(dir / file);
        for (const auto& m : seen["metadata"])
            if (m["key"] == key) return m["value"];
        return nlohmann::json();
    };
    CHECK(metadata("llama-compact.gguf", "llama.attention.head_count") == nlohmann::json({4, 2, 4}));
    CHECK(metadata("llama-compact.gguf", "llama.attention.head_count_kv") == nlohmann::json({2, 1, 2}));
    CHECK(metadata("llama-compact.gguf", "llama.feed_forward_length") == nlohmann::json({48, 48, 40}));
    CHECK(metadata("gpt2.gguf", "gpt2.attention.head_count") == nlohmann::json({4, 3, 4}));
    CHECK(metadata("gpt2.gguf", "gpt2.feed_forward_length") == nlohmann::json({128, 128, 100}));
    CHECK(metadata("gpt2.gguf", "gpt2.attention.key_length") == 8);  // 32 / 4 heads: layer 1's 3 heads do not say it
    CHECK(metadata("llama.gguf", "llama.attention.head_count") == 4);
}

TEST_CASE("prune-convert: Hugging Face -> GGUF -> Hugging Face gives the tensors back bit for bit, and the logits") {
    temp_dir dir;
    write_fixtures(dir);
    for (const auto& [model, small] : std::vector<std::pair<std::string, std::string>>{
             {"llama", "bf16"}, {"llama-compact", "f32"}, {"gpt2", "f16"}, {"llama-bias", "f32"}}) {
        INFO("model " << model);
        convert_ok(dir, "--model " + model + " --out " + model + ".gguf");
        convert_ok(dir, "--model " + model + ".gguf --out " + model + "-back --small-dtype " + small + " --json back.json");
        check_same_tensors(dir / model, dir / (model + "-back"));
        CHECK(prune_test::read_json(dir / "back.json")["direction"] == "gguf-to-hf");
        const decoder::weights original = decoder::load_model(dir / model);
        const decoder::weights back = decoder::load_model(dir / (model + "-back"));
        CHECK(back.cfg.layer_heads == original.cfg.layer_heads);
        CHECK(back.cfg.layer_kv_heads == original.cfg.layer_kv_heads);
        CHECK(back.cfg.layer_ffn == original.cfg.layer_ffn);
        CHECK(back.cfg.attention_bias == original.cfg.attention_bias);
        CHECK(back.cfg.mlp_bias == original.cfg.mlp_bias);
        CHECK(back.cfg.tie_word_embeddings == original.cfg.tie_word_embeddings);
        CHECK(logits_of(back) == logits_of(original));
    }
}

TEST_CASE("prune-convert --remove-layers is remove_blocks, and the model is decoder::compact's without those layers") {
    temp_dir dir;
    write_fixtures(dir);
    convert_ok(dir, "--model llama-compact --out in.gguf");
    convert_ok(dir, "--model in.gguf --remove-layers 0 --out out.gguf --json rm.json");
    {
        const io::gguf_file in = io::gguf_file::open(dir / "in.gguf");
        io::gguf_model m = io::borrow_gguf_model(in);
        const std::vector<std::size_t> removed = {0};
        io::remove_blocks(m, removed);
        io::write_gguf_model(m, dir / "lib.gguf");
        CHECK(read_bytes(dir / "out.gguf") == read_bytes(dir / "lib.gguf"));
        const io::gguf_file out = io::gguf_file::open(dir / "out.gguf");
        CHECK(out.get("llama.block_count").as<std::uint32_t>() == 2);
        CHECK(out.get("llama.attention.head_count").as_integers() == std::vector<std::int64_t>{2, 4});  // layers 1 and 2
        CHECK(out.get("llama.attention.head_count_kv").as_integers() == std::vector<std::int64_t>{1, 2});
        CHECK(out.get("llama.feed_forward_length").as_integers() == std::vector<std::int64_t>{48, 40});
        for (const io::gguf_tensor_info& t : out.tensors()) {
            INFO("tensor " << t.name);
            const auto block = io::detail::gguf_block_of(t.name);
            CHECK((!block || *block < 2));
            const std::string was = block ? "blk." + std::to_string(*block + 1) + t.name.substr(5) : t.name;
            CHECK(hex(out.bytes(t.name)) == hex(in.bytes(was)));
        }
        CHECK(prune_test::read_json(dir / "rm.json")["tensors"] == out.tensors().size());
    }
    convert_ok(dir, "--model out.gguf --out out-hf");
    decoder::unit_masks layers;
    layers.layers = {0.0f, 1.0f, 1.0f};
    const decoder::weights want = decoder::compact(decoder::load_model(dir / "llama-compact"), layers);
    CHECK(logits_of(decoder::load_model(dir / "out-hf")) == logits_of(want));
}

TEST_CASE("prune-convert: flags that do not fit the direction, exit 2 and nothing written") {
    temp_dir dir;
    write_fixtures(dir);
    convert_ok(dir, "--model llama --out llama.gguf");
    prune_test::write_bytes(dir / "notes.gguf", "GGUG not a model");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"--model llama --remove-layers 1 --out out.gguf",
         "prune-convert: --remove-layers with a Hugging Face --model (expected a GGUF --model; prune-compact --remove-layers "
         "removes layers from a directory)"},
        {"--model llama.gguf --out out.gguf",
         "prune-convert: --out 'out.gguf' for a GGUF --model without --remove-layers (expected a directory for the Hugging Face "
         "model, or --remove-layers)"},
        {"--model llama.gguf --out out --small-dtype f8", "prune-convert: --small-dtype 'f8' (expected f32, bf16 or f16)"},
        {"--model llama.gguf --remove-layers 3 --out out.gguf",
         "prune-convert: prune::io::remove_blocks: block 3 does not exist (the model has 3 blocks)"},
        {"--model notes.gguf --out out",
         "prune-convert: --model 'notes.gguf' is a file that does not start with the GGUF magic (expected a Hugging Face model "
         "directory or a GGUF file)"},
    };
    const std::vector<std::string> before = dir.listing();
    for (const auto& [args, message] : cases) {
        INFO("prune-convert " << args);
        const run_result r = convert(dir, args);
        CHECK(r.code == 2);
        std::string last = r.err;
        while (!last.empty() && last.back() == '\n') last.pop_back();
        CHECK(last.substr(last.rfind('\n') + 1) == message);
        CHECK(dir.listing() == before);
    }
}
