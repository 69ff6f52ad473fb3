// prune-sparsify with llama.cpp importance matrices, on tiny generated checkpoints.
//
// The oracle of --imatrix is prune's own calibration: `--dense-inputs --calib C --save-imatrix M`
// calibrates every layer on the dense model's activations -- what an importance matrix holds --
// and writes those statistics; `--imatrix M` (no calibration) must then give the same
// masks.safetensors and model.safetensors, byte for byte, for the row and layer groups and 2:4
// (Llama and GPT-2). The global group, which calibrated Wanda refuses, is checked on a one-layer
// model against the layer group (one layer: the same comparison), and on two layers against
// choose_masks over the loaded weights with the file's norms. A legacy .dat of the same sums
// (means, ncall 1) gives the row group's bytes too. The saved file is read by npm's
// @huggingface/gguf (tests/io/gguf_reference.mjs): names, ne, F32, and values equal to the
// statistics prune_layers collects in this process.
#include <prune/io/gguf_convert.hpp>
#include <prune/io/imatrix.hpp>
#include <prune/io/masks.hpp>
#include <prune/models/decoder/calibration.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/files.hpp"
#include "support.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace dec = prune::decoder;
namespace sp = prune::sparsify;

using sparsify_test::rows_of;

/// A generated model in dir/lm (dtype F32) and calibration data in dir/calib.jsonl.
void make_model(const fs::path& dir, const std::string& config_json, int vocab, std::uint64_t seed) {
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(config_json, "cfg"));
    dec::save_model(dec::random_weights(cfg, seed, 0.2f), dir / "lm");
    sparsify_test::write_jsonl(dir / "calib.jsonl", rows_of(6, vocab));
}

nlohmann::json read_json(const fs::path& file) { return nlohmann::json::parse(prune_test::read_file(file)); }

/// Runs prune-sparsify in `dir` writing `out`; returns its stderr (fails unless it exits 0).
std::string run(const fs::path& dir, const std::string& arguments, const std::string& out) {
    const prune_test::outcome o = prune_test::run_binary("prune-sparsify --model lm " + arguments + " --out " + out +
                                                             " --threads 1", dir, dir / "stderr.txt", "OPENBLAS_NUM_THREADS=1");
    INFO(arguments << "\n" << o.err);
    REQUIRE(o.code == 0);
    return o.err;
}

/// The two runs' masks.safetensors and model.safetensors are the same bytes.
void check_same_outputs(const fs::path& a, const fs::path& b) {
    for (const char* file : {"masks.safetensors", "model.safetensors"}) {
        INFO(file);
        const std::string x = prune_test::read_file(a / file), y = prune_test::read_file(b / file);
        REQUIRE(!x.empty());
        CHECK(x == y);
    }
}

/// The --dense-inputs run (saving its imatrix) and the --imatrix run give the same bytes.
void round_trip(const fs::path& dir, const std::string& target, const std::string& imatrix_target) {
    INFO(target << " / " << imatrix_target);
    run(dir, "--method wanda --dense-inputs --calib calib.jsonl --save-imatrix m.gguf " + target, "calibrated");
    const nlohmann::json report = read_json(dir / "calibrated" / "report.json");
    CHECK(report["save_imatrix"] == "m.gguf");
    run(dir, "--method wanda --imatrix m.gguf " + imatrix_target, "given");
    CHECK(read_json(dir / "given" / "report.json")["imatrix"] == "m.gguf");
    check_same_outputs(dir / "calibrated", dir / "given");
    fs::remove_all(dir / "calibrated");
    fs::remove_all(dir / "given");
}

const char* const llama_config =
    R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": LAYERS, "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 16})";

std::string llama_with(int layers) {
    std::string c = llama_config;
    c.replace(c.find("LAYERS"), 6, std::to_string(layers));
    return c;
}

