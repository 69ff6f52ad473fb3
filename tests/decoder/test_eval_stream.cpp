// A causal LM evaluated layer by layer from its checkpoint (decoder::evaluate_layers, what
// prune-eval runs) against the whole model loaded as float: load_model, apply_element_masks and
// forward under gates::from_mask -- the path prune-eval took before, whose perplexity is checked
// against PyTorch in test_cli.cpp. On a Llama with grouped-query attention and untied lm_head and
// a GPT-2 (Conv1D weights, tied embeddings, learned positions), each saved as F32 and as BF16 and
// rewritten as two shards, every batch's NLL is the same bits: with and without element masks
// (over every tensor, the embedding table, positions and lm_head among them) and structure gates
// (heads, kv_groups, mlps), in one chunk or in chunks of one batch. prune-eval's --json, layer by
// layer, is the same as with --whole-model (the path it took before) on every one of these models.
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/layer_stream.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/decoder_fixtures.hpp"
#include "../support/files.hpp"
#include "../support/run_ok.hpp"

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

namespace dec = prune::decoder;
namespace fs = std::filesystem;

/// Rewrites the single-file checkpoint in `from` as two shards (tensors alternating, bytes and
/// dtypes as they are) with a model.safetensors.index.json in `to`.
void write_shards(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    fs::copy_file(from / "config.json", to / "config.json");
    const prune::io::checkpoint in = prune::io::checkpoint::open(from);
    prune::io::safetensors_writer shards[2];
    const char* names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    nlohmann::json weight_map = nlohmann::json::object();
    std::size_t k = 0;
    for (const auto& info : in.tensors()) {
        shards[k % 2].add(info.name, info.type, info.shape, in.bytes(info.name));
        weight_map[info.name] = names[k++ % 2];
    }
    for (std::size_t s = 0; s < 2; ++s) {
        shards[s].set_metadata("format", "pt");
        shards[s].write(to / names[s]);
    }
    std::ofstream(to / "model.safetensors.index.json") << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump();
}

/// A random element mask (about 80% kept) for every tensor of `w`, in the checkpoint's shapes.
prune::io::element_masks random_masks(dec::weights& w, unsigned seed) {
    std::mt19937 rng(seed);
    std::bernoulli_distribution keep(0.8);
    prune::io::element_masks out;
    for (const dec::parameter& p : dec::parameters(w)) {
        const std::vector<std::int64_t> fs = p.file_shape();
        prune::element_mask m(prune::shape(std::vector<std::size_t>(fs.begin(), fs.end())));
        for (std::size_t i = 0; i < p.size(); ++i) m.set(i, keep(rng));
        out.emplace(p.name, std::move(m));
    }
    return out;
}

/// A structure mask turning off some heads, K/V groups and MLPs of `w`.
prune::structure_mask some_units(const dec::weights& w) {
    nlohmann::json heads = nlohmann::json::array(), kv = nlohmann::json::array(), mlps = nlohmann::json::array();
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        nlohmann::json h = nlohmann::json::array(), g = nlohmann::json::array();
        for (int i = 0; i < w.layers[l].q_heads; ++i) h.push_back((i + static_cast<int>(l)) % 3 == 0 ? 0 : 1);
        for (int i = 0; i < w.layers[l].kv_heads; ++i) g.push_back(i == 1 && l == 0 ? 0 : 1);
        heads.push_back(h);
        kv.push_back(g);
        mlps.push_back(l == 1 ? 0 : 1);
    }
    nlohmann::json mask{{"heads", heads}, {"mlps", mlps}};
    if (w.cfg.is_llama()) mask["kv_groups"] = kv;
    return prune::io::parse_structure_mask(mask.dump(), "mask");
}

/// forward's results per batch on `w` under `gate`.
std::vector<dec::forward_result> loaded_nll(const dec::weights& w, const std::vector<dec::sequences>& batches, const dec::gates* gate) {
    dec::workspace ws(1);
    dec::forward_options o;
    o.gate = gate;
    o.keep_logits = false;
    std::vector<dec::forward_result> out;
    for (const auto& b : batches) out.push_back(dec::forward(w, b, ws, o));
    return out;
}

/// evaluate_layers' results per batch on the checkpoint in `dir`.
std::vector<dec::forward_result> streamed_nll(const fs::path& dir, const std::vector<dec::sequences>& batches, const dec::gates* gate,
                                              const prune::io::element_masks* masks, std::size_t chunk_tokens) {
    const dec::opened_model m = dec::open_model(dir);
    dec::stream_evaluation o;
    o.gate = gate;
    o.masks = masks;
    std::vector<dec::forward_result> out;
    dec::evaluate_layers(m.ckpt, m.cfg, batches, o, chunk_tokens, 1, m.where, [&](std::size_t b, const dec::forward_result& r) {
        CHECK(b == out.size());
        out.push_back(r);
    });
    return out;
}

