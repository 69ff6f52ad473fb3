// The PyTorch oracle: tests/bert/oracle.py builds BERT from torch's own building blocks with
// random weights and writes HF model directories, padded JSONL batches and torch's logits
// (with and without head/MLP gates, F32/F16/BF16 checkpoints). Our logits must match within
// 1e-4. Also: physically pruned models saved and loaded back give the gated logits; saving
// F16/BF16 rounds exactly; bad checkpoints are format_errors naming the tensor.
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/pruning.hpp>
#include <prune/data/jsonl.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace prune::bert;
namespace fs = std::filesystem;

namespace {

const fs::path& oracle_dir() {
    static const fs::path dir = [] {
        const fs::path d = fs::path(PRUNE_BINARY_DIR) / "tests" / "bert" / "oracle_out";
        fs::remove_all(d);
        const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR +
                                    "/tests/bert/oracle.py " + d.string();
        REQUIRE(std::system(command.c_str()) == 0);
        return d;
    }();
    return dir;
}

packed_batch read_batch(const fs::path& file, const config& cfg) {
    prune::data::data_options opt;
    opt.num_labels = static_cast<std::size_t>(cfg.num_labels);
    const auto data = prune::data::read_jsonl(file, opt);
    packed_batch batch;
    for (const auto& e : data.examples) {
        batch.add(e.input_ids, e.token_type_ids, e.attention_mask);
    }
    return batch;
}

nlohmann::json read_json(const fs::path& file) {
    std::ifstream in(file);
    return nlohmann::json::parse(in);
}

gates gates_of(const nlohmann::json& expected) {
    gates g;
    g.heads = expected["head_gates"].get<std::vector<std::vector<float>>>();
    g.mlps = expected["mlp_gates"].get<std::vector<float>>();
    return g;
}

double max_diff(const Eigen::Map<const matrix>& got, const nlohmann::json& want) {
    REQUIRE(static_cast<std::size_t>(got.rows()) == want.size());
    double worst = 0;
    for (Eigen::Index b = 0; b < got.rows(); ++b) {
        REQUIRE(static_cast<std::size_t>(got.cols()) == want[static_cast<std::size_t>(b)].size());
        for (Eigen::Index c = 0; c < got.cols(); ++c) {
            worst = std::max(worst, std::abs(static_cast<double>(got(b, c)) -
                                             want[static_cast<std::size_t>(b)][static_cast<std::size_t>(c)].get<double>()));
        }
    }
    return worst;
}

}  // namespace

TEST_CASE("logits match PyTorch within 1e-4, with and without gates, F32/F16/BF16 checkpoints") {
    for (const char* name : {"odd", "single", "regression", "deep"}) {
        for (const char* suffix : {"", "_f16", "_bf16"}) {
            const fs::path dir = oracle_dir() / (std::string(name) + suffix);
            INFO(dir.string());
            const weights w = load_model(dir);
            const auto expected = read_json(dir / "expected.json");
            const packed_batch batch = read_batch(dir / "data.jsonl", w.cfg);
            for (int threads : {1, 2}) {
                workspace ws(threads);
                CHECK(max_diff(classify(w, batch, ws), expected["logits"]) < 1e-4);
                const gates g = gates_of(expected);
                forward_options opt;
                opt.gate = &g;
                CHECK(max_diff(classify(w, batch, ws, opt), expected["gated_logits"]) < 1e-4);
                opt.cls_only = false;
                CHECK(max_diff(classify(w, batch, ws, opt), expected["gated_logits"]) < 1e-4);
            }
        }
    }
}