/// @huggingface/gguf's reading of a file (tests/io/gguf_reference.mjs read), as JSON.
nlohmann::json read_by_npm(const fs::path& file, const fs::path& dir) {
    const std::string prefix = std::string(PRUNE_BINARY_DIR) + "/npm";  // as tests/io/gguf_support.hpp installs it
    const std::string install = "bash " + std::string(PRUNE_SOURCE_DIR) + "/tests/io/npm_install.sh " + prefix +
                                " @huggingface/gguf@0.4.6";
    REQUIRE(std::system(install.c_str()) == 0);
    const std::string read = "node " + std::string(PRUNE_SOURCE_DIR) + "/tests/io/gguf_reference.mjs read " + prefix +
                             " " + file.string() + " > " + (dir / "npm.json").string();
    REQUIRE(std::system(read.c_str()) == 0);
    return read_json(dir / "npm.json");
}

/// Little-endian float32 values from hex.
std::vector<float> floats_of_hex(const std::string& hex) {
    std::vector<float> out(hex.size() / 8);
    for (std::size_t i = 0; i < out.size(); ++i) {
        std::uint32_t bits = 0;
        for (std::size_t b = 0; b < 4; ++b) bits |= static_cast<std::uint32_t>(std::stoul(hex.substr(i * 8 + b * 2, 2), nullptr, 16)) << (8 * b);
        std::memcpy(&out[i], &bits, 4);
    }
    return out;
}

}  // namespace

TEST_CASE("prune-sparsify --imatrix: the masks and weights --dense-inputs gives on the same statistics (Llama)",
          "[sparsify][cli][imatrix]") {
    prune_test::temp_dir dir("prune_sparsify_imatrix_llama");
    make_model(dir.path(), llama_with(2), 50, 5);
    round_trip(dir.path(), "--sparsity 0.5", "--sparsity 0.5");
    round_trip(dir.path(), "--sparsity 0.6 --group layer", "--sparsity 0.6 --group layer");
    round_trip(dir.path(), "--nm 2:4", "--nm 2:4");
}

TEST_CASE("prune-sparsify --imatrix: the same on a GPT-2 (Conv1D weights, one qkv entry)", "[sparsify][cli][imatrix]") {
    prune_test::temp_dir dir("prune_sparsify_imatrix_gpt2");
    make_model(dir.path(),
               R"({"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2, "n_positions": 16, "vocab_size": 40})", 40, 6);
    round_trip(dir.path(), "--sparsity 0.5", "--sparsity 0.5");
    round_trip(dir.path(), "--nm 2:4", "--nm 2:4");
}

TEST_CASE("prune-sparsify --imatrix: a legacy .dat of the same statistics gives the row group's masks",
          "[sparsify][cli][imatrix]") {
    prune_test::temp_dir dir("prune_sparsify_imatrix_dat");
    make_model(dir.path(), llama_with(2), 50, 10);
    run(dir.path(), "--method wanda --dense-inputs --calib calib.jsonl --save-imatrix m.gguf --sparsity 0.5", "calibrated");
    // the legacy layout as llama-imatrix's save_imatrix_legacy writes it (prune/io/imatrix.hpp's
    // header): i32 entries; per entry i32 name length, name, i32 ncall (1 here), i32 nval, nval
    // f32 mean(x_j^2) x ncall. Its norms are the GGUF's / sqrt(tokens): one factor per row.
    std::string dat;
    auto i32 = [&](std::int32_t v) { dat.append(reinterpret_cast<const char*>(&v), 4); };
    const prune::io::imatrix m = prune::io::read_imatrix(dir.path() / "m.gguf");
    i32(static_cast<std::int32_t>(m.entries.size()));
    for (const auto& e : m.entries) {
        i32(static_cast<std::int32_t>(e.name.size()));
        dat += e.name;
        i32(1);
        i32(static_cast<std::int32_t>(e.columns));
        for (const float v : e.sum2) {
            const float mean = static_cast<float>(static_cast<double>(v) / e.counts.front());
            dat.append(reinterpret_cast<const char*>(&mean), 4);
        }
    }
    std::ofstream(dir.path() / "m.dat", std::ios::binary) << dat;
    run(dir.path(), "--method wanda --imatrix m.dat --sparsity 0.5", "given");
    check_same_outputs(dir.path() / "calibrated", dir.path() / "given");
}

