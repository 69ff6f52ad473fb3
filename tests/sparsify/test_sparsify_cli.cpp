// prune-sparsify on tiny generated checkpoints (a Llama with GQA saved in F16, a GPT-2 in F32):
// masks.safetensors holds one U8 mask per prunable weight, named and shaped as the checkpoint
// stores it, with the N:M pattern or the sparsity asked for; model.safetensors holds every
// tensor of the input with its dtype and shape; it reloads, its pruned weights are zero, its
// kept weights are the input's (Wanda, magnitude) or exactly what prune_layers gives in this
// process on the same batches (SparseGPT); the perplexity after pruning in report.json is the
// reloaded model's; and the report counts the calibration tokens. A sharded input (three
// shards, BF16 and F32) comes back in the same shards, checked also by a json + struct reader.
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/models/decoder/calibration.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/files.hpp"
#include "../support/shards.hpp"
#include "support.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace dec = prune::decoder;
namespace sp = prune::sparsify;

using sparsify_test::rows_of;
using sparsify_test::write_jsonl;

/// Runs prune-sparsify in `dir`; returns report.json.
nlohmann::json run(const fs::path& dir, const std::string& arguments) {
    const prune_test::outcome o =
        prune_test::run_binary("prune-sparsify " + arguments + " --out out --threads 1", dir, dir / "stderr.txt",
                               "OPENBLAS_NUM_THREADS=1");
    INFO(arguments << "\n" << o.err);
    REQUIRE(o.code == 0);
    std::ifstream in(dir / "out" / "report.json");
    return nlohmann::json::parse(in);
}

/// Every tensor of the input is in the output with its dtype and shape.
void check_same_layout(const fs::path& in, const fs::path& out) {
    const prune::io::checkpoint a = prune::io::checkpoint::open(in), b = prune::io::checkpoint::open(out);
    REQUIRE(a.tensors().size() == b.tensors().size());
    for (const auto& info : a.tensors()) {
        INFO(info.name);
        REQUIRE(b.contains(info.name));
        CHECK(b.info(info.name).type == info.type);
        CHECK(b.info(info.name).shape == info.shape);
    }
}

/// Kept elements per group of `group` along the last axis of a stored mask, for every group.
std::vector<std::size_t> kept_per_group(const prune::element_mask& m, std::size_t group, bool transposed) {
    const std::size_t r = m.extents()[0], c = m.extents()[1];
    const std::size_t rows = transposed ? c : r, cols = transposed ? r : c;  // [out, in]
    std::vector<std::size_t> out;
    for (std::size_t o = 0; o < rows; ++o) {
        for (std::size_t g = 0; g < cols; g += group) {
            std::size_t kept = 0;
            for (std::size_t i = g; i < g + group; ++i) kept += m.kept(transposed ? i * rows + o : o * cols + i) ? 1 : 0;
            out.push_back(kept);
        }
    }
    return out;
}

/// The perplexity of `rows` on a model directory, by the library.
double perplexity(const fs::path& model, const std::vector<std::vector<std::int32_t>>& rows) {
    const dec::weights w = dec::load_model(model);
    dec::sequences all;
    for (const auto& r : rows) all.add(r);
    dec::workspace ws(1);
    const dec::forward_result r = dec::forward(w, all, ws);
    return std::exp(r.total_nll() / static_cast<double>(r.total_predicted()));
}

/// max |a - b| / max |b|, printed with PRUNE_TEST_VERBOSE.
double difference(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double diff = 0, largest = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
        largest = std::max(largest, std::fabs(static_cast<double>(b[i])));
    }
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("difference %.3g\n", diff / largest);
    return diff / largest;
}

std::uint64_t tokens_of(const std::vector<std::vector<std::int32_t>>& rows) {
    std::uint64_t n = 0;
    for (const auto& r : rows) n += r.size();
    return n;
}

}  // namespace

