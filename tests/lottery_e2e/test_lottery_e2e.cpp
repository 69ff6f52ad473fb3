// End-to-end test of the main job: a small WordNet-GLUE suite, a briefly pre-trained tiny BERT,
// then `prune-lottery --quick`; checks the report's structure, that every number comes from
// the run, that the random and bad subnetworks have the good one's size where the definition
// says so, that re-fine-tuned m-pruning subnetworks kept their pruned weights at zero, and the
// CLI contract on bad input.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

const fs::path bin = PRUNE_BIN_DIR;

int run(const std::string& command) {
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

// The run is shared by the test cases: made once.
const fs::path& run_directory() {
    static const fs::path dir = [] {
        const fs::path d = fs::temp_directory_path() / "prune_test_lottery_e2e";
        fs::remove_all(d);
        fs::create_directories(d / "cache");
        // prune-lottery looks for <cache>/wordnet-glue-s<seed>-<train>x<dev>
        const fs::path data = d / "cache" / "wordnet-glue-s5-300x100";
        REQUIRE(run("'" + (bin / "prune-data").string() + "' wordnet --out '" + data.string() +
                    "' --seed 5 --train-rows 300 --dev-rows 100 2>/dev/null") == 0);
        REQUIRE(run("'" + (bin / "prune-pretrain").string() + "' --data '" + data.string() + "' --out '" +
                    (d / "model").string() + "' --steps 20 --seed 5 2>/dev/null") == 0);
        REQUIRE(run("'" + (bin / "prune-lottery").string() + "' --quick --model '" + (d / "model").string() +
                    "' --cache '" + (d / "cache").string() + "' --out '" + (d / "out").string() +
                    "' --data-seed 5 --train-rows 300 --dev-rows 100 --seeds 2 --epochs 1 2>/dev/null") == 0);
        return d;
    }();
    return dir;
}

}  // namespace

TEST_CASE("prune-lottery --quick writes the whole report") {
    const fs::path out = run_directory() / "out";
    for (const char* file : {"report.md", "report.json", "heads-all.svg", "mlps.svg"}) {
        CHECK(fs::file_size(out / file) > 0);
    }
    const auto json = nlohmann::json::parse(read(out / "report.json"));
    REQUIRE(json["tasks"].size() == 3);  // the suite's default tasks
    const std::string md = read(out / "report.md");
    for (const auto& task : json["tasks"]) {
        const std::string name = task["name"];
        CHECK(fs::exists(out / ("heads-" + name + ".svg")));
        CHECK(fs::exists(out / ("m-sparsity-" + name + ".svg")));
        REQUIRE(task["seeds"].size() == 2);
        for (const std::string method : {"s", "m"}) {
            for (const std::string variant : {"good", "random", "bad"}) {
                for (const std::string stage : {"pruned", "refit"}) {
                    const std::string key = method + "." + variant + "." + stage;
                    for (const auto& seed : task["seeds"]) {
                        const double score = seed["scores"][key];  // present and a number
                        CHECK(score >= 0.0);
                        CHECK(score <= 1.0);
                    }
                    // the table shows the mean over seeds of exactly these numbers
                    const double mean = task["summary"][key]["mean"];
                    char text[32];
                    std::snprintf(text, sizeof text, "%.3f", mean);
                    CHECK(md.find(text) != std::string::npos);
                }
            }
        }
    }
    CHECK(md.find("n/a") == std::string::npos);  // nothing missing: no placeholders
    CHECK(md.find("## Findings of the paper") != std::string::npos);
    CHECK(json["findings"].size() == 3);
    CHECK(json["configuration"]["seeds"] == 2);
}

TEST_CASE("random and bad subnetworks have the good one's size where the definition says so") {
    const auto json = nlohmann::json::parse(read(run_directory() / "out" / "report.json"));
    for (const auto& task : json["tasks"]) {
        for (const auto& seed : task["seeds"]) {
            // m-pruning: random and bad prune exactly as many weights as good
            CHECK(seed["pruned_weights"]["random"] == seed["pruned_weights"]["good"]);
            CHECK(seed["pruned_weights"]["bad"] == seed["pruned_weights"]["good"]);
            // s-pruning bad: exactly the good size (REFERENCE.md); random matches only on average
            CHECK(seed["kept_heads"]["bad"] == seed["kept_heads"]["good"]);
            CHECK(seed["kept_mlps"]["bad"] == seed["kept_mlps"]["good"]);
            // the good heads recorded are the ones counted
            std::size_t kept = 0;
            for (const auto& row : seed["heads"]) {
                for (const auto& flag : row) kept += flag.get<int>();
            }
            CHECK(kept == seed["kept_heads"]["good"].get<std::size_t>());
        }
    }
}

TEST_CASE("re-fine-tuned m-pruning subnetworks kept their pruned weights at zero") {
    const auto json = nlohmann::json::parse(read(run_directory() / "out" / "report.json"));
    for (const auto& task : json["tasks"]) {
        for (const auto& seed : task["seeds"]) {
            CHECK(seed["refit_m_zeros_held"] == true);
        }
    }
}

TEST_CASE("prune-lottery: bad input exits 2 with one line and writes nothing") {
    const fs::path d = run_directory();
    const std::string lottery = "'" + (bin / "prune-lottery").string() + "'";
    const fs::path err = d / "stderr.txt";
    CHECK(run(lottery + " --seeds 0 --out '" + (d / "bad1").string() + "' 2>'" + err.string() + "'") == 2);
    CHECK(read(err).find("--seeds") != std::string::npos);
    CHECK(run(lottery + " --train /nonexistent.jsonl --dev /nonexistent.jsonl --out '" + (d / "bad2").string() +
              "' 2>'" + err.string() + "'") == 2);
    CHECK(read(err).find("--model") != std::string::npos);
    CHECK(run(lottery + " --model '" + (d / "model").string() + "' --train /nonexistent.jsonl --dev /x.jsonl --out '" +
              (d / "bad3").string() + "' 2>'" + err.string() + "'") == 2);
    CHECK(run(lottery + " --bogus 2>'" + err.string() + "'") == 2);
    for (const char* name : {"bad1", "bad2", "bad3"}) {
        CHECK_FALSE(fs::exists(d / name));
    }
    CHECK(run(lottery + " --help >/dev/null") == 0);
}