TEST_CASE("prune-sparsify --imatrix --group global", "[sparsify][cli][imatrix]") {
    prune_test::temp_dir dir("prune_sparsify_imatrix_global");
    SECTION("one layer: the global group is the layer group --dense-inputs gives") {
        make_model(dir.path(), llama_with(1), 50, 7);
        round_trip(dir.path(), "--sparsity 0.5 --group layer", "--sparsity 0.5 --group global");
    }
    SECTION("two layers: choose_masks over the loaded weights with the file's norms") {
        make_model(dir.path(), llama_with(2), 50, 8);
        run(dir.path(), "--method wanda --dense-inputs --calib calib.jsonl --save-imatrix m.gguf --sparsity 0.5", "calibrated");
        run(dir.path(), "--method wanda --imatrix m.gguf --sparsity 0.7 --group global", "given");
        const prune::io::imatrix m = prune::io::read_imatrix(dir.path() / "m.gguf");
        dec::weights w = dec::load_model(dir.path() / "lm");
        dec::calibration_run model(w, std::vector<dec::sequences>{}, 1);
        std::vector<sp::wanda_scores> scores;
        std::vector<std::string> names;
        std::vector<std::size_t> layer_of;
        for (std::size_t l = 0; l < 2; ++l) {
            for (const auto& x : model.linears(l)) {
                const std::string entry = *prune::io::gguf_tensor_name(prune::io::decoder_arch::llama, x.name);
                scores.emplace_back(x.weight, m.column_norms(entry), x.name);
                names.push_back(x.name);
                layer_of.push_back(l);
            }
        }
        std::vector<prune::score_source> sources;
        for (const auto& s : scores) sources.push_back(s.source());
        sp::sparsity_target target;
        target.sparsity = 0.7;
        target.group = sp::comparison_group::global;
        const std::vector<prune::element_mask> expected = sp::choose_masks(sources, target, layer_of);
        const prune::io::element_masks got = prune::io::read_element_masks(dir.path() / "given" / "masks.safetensors");
        REQUIRE(got.size() == expected.size());
        std::size_t pruned = 0, total = 0;
        for (std::size_t t = 0; t < names.size(); ++t) {
            INFO(names[t]);
            CHECK(got.at(names[t]) == expected[t]);
            pruned += expected[t].size() - expected[t].count_kept();
            total += expected[t].size();
        }
        CHECK(pruned == static_cast<std::size_t>(0.7 * static_cast<double>(total)));
    }
}

