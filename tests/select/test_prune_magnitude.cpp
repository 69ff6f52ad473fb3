// tests/select/test_prune_magnitude.cpp: the prune-magnitude binary end to end (CLI contract
// of docs/bad-inputs.md) on a tiny BERT written by bert::save_model: the default candidate set, exact
// counts per step, masks equal to prune_global on the same weights, the model zeroed exactly
// where the masks say and every other tensor unchanged, --include/--exclude, --element-mask,
// --data with the search loop, and bad input (exit 2, one line on stderr, no output left).
#include <prune/models/bert/checkpoint.hpp>
#include <prune/importance/scores.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/select.hpp>

#include "../support/shards.hpp"
#include "../support/tiny_bert.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

struct run_result {
    int code;
    std::string err;
};

run_result run(const std::string& args, const fs::path& dir) {
    const fs::path err = dir / "stderr.txt";
    std::string command = PRUNE_BINARY_DIR;
    command += "/bin/prune-magnitude ";
    command += args;
    command += " 2> ";
    command += err.string();
    command += " > /dev/null";
    const int status = std::system(command.c_str());
    std::ifstream f(err);
    std::stringstream s;
    s << f.rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, s.str()};
}

std::string last_line(std::string t) {
    while (!t.empty() && t.back() == '\n') t.pop_back();
    const auto pos = t.rfind('\n');
    return pos == std::string::npos ? t : t.substr(pos + 1);
}

/// No entry of `dir` other than the listed names (no staging debris).
bool only(const fs::path& dir, std::vector<std::string> names) {
    for (const auto& e : fs::directory_iterator(dir)) {
        if (std::find(names.begin(), names.end(), e.path().filename().string()) == names.end()) {
            return false;
        }
    }
    return true;
}

struct fixture {
    fs::path dir;
    prune::bert::weights w;
    fixture() {
        std::string name = "prune_magnitude_cli_";
        name += std::to_string(::getpid());
        dir = fs::temp_directory_path() / name;
        fs::remove_all(dir);
        fs::create_directories(dir);
        // 2 layers x 2 heads, hidden 16, FFN 32, vocab 20, 16 positions, 2 labels.
        w = prune::bert::random_weights(prune_test::small_config(2, 16, 2, 32, 20, 2), 7, 0.1f);
        prune::bert::save_model(w, dir / "model");
        std::ofstream data(dir / "dev.jsonl");
        std::mt19937 rng(3);
        for (int i = 0; i < 40; ++i) {
            prune::io::json row = {{"input_ids", {2, 5 + i % 10, 7, 3 + i % 3}}, {"label", static_cast<int>(rng() % 2)}};
            data << row.dump() << "\n";
        }
    }
    ~fixture() { fs::remove_all(dir); }
};

const std::regex paper_set(
    R"(^bert\.encoder\.layer\.[0-9]+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.(weight|bias)$)");

}  // namespace

