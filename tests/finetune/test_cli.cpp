// Tests of the binaries prune-importance, prune-heads and prune-finetune (the CLI contract of
// docs/bad-inputs.md): outputs on a tiny model and data set, exit 2 with a one-line reason on bad input
// (masks of the wrong shape, lr <= 0, labels outside [0, num_labels)), and a mask that prunes
// everything is accepted. The binaries are run from PRUNE_BINARY_DIR/bin.
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/finetune.hpp>
#include <prune/models/bert/importance.hpp>
#include <prune/io/json.hpp>

#include "../support/files.hpp"
#include "../support/tiny_bert.hpp"

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
using prune_test::last_line;

prune_test::outcome run(const std::string& args, const fs::path& dir) {
    return prune_test::run_binary(args, dir, dir / "stderr.txt");
}

std::vector<labeled_sequence> a_before_b(std::size_t n, unsigned seed) {
    return prune_test::a_before_b<labeled_sequence>(n, seed);
}

void write_jsonl(const fs::path& path, const std::vector<labeled_sequence>& data) {
    std::ofstream f(path);
    for (const auto& s : data) {
        prune::io::json j = {{"input_ids", s.input_ids}, {"label", static_cast<int>(s.label)}};
        f << j.dump() << "\n";
    }
}

struct fixture {
    prune_test::temp_dir temp{"prune_cli"};
    fs::path dir = temp.path();
    std::vector<labeled_sequence> train, dev;
    fixture() {
        weights w = random_weights(prune_test::tiny_config(), 7, 0.1f);
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