TEST_CASE("prune-sparsify --save-imatrix: @huggingface/gguf reads prune's statistics", "[sparsify][cli][imatrix]") {
    prune_test::temp_dir dir("prune_sparsify_imatrix_npm");
    make_model(dir.path(), llama_with(2), 50, 9);
    run(dir.path(), "--method wanda --dense-inputs --calib calib.jsonl --save-imatrix m.gguf --sparsity 0.5", "out");

    // the statistics prune_layers collects in this process on the same batch (6 sequences, one batch of 8)
    dec::weights w = dec::load_model(dir.path() / "lm");
    std::vector<dec::sequences> batches(1);
    for (const auto& r : rows_of(6, 50)) batches[0].add(r);
    dec::calibration_run calibration(w, batches, 1);
    sp::calibration_options o;
    o.dense_inputs = true;
    std::map<std::string, std::pair<std::vector<double>, std::uint64_t>> expected;
    o.on_statistics = [&](const std::string& name, const sp::input_statistics& s) {
        const std::string entry = *prune::io::gguf_tensor_name(prune::io::decoder_arch::llama, name);
        expected[entry] = {std::vector<double>(s.sum_squares().begin(), s.sum_squares().end()), s.tokens()};
    };
    static_cast<void>(sp::prune_layers(calibration, o));
    REQUIRE(expected.size() == 14);  // 7 linears x 2 layers, q/k/v and gate/up each with its own entry

    const nlohmann::json seen = read_by_npm(dir.path() / "m.gguf", dir.path());
    std::map<std::string, nlohmann::json> meta;
    for (const auto& e : seen["metadata"]) meta[e["key"].get<std::string>()] = e["value"];
    CHECK(meta["general.type"] == "imatrix");
    CHECK(meta["imatrix.datasets"] == nlohmann::json::array({"calib.jsonl"}));
    CHECK(meta["imatrix.chunk_count"] == 6);
    CHECK(meta["imatrix.chunk_size"] == 0);  // the sequences differ in length
    REQUIRE(seen["tensors"].size() == 2 * expected.size());
    auto t = seen["tensors"].begin();
    for (const auto& [entry, sums] : expected) {  // sorted by name, as llama-imatrix writes
        INFO(entry);
        CHECK((*t)["name"] == entry + ".in_sum2");
        CHECK((*t)["type"] == 0);  // F32
        CHECK((*t)["ne"] == nlohmann::json::array({sums.first.size(), 1}));
        const std::vector<float> values = floats_of_hex((*t)["hex"].get<std::string>());
        REQUIRE(values.size() == sums.first.size());
        for (std::size_t j = 0; j < values.size(); ++j) {
            // the test is built at -O1, the binary at -O3: the activations' float rounding may differ
            CHECK(static_cast<double>(values[j]) == Approx(sums.first[j]).epsilon(1e-5));
        }
        ++t;
        CHECK((*t)["name"] == entry + ".counts");
        CHECK((*t)["type"] == 0);
        CHECK((*t)["ne"] == nlohmann::json::array({1, 1}));
        CHECK(floats_of_hex((*t)["hex"].get<std::string>()) == std::vector<float>{static_cast<float>(sums.second)});
        CHECK(sums.second == 3 + 5 + 7 + 9 + 11 + 13);
        ++t;
    }
}

TEST_CASE("prune_layers with given column norms: no batch needed; refused with sparsegpt and reconstruct",
          "[sparsify][imatrix]") {
    const dec::config cfg = dec::config_from_json(prune::io::parse_json(llama_with(1), "cfg"));
    dec::weights w = dec::random_weights(cfg, 4, 0.2f);
    dec::calibration_run model(w, std::vector<dec::sequences>{}, 1);
    sp::calibration_options o;
    std::vector<std::string> asked;
    o.given_norms = [&](const std::string& name, std::size_t columns) {
        asked.push_back(name);
        return std::vector<float>(columns, 1.0f);  // every norm 1: Wanda's scores are |w|
    };
    o.target.group = sp::comparison_group::global;
    SECTION("the global group of norms 1 is global magnitude") {
        const sp::calibration_result given = sp::prune_layers(model, o);
        CHECK(given.tokens == 0);
        CHECK(asked.size() == 7);
        dec::weights again = dec::random_weights(cfg, 4, 0.2f);
        dec::calibration_run magnitude_model(again, std::vector<dec::sequences>{}, 1);
        sp::calibration_options m;
        m.how = sp::method::magnitude;
        m.target.group = sp::comparison_group::global;
        const sp::calibration_result expected = sp::prune_layers(magnitude_model, m);
        REQUIRE(given.linears.size() == expected.linears.size());
        for (std::size_t t = 0; t < given.linears.size(); ++t) CHECK(given.linears[t].mask == expected.linears[t].mask);
        CHECK(w.layers[0].down == again.layers[0].down);
    }
    SECTION("refusals") {
        auto refused = [&](const sp::calibration_options& bad) {
            return sparsify_test::error_of([&] { static_cast<void>(sp::prune_layers(model, bad)); });
        };
        o.how = sp::method::sparsegpt;
        CHECK_THAT(refused(o), Catch::Contains("given column norms with sparsegpt (expected wanda without reconstruct"));
        o.how = sp::method::wanda;
        o.reconstruct = true;
        CHECK_THAT(refused(o), Catch::Contains("given column norms with reconstruct"));
        CHECK(asked.empty());
    }
}
