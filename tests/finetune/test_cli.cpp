// Tests of the binaries prune-importance, prune-heads and prune-finetune (the CLI contract of
// DESIGN.md): outputs on a tiny model and data set, exit 2 with a one-line reason on bad input
// (masks of the wrong shape, lr <= 0, labels outside [0, num_labels)), and a mask that prunes
// everything is accepted. The binaries are run from PRUNE_BINARY_DIR/bin.
#include <prune/bert/checkpoint.hpp>
#include <prune/bert/finetune.hpp>
#include <prune/bert/importance.hpp>
#include <prune/io/json.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace prune::bert;

namespace {
struct run_result {
    int code;
    std::string err;
};

run_result run(const std::string& args, const fs::path& dir) {
    const fs::path err = dir / "stderr.txt";
    const std::string command = std::string(PRUNE_BINARY_DIR) + "/bin/" + args + " 2> " + err.string() + " > /dev/null";
    const int status = std::system(command.c_str());
    std::ifstream f(err);
    std::stringstream s;
    s << f.rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, s.str()};
}

// The last line of stderr (progress lines come first).
std::string last_line(const std::string& text) {
    std::string t = text;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    const auto pos = t.rfind('\n');
    return pos == std::string::npos ? t : t.substr(pos + 1);
}

std::vector<labeled_sequence> a_before_b(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<labeled_sequence> data(n);
    for (auto& s : data) {
        const int len = std::uniform_int_distribution<int>(6, 10)(rng);
        s.input_ids.assign(static_cast<std::size_t>(len), 0);
        s.input_ids[0] = 2;
        for (int i = 1; i < len; ++i) s.input_ids[static_cast<std::size_t>(i)] = std::uniform_int_distribution<int>(5, 19)(rng);
        const int pa = std::uniform_int_distribution<int>(1, len - 1)(rng);
        int pb = pa;
        while (pb == pa) pb = std::uniform_int_distribution<int>(1, len - 1)(rng);
        s.input_ids[static_cast<std::size_t>(pa)] = 3;
        s.input_ids[static_cast<std::size_t>(pb)] = 4;
        s.label = pa < pb ? 1 : 0;
    }
    return data;
}

void write_jsonl(const fs::path& path, const std::vector<labeled_sequence>& data) {
    std::ofstream f(path);
    for (const auto& s : data) {
        prune::io::json j = {{"input_ids", s.input_ids}, {"label", static_cast<int>(s.label)}};
        f << j.dump() << "\n";
    }
}

struct fixture {
    fs::path dir;
    std::vector<labeled_sequence> train, dev;
    fixture() {
        dir = fs::temp_directory_path() / ("prune_cli_" + std::to_string(::getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir);
        config c;
        c.vocab_size = 20;
        c.hidden_size = 32;
        c.num_hidden_layers = 2;
        c.num_attention_heads = 4;
        c.intermediate_size = 64;
        c.max_position_embeddings = 16;
        c.num_labels = 2;
        weights w = random_weights(c, 7, 0.1f);
        train = a_before_b(600, 1);
        dev = a_before_b(200, 2);
        finetune_options o;
        o.epochs = 6;
        o.learning_rate = 2e-3;
        o.warmup_fraction = 0.1;
        finetune(w, train, {}, {}, o);
        save_model(w, dir / "model");
        write_jsonl(dir / "train.jsonl", train);
        write_jsonl(dir / "dev.jsonl", dev);
        std::ofstream(dir / "bad_mask.json") << R"({"heads": [[1,1,1],[1,1,1]]})";
        std::ofstream(dir / "none.json") << R"({"heads": [[0,0,0,0],[0,0,0,0]], "mlps": [0,0]})";
        auto bad = train;
        bad[5].label = 2;
        write_jsonl(dir / "bad_labels.jsonl", bad);
    }
    ~fixture() { fs::remove_all(dir); }
};
}  // namespace