TEST_CASE("prune-sparsify: Wanda 2:4 on an F16 Llama", "[sparsify][cli]") {
    prune_test::temp_dir dir("prune_sparsify_cli_llama");
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(
        R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 16})", "cfg"));
    dec::save_model(dec::random_weights(cfg, 5, 0.2f), dir.path() / "lm", prune::io::dtype::F16);
    const auto rows = rows_of(6, 50);
    write_jsonl(dir.path() / "calib.jsonl", rows);
    const nlohmann::json report = run(dir.path(), "--model lm --calib calib.jsonl --method wanda --nm 2:4 --eval calib.jsonl --batch-size 4");

    check_same_layout(dir.path() / "lm", dir.path() / "out");
    const prune::io::element_masks masks = prune::io::read_element_masks(dir.path() / "out" / "masks.safetensors");
    CHECK(masks.size() == 14);  // 7 linears x 2 layers
    const dec::weights before = dec::load_model(dir.path() / "lm");
    dec::weights after = dec::load_model(dir.path() / "out");
    dec::weights masked = before;
    prune::decoder::apply_element_masks(masked, masks);
    for (const auto& [name, mask] : masks) {
        INFO(name);
        for (const std::size_t kept : kept_per_group(mask, 4, false)) CHECK(kept == 2);
        CHECK(report["tensors"][name]["sparsity"].get<double>() == 0.5);
    }
    for (std::size_t l = 0; l < 2; ++l) {  // pruned weights 0, kept ones the input's, bit for bit
        CHECK(after.layers[l].qkv == masked.layers[l].qkv);
        CHECK(after.layers[l].out == masked.layers[l].out);
        CHECK(after.layers[l].up == masked.layers[l].up);
        CHECK(after.layers[l].down == masked.layers[l].down);
    }
    CHECK(report["calibration"]["tokens"].get<std::uint64_t>() == tokens_of(rows));
    CHECK(report["calibration"]["batches"].get<int>() == 2);
    const double ppl = perplexity(dir.path() / "out", rows);
    INFO("report " << report["perplexity_after"]["perplexity"].get<double>() << ", reloaded " << ppl);
    // The binary evaluates in batches of 4 + 2 sequences, this in one batch of 6 (other product shapes).
    CHECK(std::abs(report["perplexity_after"]["perplexity"].get<double>() - ppl) <= 1e-5 * ppl);
    CHECK(report["perplexity_before"]["perplexity"].get<double>() != report["perplexity_after"]["perplexity"].get<double>());
    CHECK(report["peak_rss_bytes"].get<long long>() > 0);
    CHECK(report["layer_seconds"].size() == 2);
}

TEST_CASE("prune-sparsify: SparseGPT 50% and global magnitude on a GPT-2", "[sparsify][cli]") {
    prune_test::temp_dir dir("prune_sparsify_cli_gpt2");
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(
        R"({"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2, "n_positions": 16, "vocab_size": 40})", "cfg"));
    dec::save_model(dec::random_weights(cfg, 6, 0.2f), dir.path() / "lm");
    const auto rows = rows_of(5, 40);
    write_jsonl(dir.path() / "calib.jsonl", rows);

    SECTION("sparsegpt: the weights prune_layers gives in this process") {
        const nlohmann::json report = run(dir.path(), "--model lm --calib calib.jsonl --method sparsegpt --sparsity 0.5 --batch-size 2");
        check_same_layout(dir.path() / "lm", dir.path() / "out");
        dec::weights expected = dec::load_model(dir.path() / "lm");
        std::vector<dec::sequences> batches(3);
        for (std::size_t i = 0; i < rows.size(); ++i) batches[i / 2].add(rows[i]);
        dec::calibration_run calibration(expected, batches, 1);
        sp::calibration_options o;
        o.how = sp::method::sparsegpt;
        o.target.sparsity = 0.5;
        o.sparsegpt.pool = &calibration.pool();  // as the binary runs it
        static_cast<void>(sp::prune_layers(calibration, o));
        const dec::weights after = dec::load_model(dir.path() / "out");
        // Bit for bit when this file is compiled as the binary is (-O3: measured, difference 0);
        // the test programs are built at -O1, whose float code rounds otherwise: up to 2.1e-5 of
        // the largest weight observed (SparseGPT in float32 on 35 calibration tokens amplifies
        // it), so the bound is the oracle test's 1e-4. The masks are the same (pruned weights are
        // 0 in both, and a different mask would differ by a whole weight).
        for (std::size_t l = 0; l < 2; ++l) {
            CHECK(difference(after.layers[l].qkv, expected.layers[l].qkv) <= 1e-4);
            CHECK(difference(after.layers[l].out, expected.layers[l].out) <= 1e-4);
            CHECK(difference(after.layers[l].up, expected.layers[l].up) <= 1e-4);
            CHECK(difference(after.layers[l].down, expected.layers[l].down) <= 1e-4);
        }
        const prune::io::element_masks masks = prune::io::read_element_masks(dir.path() / "out" / "masks.safetensors");
        CHECK(masks.size() == 8);
        for (const auto& [name, mask] : masks) {  // Conv1D: stored [in, out]; one block of <= 128 columns
            INFO(name);
            const prune::io::checkpoint ckpt = prune::io::checkpoint::open(dir.path() / "lm");
            CHECK(mask.extents() == ckpt.info(name).extents());
            CHECK(mask.count_kept() == mask.size() / 2);
        }
        CHECK(report["sparsity"].get<double>() == 0.5);
        CHECK(report["group"].is_null());
    }
    SECTION("magnitude, global group, no calibration") {
        const nlohmann::json report = run(dir.path(), "--model lm --method magnitude --sparsity 0.3 --group global");
        const std::size_t total = report["total"].get<std::size_t>();
        CHECK(total == 2 * (32 * 96 + 32 * 32 + 32 * 128 + 128 * 32));
        CHECK(report["kept"].get<std::size_t>() == total - static_cast<std::size_t>(0.3 * static_cast<double>(total)));
        CHECK(report["calibration"]["tokens"].get<int>() == 0);
        CHECK(report["group"] == "global");
    }
}