TEST_CASE("prune-magnitude prunes the paper's candidates step by step, exactly", "[cli][magnitude]") {
    fixture f;
    const fs::path out = f.dir / "out";
    const auto r = run("--model " + (f.dir / "model").string() + " --amount 0.1 --steps 3 --threads 2 --out " +
                           out.string(),
                       f.dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(only(out, {"masks.safetensors", "model.safetensors", "config.json", "report.json"}));
    CHECK(only(f.dir, {"model", "dev.jsonl", "out", "stderr.txt"}));

    const auto model = prune::io::checkpoint::open(f.dir / "model");
    const auto masks = prune::io::read_element_masks(out / "masks.safetensors");
    // the masks are exactly the paper's set
    std::vector<std::string> expected_names;
    for (const auto& info : model.tensors()) {
        if (std::regex_search(info.name, paper_set)) expected_names.push_back(info.name);
    }
    REQUIRE(expected_names.size() == 2 * 6 * 2);
    REQUIRE(masks.size() == expected_names.size());
    // ... and equal to three prune_global steps on the same weights
    std::vector<std::vector<float>> weights;
    std::vector<prune::score_source> scores;
    std::vector<prune::element_mask> mine;
    weights.reserve(expected_names.size());
    for (const auto& name : expected_names) {
        weights.push_back(model.to_float(name));
        scores.push_back(prune::magnitude(prune::make_view(weights.back().data(), model.info(name).extents())));
        mine.emplace_back(model.info(name).extents());
    }
    std::size_t total = 0;
    for (const auto& m : mine) total += m.size();
    std::size_t expected_pruned = 0;
    for (int s = 0; s < 3; ++s) {
        expected_pruned += prune::count_to_prune(0.1, total - expected_pruned);  // round(0.1 * remaining)
        prune::prune_global(scores, mine, 0.1);
    }
    std::size_t pruned = 0;
    for (std::size_t t = 0; t < expected_names.size(); ++t) {
        const auto& m = masks.at(expected_names[t]);
        CHECK(m == mine[t]);
        pruned += m.count_pruned();
    }
    CHECK(pruned == expected_pruned);

    // the model: masked tensors zeroed exactly where pruned, the rest byte-identical
    const auto pruned_model = prune::io::checkpoint::open(out);
    REQUIRE(pruned_model.tensors().size() == model.tensors().size());
    for (const auto& info : model.tensors()) {
        const auto before = model.to_float(info.name);
        const auto after = pruned_model.to_float(info.name);
        REQUIRE(before.size() == after.size());
        const auto it = masks.find(info.name);
        for (std::size_t i = 0; i < before.size(); ++i) {
            const bool kept = it == masks.end() || it->second.kept(i);
            if (kept) {
                CHECK(std::memcmp(&before[i], &after[i], sizeof(float)) == 0);
            } else {
                CHECK(after[i] == 0.0f);
            }
        }
    }
    // the report
    std::ifstream rf(out / "report.json");
    const auto report = prune::io::json::parse(rf);
    REQUIRE(report["history"].size() == 4);
    CHECK(report["history"][3]["sparsity"].get<double>() ==
          Approx(static_cast<double>(expected_pruned) / static_cast<double>(total)));
    CHECK(report["steps_kept"].get<int>() == 3);
    CHECK(report["kept"].get<std::size_t>() == total - expected_pruned);
    CHECK(report["tensors"].size() == expected_names.size());
}

namespace {

/// The bytes of a file.
std::string file_bytes(const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

/// A Llama-named checkpoint of BF16 weights in two shards (+ index and a norm), seeded.
void write_sharded_bf16(const fs::path& dir) {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 0.05f);
    const std::vector<std::pair<std::string, std::vector<std::size_t>>> tensors = {
        {"model.layers.0.self_attn.q_proj.weight", {24, 16}}, {"model.layers.0.mlp.up_proj.weight", {40, 16}},
        {"model.layers.0.input_layernorm.weight", {16}},      {"model.layers.1.self_attn.q_proj.weight", {24, 16}},
        {"model.layers.1.mlp.down_proj.weight", {16, 40}}};
    std::vector<prune_test::shard_tensor> shards;
    for (std::size_t t = 0; t < tensors.size(); ++t) {
        const auto& [name, shape] = tensors[t];
        std::size_t n = 1;
        for (std::size_t e : shape) n *= e;
        std::vector<float> v(n);
        for (float& x : v) x = normal(rng);
        shards.push_back({name, prune::io::dtype::BF16, shape, prune_test::bf16_bytes(v),
                          t < 3 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"});
    }
    prune_test::write_shards(dir, shards);
    std::ofstream(dir / "config.json") << "{\"model_type\": \"llama\"}";
}

}  // namespace

TEST_CASE("prune-magnitude on a sharded BF16 checkpoint: the same shards back, each file's header kept", "[cli][magnitude]") {
    fixture f;
    write_sharded_bf16(f.dir / "llama");
    const fs::path out = f.dir / "llama-out";
    const std::string candidates = R"('model\.layers\.[0-9]+\.(self_attn|mlp)\.[a-z_]+_proj\.weight$')";
    const auto r = run("--model " + (f.dir / "llama").string() + " --include " + candidates + " --amount 0.5 --steps 2 --threads 2 --out " + out.string(), f.dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(only(out, {"masks.safetensors", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json", "config.json", "report.json"}));
    const auto model = prune::io::checkpoint::open(f.dir / "llama");
    const auto pruned = prune::io::checkpoint::open(out);
    // the masks: two prune_global steps over in-memory BF16 views of the same weights
    std::vector<std::string> names;
    std::vector<prune::score_source> scores;
    std::vector<prune::element_mask> mine;
    for (const auto& info : model.tensors()) {
        if (info.name.find("_proj") == std::string::npos) continue;
        names.push_back(info.name);
        scores.push_back(prune::magnitude(model.view<prune::bfloat16>(info.name)));
        mine.emplace_back(info.extents());
    }
    for (int s = 0; s < 2; ++s) prune::prune_global(scores, mine, 0.5);
    const auto masks = prune::io::read_element_masks(out / "masks.safetensors");
    REQUIRE(masks.size() == names.size());
    for (std::size_t t = 0; t < names.size(); ++t) {
        INFO(names[t]);
        CHECK(masks.at(names[t]) == mine[t]);
        // zeroed exactly where pruned, every kept BF16 bit pattern unchanged
        const auto before = model.view<prune::bfloat16>(names[t]);
        const auto after = pruned.view<prune::bfloat16>(names[t]);
        for (std::size_t i = 0; i < mine[t].size(); ++i) {
            const prune::bfloat16 expected = mine[t].kept(i) ? before.data()[i] : prune::to_bfloat16(0.0f);
            CHECK(std::memcmp(&expected, &after.data()[i], 2) == 0);
        }
    }
    // each shard's header bytes as the input's; the norm (not a candidate) byte-identical
    for (const char* shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
        const std::string a = file_bytes(f.dir / "llama" / shard), b = file_bytes(out / shard);
        REQUIRE(a.size() == b.size());
        const auto data_start = model.files()[shard[10] == '1' ? 0 : 1].data_start();
        CHECK(a.substr(0, data_start) == b.substr(0, data_start));
    }
    CHECK(std::ranges::equal(pruned.bytes("model.layers.0.input_layernorm.weight"), model.bytes("model.layers.0.input_layernorm.weight")));
    CHECK(prune::io::json::parse(file_bytes(out / "model.safetensors.index.json"))["weight_map"] ==
          prune::io::json::parse(file_bytes(f.dir / "llama" / "model.safetensors.index.json"))["weight_map"]);
}

TEST_CASE("prune-magnitude --include / --exclude / --element-mask / --scores", "[cli][magnitude]") {
    fixture f;
    const std::string model = " --model " + (f.dir / "model").string();
    SECTION("--include replaces the candidates") {
        const auto r = run(model + " --include '^classifier\\.' --amount 0.5 --steps 1 --out " + (f.dir / "o").string(),
                           f.dir);
        INFO(r.err);
        REQUIRE(r.code == 0);
        const auto masks = prune::io::read_element_masks(f.dir / "o" / "masks.safetensors");
        REQUIRE(masks.size() == 2);
        // classifier.weight [2, 16] + bias [2] = 34 weights: round(17) = 17 pruned
        CHECK(masks.at("classifier.weight").count_pruned() + masks.at("classifier.bias").count_pruned() == 17);
    }
    SECTION("--exclude trims the default set") {
        const auto r = run(model + " --exclude 'bias$' --steps 2 --out " + (f.dir / "o").string(), f.dir);
        REQUIRE(r.code == 0);
        const auto masks = prune::io::read_element_masks(f.dir / "o" / "masks.safetensors");
        CHECK(masks.size() == 12);
        for (const auto& [name, m] : masks) CHECK(name.find("bias") == std::string::npos);
    }
    SECTION("--element-mask continues from a mask; random and inverted scores prune the same count") {
        REQUIRE(run(model + " --steps 1 --out " + (f.dir / "a").string(), f.dir).code == 0);
        const auto first = prune::io::read_element_masks(f.dir / "a" / "masks.safetensors");
        const auto r = run(model + " --steps 1 --element-mask " + (f.dir / "a" / "masks.safetensors").string() +
                               " --out " + (f.dir / "b").string(),
                           f.dir);
        REQUIRE(r.code == 0);
        const auto second = prune::io::read_element_masks(f.dir / "b" / "masks.safetensors");
        REQUIRE(run(model + " --steps 2 --out " + (f.dir / "c").string(), f.dir).code == 0);
        const auto two_steps = prune::io::read_element_masks(f.dir / "c" / "masks.safetensors");
        CHECK(second == two_steps);  // one step from the one-step mask == two steps
        for (const char* kind : {"random", "inverted"}) {
            REQUIRE(run(model + " --steps 2 --seed 5 --scores " + kind + " --out " + (f.dir / kind).string(), f.dir)
                        .code == 0);
            const auto other = prune::io::read_element_masks(f.dir / kind / "masks.safetensors");
            std::size_t a = 0, b = 0;
            for (const auto& [name, m] : other) a += m.count_pruned();
            for (const auto& [name, m] : two_steps) b += m.count_pruned();
            CHECK(a == b);
            CHECK(other != two_steps);
        }
    }
}

TEST_CASE("prune-magnitude --data runs the search loop with the reference BERT", "[cli][magnitude]") {
    fixture f;
    const std::string common = " --model " + (f.dir / "model").string() + " --data " + (f.dir / "dev.jsonl").string();
    auto r = run(common + " --steps 3 --threshold 0 --out " + (f.dir / "pass").string(), f.dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    std::ifstream pf(f.dir / "pass" / "report.json");
    const auto pass = prune::io::json::parse(pf);
    CHECK(pass["steps_kept"].get<int>() == 3);
    CHECK(pass["history"].size() == 4);
    CHECK(pass["metric_name"].get<std::string>() == "accuracy");
    CHECK(pass["history"][0]["metric"].get<double>() == pass["baseline"].get<double>());
    // an unreachable threshold: the first step fails and the starting (full) masks are kept
    r = run(common + " --steps 3 --threshold 2 --out " + (f.dir / "fail").string(), f.dir);
    REQUIRE(r.code == 0);
    std::ifstream ff(f.dir / "fail" / "report.json");
    const auto fail = prune::io::json::parse(ff);
    CHECK(fail["steps_kept"].get<int>() == 0);
    CHECK(fail["stop"].get<std::string>() == "failed");
    CHECK(fail["history"].size() == 2);
    const auto masks = prune::io::read_element_masks(f.dir / "fail" / "masks.safetensors");
    for (const auto& [name, m] : masks) CHECK(m.count_pruned() == 0);
}

TEST_CASE("prune-magnitude bad input: exit 2, one line, nothing written", "[cli][magnitude][errors]") {
    fixture f;
    const std::string model = " --model " + (f.dir / "model").string();
    const fs::path out = f.dir / "out";
    // a wrong-shape mask file
    {
        prune::io::safetensors_writer writer;
        const std::vector<std::uint8_t> ones(7, 1);
        writer.add_u8("bert.encoder.layer.0.intermediate.dense.weight", {7}, ones);
        writer.write(f.dir / "bad_mask.safetensors");
    }
    const std::vector<std::pair<std::string, std::string>> cases = {
        {model + " --include nothing_matches_this --out " + out.string(), "--include"},
        {model + " --exclude nothing_matches_this --out " + out.string(), "--exclude"},
        {model + " --include '(' --out " + out.string(), "regular expression"},
        {model + " --amount 1.5 --out " + out.string(), "--amount"},
        {model + " --amount nan --out " + out.string(), ""},
        {model + " --element-mask " + (f.dir / "bad_mask.safetensors").string() + " --out " + out.string(), "shape"},
        {" --model " + (f.dir / "missing").string() + " --out " + out.string(), "config.json"},
        {model + " --data " + (f.dir / "missing.jsonl").string() + " --out " + out.string(), ""},
        {model + " --include word_embeddings --include LayerNorm --exclude '.' --out " + out.string(), "every candidate"},
        {model + " --steps 1", "--out"},
    };
    for (const auto& [args, needle] : cases) {
        INFO(args);
        const auto r = run(args, f.dir);
        CHECK(r.code == 2);
        CHECK(r.err.find('\n') == r.err.size() - 1);  // exactly one line
        CHECK(last_line(r.err).find(needle) != std::string::npos);
        CHECK_FALSE(fs::exists(out));
        CHECK(only(f.dir, {"model", "dev.jsonl", "stderr.txt", "bad_mask.safetensors"}));
    }
    // an existing output survives a failed run untouched, and is replaced by a good one
    REQUIRE(run(model + " --steps 1 --out " + out.string(), f.dir).code == 0);
    const auto before = prune::io::read_element_masks(out / "masks.safetensors");
    CHECK(run(model + " --steps 2 --include nothing_matches_this --out " + out.string(), f.dir).code == 2);
    CHECK(prune::io::read_element_masks(out / "masks.safetensors") == before);
    REQUIRE(run(model + " --steps 2 --out " + out.string(), f.dir).code == 0);
    CHECK(prune::io::read_element_masks(out / "masks.safetensors") != before);
    CHECK(only(f.dir, {"model", "dev.jsonl", "stderr.txt", "bad_mask.safetensors", "out"}));
}

TEST_CASE("prune-magnitude refuses a candidate holding NaN or an infinity, in every float dtype", "[cli][magnitude][errors]") {
    fixture f;
    // 300000 elements: the bad one lies past the scan's first block of 2^18 elements
    constexpr std::size_t n = 300000, at = 299999;
    const std::vector<std::pair<std::string, float>> bad = {{"NaN", std::numeric_limits<float>::quiet_NaN()},
                                                             {"an infinity", -std::numeric_limits<float>::infinity()}};
    for (const prune::io::dtype type : {prune::io::dtype::F32, prune::io::dtype::F64, prune::io::dtype::F16, prune::io::dtype::BF16}) {
        for (const auto& [word, value] : bad) {
            INFO(prune::io::dtype_name(type) << " " << word);
            const fs::path dir = f.dir / "nonfinite";
            fs::remove_all(dir);
            fs::create_directories(dir);
            std::ofstream(dir / "config.json") << "{}";
            std::vector<float> v(n, 0.25f);
            v[at] = value;
            std::vector<std::byte> bytes(n * prune::io::dtype_size(type));
            for (std::size_t i = 0; i < n; ++i) {
                const auto put = [&](auto e) { std::memcpy(bytes.data() + i * sizeof(e), &e, sizeof(e)); };
                if (type == prune::io::dtype::F32) put(v[i]);
                else if (type == prune::io::dtype::F64) put(static_cast<double>(v[i]));
                else if (type == prune::io::dtype::F16) put(prune::to_half(v[i]));
                else put(prune::to_bfloat16(v[i]));
            }
            prune::io::safetensors_writer writer;
            writer.add("w", type, {n}, bytes);
            writer.write(dir / "model.safetensors");
            const auto r = run("--model " + dir.string() + " --include '^w$' --out " + (f.dir / "out").string(), f.dir);
            CHECK(r.code == 2);
            CHECK(last_line(r.err) == "prune-magnitude: candidate tensor 'w' holds " + word + " at element 299999 (expected finite weights)");
            CHECK_FALSE(fs::exists(f.dir / "out"));
        }
    }
}