TEST_CASE("pruned models saved as HF directories load back and give the gated logits") {
    for (const char* name : {"single", "regression", "deep"}) {
        const fs::path dir = oracle_dir() / name;
        INFO(name);
        const weights full = load_model(dir);
        const auto expected = read_json(dir / "expected.json");
        const gates g = gates_of(expected);
        const packed_batch batch = read_batch(dir / "data.jsonl", full.cfg);
        workspace ws(2);
        forward_options opt;
        opt.gate = &g;
        const matrix gated = classify(full, batch, ws, opt);

        prune::structure_mask mask{prune::group_mask::uniform(full.layers.size(), static_cast<std::size_t>(full.cfg.num_attention_heads)),
                                   prune::group_mask::uniform(full.layers.size(), 1)};
        for (std::size_t l = 0; l < full.layers.size(); ++l) {
            for (std::size_t h = 0; h < g.heads[l].size(); ++h) mask.heads.set(l, h, g.heads[l][h] != 0.0f);
            mask.mlps.set(l, 0, g.mlps[l] != 0.0f);
        }
        weights pruned = full;
        prune_structure(pruned, mask);
        const fs::path out = oracle_dir() / (std::string(name) + "_pruned");
        fs::remove_all(out);
        std::ofstream(dir / "vocab.txt") << "[PAD]\n[UNK]\n";
        save_options so;
        so.copy_vocab_from = dir;
        save_model(pruned, out, so);
        REQUIRE(fs::exists(out / "vocab.txt"));
        const auto cfg_json = read_json(out / "config.json");
        REQUIRE(cfg_json.contains("pruned_heads"));
        REQUIRE(cfg_json.contains("pruned_mlps"));
        const weights back = load_model(out);
        REQUIRE(back.cfg.pruned_heads == pruned.cfg.pruned_heads);
        REQUIRE(back.cfg.pruned_mlps == pruned.cfg.pruned_mlps);
        REQUIRE(back.parameter_count() == pruned.parameter_count());
        REQUIRE(back.parameter_count() < full.parameter_count());
        const matrix physical = classify(back, batch, ws);
        REQUIRE((physical - gated).cwiseAbs().maxCoeff() < 1e-5f);
        CHECK(max_diff(classify(back, batch, ws), expected["gated_logits"]) < 1e-4);
    }
}

TEST_CASE("saving F16 / BF16 rounds every weight exactly and loads back") {
    const weights w = load_model(oracle_dir() / "odd");
    for (auto type : {prune::io::dtype::F16, prune::io::dtype::BF16}) {
        const fs::path out = oracle_dir() / (std::string("odd_saved_") + prune::io::dtype_name(type));
        fs::remove_all(out);
        save_options so;
        so.dtype = type;
        save_model(w, out, so);
        weights back = load_model(out);
        auto a = parameters(const_cast<weights&>(w));
        auto b = parameters(back);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            REQUIRE(a[i].name == b[i].name);
            for (std::size_t j = 0; j < a[i].size(); ++j) {
                const float want = type == prune::io::dtype::F16 ? prune::to_float(prune::to_half(a[i].data[j]))
                                                                 : prune::to_float(prune::to_bfloat16(a[i].data[j]));
                REQUIRE(b[i].data[j] == want);
            }
        }
    }
}

TEST_CASE("bad checkpoints are format errors naming the tensor and the expected shape") {
    const fs::path src = oracle_dir() / "odd";
    const fs::path bad = oracle_dir() / "bad";
    auto fresh = [&] {
        fs::remove_all(bad);
        fs::create_directories(bad);
        fs::copy_file(src / "config.json", bad / "config.json");
        fs::copy_file(src / "model.safetensors", bad / "model.safetensors");
    };
    // Truncated file.
    fresh();
    fs::resize_file(bad / "model.safetensors", fs::file_size(bad / "model.safetensors") - 100);
    REQUIRE_THROWS_AS(load_model(bad), prune::format_error);
    // A config whose intermediate size disagrees with the tensors.
    fresh();
    auto cfg = read_json(src / "config.json");
    cfg["intermediate_size"] = 101;
    std::ofstream(bad / "config.json") << cfg.dump();
    REQUIRE_THROWS_WITH(load_model(bad), Catch::Contains("bert.encoder.layer.0.intermediate.dense.weight") &&
                                             Catch::Contains("[101, 72]"));
    // hidden_size not divisible by the heads.
    cfg["intermediate_size"] = 100;
    cfg["num_attention_heads"] = 5;
    std::ofstream(bad / "config.json") << cfg.dump();
    REQUIRE_THROWS_WITH(load_model(bad), Catch::Contains("not divisible"));
    // A missing tensor.
    fresh();
    {
        const auto ckpt = prune::io::checkpoint::open(src);
        prune::io::safetensors_writer writer;
        for (const auto& info : ckpt.tensors()) {
            if (info.name != "bert.encoder.layer.0.attention.self.key.bias") {
                writer.add(info.name, ckpt.view<float>(info.name));
            }
        }
        writer.write(bad / "model.safetensors");
    }
    REQUIRE_THROWS_WITH(load_model(bad), Catch::Contains("missing tensor 'bert.encoder.layer.0.attention.self.key.bias'") &&
                                             Catch::Contains("[72]"));
    fs::remove_all(bad);
}