namespace {

/// The shard a tiny Llama tensor goes to in the sharded fixture, and whether it is stored BF16:
/// embeddings (BF16) | layer 0 (attention BF16, the rest F32) | everything else (F32).
std::pair<std::string, bool> fixture_shard(const std::string& name) {
    if (name.find("embed_tokens") != std::string::npos) return {"model-00001-of-00003.safetensors", true};
    if (name.find("layers.0.") != std::string::npos) return {"model-00002-of-00003.safetensors", name.find("self_attn") != std::string::npos};
    return {"model-00003-of-00003.safetensors", false};
}

}  // namespace

TEST_CASE("prune-sparsify: a sharded BF16/F32 Llama is written back in its shards", "[sparsify][cli]") {
    prune_test::temp_dir dir("prune_sparsify_cli_shards");
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(
        R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 16,
            "tie_word_embeddings": false})", "cfg"));
    dec::save_model(dec::random_weights(cfg, 9, 0.2f), dir.path() / "dense");
    prune_test::reshard(dir.path() / "dense", dir.path() / "lm", [](const std::string& name) { return fixture_shard(name).first; },
                        [](const std::string& name) { return fixture_shard(name).second; });
    run(dir.path(), "--model lm --method magnitude --sparsity 0.5");

    // An independent reader (json + struct) compares the shard headers, weight_map and total_size.
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " PRUNE_SOURCE_DIR "/tests/sparsify/shard_layout_check.py '" +
                                (dir.path() / "lm").string() + "' '" + (dir.path() / "out").string() + "'";
    CHECK(std::system(command.c_str()) == 0);
    const prune::io::checkpoint in = prune::io::checkpoint::open(dir.path() / "lm"), out = prune::io::checkpoint::open(dir.path() / "out");
    REQUIRE(out.sharded());
    CHECK(out.files().size() == 3);
    check_same_layout(dir.path() / "lm", dir.path() / "out");
    for (const auto& info : in.tensors()) {
        INFO(info.name);
        CHECK(out.shard_name_of(info.name) == fixture_shard(info.name).first);
        CHECK(out.info(info.name).type == (fixture_shard(info.name).second ? prune::io::dtype::BF16 : prune::io::dtype::F32));
    }
    // Reloaded: the input with the masks applied, bit for bit (magnitude keeps weights as they are).
    const prune::io::element_masks masks = prune::io::read_element_masks(dir.path() / "out" / "masks.safetensors");
    CHECK(masks.size() == 14);
    dec::weights masked = dec::load_model(dir.path() / "lm");
    dec::apply_element_masks(masked, masks);
    const dec::weights after = dec::load_model(dir.path() / "out");
    CHECK(after.embed == masked.embed);
    CHECK(after.lm_head == masked.lm_head);
    for (std::size_t l = 0; l < 2; ++l) {
        CHECK(after.layers[l].qkv == masked.layers[l].qkv);
        CHECK(after.layers[l].out == masked.layers[l].out);
        CHECK(after.layers[l].up == masked.layers[l].up);
        CHECK(after.layers[l].down == masked.layers[l].down);
    }
    CHECK(after.layers[0].qkv != dec::load_model(dir.path() / "lm").layers[0].qkv);  // something was pruned
}