TEST_CASE("prune-importance, prune-heads and prune-finetune follow the CLI contract", "[cli]") {
    fixture fx;
    const fs::path& d = fx.dir;
    const std::string model = (d / "model").string(), dev = (d / "dev.jsonl").string(), train = (d / "train.jsonl").string();

    SECTION("prune-importance writes the library's scores") {
        auto r = run("prune-importance --model " + model + " --data " + dev + " --json " + (d / "imp.json").string(), d);
        REQUIRE(r.code == 0);
        prune::io::json j;
        std::ifstream(d / "imp.json") >> j;
        REQUIRE(j["heads"].size() == 2);
        REQUIRE(j["heads"][0].size() == 4);
        REQUIRE(j["mlps"].size() == 2);
        const weights w = load_model(d / "model");
        const auto s = head_importance(w, std::span<const labeled_sequence>(fx.dev), {}, {});
        for (std::size_t l = 0; l < 2; ++l) {
            for (std::size_t h = 0; h < 4; ++h) CHECK(j["heads"][l][h].get<double>() == Approx(s.heads[l][h]).epsilon(1e-4));
            CHECK(j["mlps"][l].get<double>() == Approx(s.mlps[l]).epsilon(1e-4));
        }
        r = run("prune-importance --model " + model + " --data " + dev + " --mask " + (d / "bad_mask.json").string(), d);
        CHECK(r.code == 2);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        r = run("prune-importance --model " + model + " --data " + dev + " --abs sometimes", d);
        CHECK(r.code == 2);
        r = run("prune-importance --model " + model + " --data " + (d / "bad_labels.jsonl").string(), d);
        CHECK(r.code == 2);
        r = run("prune-importance --model " + model + " --data " + dev + " --mask " + (d / "none.json").string() +
                    " --json " + (d / "none_imp.json").string(), d);
        CHECK(r.code == 0);
    }

    SECTION("prune-finetune: bad input exits 2; a mask pruning everything runs") {
        auto r = run("prune-finetune --model " + model + " --train " + train + " --dev " + dev + " --lr 0 --out " +
                         (d / "ft0").string(), d);
        CHECK(r.code == 2);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        CHECK(!fs::exists(d / "ft0"));
        r = run("prune-finetune --model " + model + " --train " + (d / "bad_labels.jsonl").string() + " --dev " + dev +
                    " --out " + (d / "ft1").string(), d);
        CHECK(r.code == 2);
        CHECK(last_line(r.err).find("label") != std::string::npos);
        r = run("prune-finetune --model " + model + " --train " + train + " --dev " + dev + " --mask " +
                    (d / "bad_mask.json").string() + " --out " + (d / "ft2").string(), d);
        CHECK(r.code == 2);
        r = run("prune-finetune --model " + model + " --train " + train + " --dev " + dev + " --epochs 1 --mask " +
                    (d / "none.json").string() + " --json " + (d / "ft3.json").string() + " --out " +
                    (d / "ft3").string(), d);
        CHECK(r.code == 0);
        CHECK(fs::exists(d / "ft3" / "model.safetensors"));
        const weights pruned = load_model(d / "ft3");
        CHECK(pruned.layers[0].heads == 0);
        CHECK(pruned.layers[1].ffn() == 0);
    }

    SECTION("prune-heads writes masks, history and the physically pruned model") {
        auto r = run("prune-heads --model " + model + " --data " + dev + " --out " + (d / "heads").string(), d);
        REQUIRE(r.code == 0);
        prune::io::json masks, history;
        std::ifstream(d / "heads" / "masks.json") >> masks;
        std::ifstream(d / "heads" / "history.json") >> history;
        const weights w = load_model(d / "heads" / "model");
        std::size_t kept = 0;
        for (const auto& row : masks["heads"])
            for (const auto& v : row) kept += v.get<int>();
        std::size_t present = 0;
        for (const auto& L : w.layers) present += static_cast<std::size_t>(L.heads);
        CHECK(present == kept);
        const double baseline = history["baseline"].get<double>();
        for (const auto& rec : history["history"]) {
            CHECK(rec["passed"].get<bool>() == (rec["metric"].get<double>() >= 0.9 * baseline));
        }
        // the pruned model keeps >= 90% of the baseline on the dev set
        CHECK(evaluate(w, std::span<const labeled_sequence>(fx.dev), {}) >= 0.9 * baseline - 1e-9);
        r = run("prune-heads --model " + model + " --data " + dev + " --threshold -1 --out " + (d / "h2").string(), d);
        CHECK(r.code == 2);
    }
}