/// The models of the test in dir/NAME-DTYPE (single file) and dir/NAME-DTYPE-sharded.
std::vector<fs::path> write_models(const fs::path& dir) {
    const dec::config llama = prune_test::small_llama();
    const dec::config gpt2 = prune_test::small_gpt2();
    std::vector<fs::path> out;
    for (const auto& [name, cfg] : {std::pair{std::string("llama"), llama}, std::pair{std::string("gpt2"), gpt2}}) {
        const dec::weights w = dec::random_weights(cfg, name == "llama" ? 5 : 6, 0.2f);
        for (const auto& [suffix, dtype] : {std::pair{"f32", prune::io::dtype::F32}, std::pair{"bf16", prune::io::dtype::BF16}}) {
            const fs::path single = dir / (name + "-" + suffix);
            dec::save_model(w, single, dtype);
            write_shards(single, dir / (name + "-" + suffix + "-sharded"));
            out.push_back(single);
            out.push_back(dir / (name + "-" + suffix + "-sharded"));
        }
    }
    return out;
}

void check_same(const std::vector<dec::forward_result>& got, const std::vector<dec::forward_result>& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t b = 0; b < got.size(); ++b) {
        INFO("batch " << b);
        CHECK(got[b].nll == want[b].nll);
        CHECK(got[b].predicted == want[b].predicted);
    }
}

}  // namespace

TEST_CASE("evaluate_layers gives forward's NLL on the loaded, masked and gated model, bit for bit", "[decoder][stream]") {
    prune_test::temp_dir dir("prune_eval_stream");
    for (const fs::path& model : write_models(dir.path())) {
        INFO(model.filename().string());
        dec::weights w = dec::load_model(model);
        const std::vector<dec::sequences> batches = prune_test::small_batches(5, w.cfg.vocab_size);
        const prune::io::element_masks masks = random_masks(w, 3);
        const dec::gates gate = dec::gates::from_mask(some_units(w), w);
        const std::vector<dec::forward_result> dense = loaded_nll(w, batches, nullptr);
        const std::vector<dec::forward_result> gated = loaded_nll(w, batches, &gate);
        dec::apply_element_masks(w, masks);
        const std::vector<dec::forward_result> masked = loaded_nll(w, batches, &gate);
        for (const std::size_t chunk : {std::size_t{1}, std::size_t{30}, std::size_t{1} << 20}) {
            INFO("chunk of " << chunk << " tokens");
            check_same(streamed_nll(model, batches, nullptr, nullptr, chunk), dense);
            check_same(streamed_nll(model, batches, &gate, nullptr, chunk), gated);
            check_same(streamed_nll(model, batches, &gate, &masks, chunk), masked);
        }
        CHECK(masked[0].nll != dense[0].nll);  // the masks and gates change the model
    }
}

/// prune-eval's --json on the model in `model` with `flags`, run in `dir`.
nlohmann::json eval_json(const fs::path& dir, const fs::path& model, const std::string& flags) {
    prune_test::run_in(dir, "prune-eval --model '" + model.string() + "' --data data.jsonl --batch-size 2 --threads 1" + flags +
                                " --json out.json");
    return prune_test::read_json(dir / "out.json");
}

// The products of a binary and of this test process may round differently (each compiles the
// inline kernels on its own), so the binary is compared with itself: its default, layer by layer,
// against --whole-model, the whole model loaded as float32 (the path it always took before).
TEST_CASE("prune-eval on a causal LM: layer by layer as with --whole-model, bit for bit", "[decoder][stream][cli]") {
    prune_test::temp_dir dir("prune_eval_stream_cli");
    for (const fs::path& model : write_models(dir.path())) {
        INFO(model.filename().string());
        dec::weights w = dec::load_model(model);
        {
            std::ofstream data(dir.path() / "data.jsonl");
            for (const auto& b : prune_test::small_batches(5, w.cfg.vocab_size))
                for (int s = 0; s < b.count(); ++s) {
                    const auto first = b.tokens.begin() + b.offsets[static_cast<std::size_t>(s)];
                    data << nlohmann::json{{"input_ids", std::vector<std::int32_t>(first, first + b.length(s))}}.dump() << "\n";
                }
        }
        prune::io::write_structure_mask(dir.path() / "mask.json", some_units(w));
        prune::io::write_element_masks(dir.path() / "masks.safetensors", random_masks(w, 4));
        nlohmann::json plain;
        for (const std::string flags : {"", " --mask mask.json", " --element-mask masks.safetensors", " --element-mask masks.safetensors --mask mask.json"}) {
            INFO(flags);
            nlohmann::json got = eval_json(dir.path(), model, flags);
            nlohmann::json want = eval_json(dir.path(), model, flags + " --whole-model");
            CHECK(got["peak_rss_bytes"].get<long long>() > 0);
            got.erase("peak_rss_bytes");
            want.erase("peak_rss_bytes");
            CHECK(got.dump() == want.dump());
            CHECK(got["sequences"].get<int>() == 10);
            if (flags.empty()) plain = got;
            else CHECK(got["nll_total"] != plain["nll_total"]);  // the masks change the model
        }
    }
}
