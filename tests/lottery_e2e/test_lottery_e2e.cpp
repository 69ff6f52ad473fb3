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
#include <stdexcept>
#include <string>

#include <stdlib.h>
#include <sys/wait.h>

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

// A fresh directory from mkdtemp (unique per run, so concurrent runs do not clobber each
// other), removed with everything in it when the process ends (kept when the environment
// sets PRUNE_KEEP_TEST_DIR).
struct unique_directory {
    fs::path path;
    unique_directory() {
        std::string pattern = (fs::temp_directory_path() / "prune_test_lottery_e2e-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
        path = pattern;
    }
    ~unique_directory() {
        std::error_code ec;
        if (std::getenv("PRUNE_KEEP_TEST_DIR") == nullptr) fs::remove_all(path, ec);
    }
    unique_directory(const unique_directory&) = delete;
    unique_directory& operator=(const unique_directory&) = delete;
};

// prune-lottery --quick on the run directory's model and cache, writing `out`, on `threads` threads.
std::string lottery_command(const fs::path& d, const fs::path& out, int threads) {
    return "'" + (bin / "prune-lottery").string() + "' --quick --model '" + (d / "model").string() + "' --cache '" +
           (d / "cache").string() + "' --out '" + out.string() + "' --threads " + std::to_string(threads) +
           " --data-seed 5 --train-rows 300 --dev-rows 100 --seeds 2 --epochs 1 2>/dev/null";
}

// A report without its timings ("seconds", "wall_seconds": the only machine-dependent fields).
nlohmann::json without_timings(nlohmann::json j) {
    if (j.is_object()) {
        j.erase("seconds");
        j.erase("wall_seconds");
        for (auto& [key, value] : j.items()) value = without_timings(value);
    } else if (j.is_array()) {
        for (auto& value : j) value = without_timings(value);
    }
    return j;
}

// The run is shared by the test cases: made once.
const fs::path& run_directory() {
    static const unique_directory holder;
    static const fs::path dir = [] {
        const fs::path d = holder.path;
        fs::create_directories(d / "cache");
        // prune-lottery looks for <cache>/wordnet-glue-s<seed>-<train>x<dev>
        const fs::path data = d / "cache" / "wordnet-glue-s5-300x100";
        REQUIRE(run("'" + (bin / "prune-data").string() + "' wordnet --out '" + data.string() +
                    "' --seed 5 --train-rows 300 --dev-rows 100 2>/dev/null") == 0);
        REQUIRE(run("'" + (bin / "prune-pretrain").string() + "' --data '" + data.string() + "' --out '" +
                    (d / "model").string() + "' --steps 20 --seed 5 2>/dev/null") == 0);
        REQUIRE(run(lottery_command(d, d / "out", 2)) == 0);
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
    // findings 2 and 3: three tests per task over the 2 seeds, the rule stated
    for (std::size_t f = 1; f < 3; ++f) {
        REQUIRE(json["findings"][f]["comparisons"].size() == 9);
        for (const auto& c : json["findings"][f]["comparisons"]) {
            CHECK(c["n_reference"] == 2);
            CHECK(c["n_other"] == 2);
        }
    }
    CHECK(md.find("How the verdicts are decided") != std::string::npos);
}

TEST_CASE("random and bad subnetworks have the good one's size where the definition says so") {
    const auto json = nlohmann::json::parse(read(run_directory() / "out" / "report.json"));
    for (const auto& task : json["tasks"]) {
        for (const auto& seed : task["seeds"]) {
            // m-pruning: random and bad prune exactly as many weights as good
            CHECK(seed["pruned_weights"]["random"] == seed["pruned_weights"]["good"]);
            CHECK(seed["pruned_weights"]["bad"] == seed["pruned_weights"]["good"]);
            // s-pruning bad: exactly the good size (docs/lottery.md); random matches only on average
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
    // A child's failure reaches the user on prune-lottery's last line: prune-data (run with an
    // argument vector since the shell is gone) cannot replace a regular file with its output.
    fs::create_directories(d / "cache-blocked");
    const fs::path blocked = d / "cache-blocked" / "wordnet-glue-s1-400x200";  // --quick: data seed 1, 400 x 200
    std::ofstream(blocked) << "a file where prune-data's output directory goes\n";
    CHECK(run(lottery + " --quick --cache '" + (d / "cache-blocked").string() + "' --out '" + (d / "bad4").string() +
              "' 2>'" + err.string() + "'") == 2);
    std::string last = read(err);
    while (!last.empty() && last.back() == '\n') last.pop_back();
    last = last.substr(last.rfind('\n') + 1);
    CHECK(last == "prune-lottery: prune-data failed (exit 2): prune-data: prune::io: output '" + blocked.string() +
                      "' exists and is not a directory [command: " + (bin / "prune-data").string() + " 'wordnet' '--out=" +
                      blocked.string() + "' '--seed' '1' '--train-rows' '400' '--dev-rows' '200']");
    for (const char* name : {"bad1", "bad2", "bad3", "bad4"}) {
        CHECK_FALSE(fs::exists(d / name));
    }
    CHECK(run(lottery + " --help >/dev/null") == 0);
}

// GLUE's own TSV files through --task: MRPC's columns and its metric (F1 of class 1), the
// majority row scored in that metric. The rows are WordNet-GLUE's pos task relabelled as a
// binary "is it a noun" task, written as MRPC writes its files (Quality, #1 ID, #2 ID, #1 String, #2 String).
TEST_CASE("prune-lottery --task MRPC reads GLUE TSV files and scores by F1") {
    const fs::path d = run_directory();
    const fs::path glue = d / "mrpc";
    fs::create_directories(glue);
    for (const std::string side : {"train", "dev"}) {
        std::ifstream in(d / "cache" / "wordnet-glue-s5-300x100" / "pos" / (side + ".jsonl"));
        std::ofstream out(glue / (side + ".tsv"));
        out << "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
        std::string line;
        int id = 0;
        while (std::getline(in, line)) {
            const auto row = nlohmann::json::parse(line);
            out << (row["label"] == 0 ? 1 : 0) << '\t' << id << '\t' << id + 1 << '\t'
                << row["text"].get<std::string>() << "\tnoun?\n";
            id += 2;
        }
    }
    const std::string lottery = "'" + (bin / "prune-lottery").string() + "' --model '" + (d / "model").string() + "'";
    REQUIRE(run(lottery + " --quick --train '" + (glue / "train.tsv").string() + "' --dev '" + (glue / "dev.tsv").string() +
                "' --task MRPC --seeds 1 --epochs 1 --out '" + (d / "out-mrpc").string() + "' 2>/dev/null") == 0);
    const auto json = nlohmann::json::parse(read(d / "out-mrpc" / "report.json"));
    REQUIRE(json["tasks"].size() == 1);
    const auto& task = json["tasks"][0];
    CHECK(task["name"] == "MRPC");
    CHECK(task["metric"] == "f1");
    // pos is balanced over 4 classes, so "noun" (label 1 here) is the minority: the majority
    // answer (0) never predicts class 1, and its F1 is 0 (accuracy would be 0.75).
    CHECK(task["majority"].get<double>() == 0.0);
    CHECK(read(d / "out-mrpc" / "report.md").find("MRPC (f1)") != std::string::npos);

    // a .tsv without a GLUE task name, and a regression task: exit 2, nothing written
    const fs::path err = d / "stderr-tsv.txt";
    CHECK(run(lottery + " --train '" + (glue / "train.tsv").string() + "' --dev '" + (glue / "dev.tsv").string() +
              "' --task mine --out '" + (d / "bad-tsv1").string() + "' 2>'" + err.string() + "'") == 2);
    CHECK(read(err).find("needs --task naming its GLUE task") != std::string::npos);
    CHECK(run(lottery + " --train '" + (glue / "train.tsv").string() + "' --dev '" + (glue / "dev.tsv").string() +
              "' --task STS-B --out '" + (d / "bad-tsv2").string() + "' 2>'" + err.string() + "'") == 2);
    CHECK(read(err).find("column") != std::string::npos);  // MRPC's file has no STS-B columns
    CHECK(run(lottery + " --train '" + (glue / "train.tsv").string() + "' --dev '" + (glue / "dev.tsv").string() +
              "' --task MRPC --metric pearson --out '" + (d / "bad-tsv3").string() + "' 2>'" + err.string() + "'") == 2);
    for (const char* name : {"bad-tsv1", "bad-tsv2", "bad-tsv3"}) CHECK_FALSE(fs::exists(d / name));
}

// STS-B, GLUE's regression task: its TSV columns, MSE fine-tuning, Pearson as the metric; the
// "majority" row is the train mean, a constant, whose Pearson correlation is 0. The scores are
// the pos task's labels (0-3) as similarity scores.
TEST_CASE("prune-lottery --task STS-B runs a regression task scored by Pearson") {
    const fs::path d = run_directory();
    const fs::path glue = d / "stsb";
    fs::create_directories(glue);
    for (const std::string side : {"train", "dev"}) {
        std::ifstream in(d / "cache" / "wordnet-glue-s5-300x100" / "pos" / (side + ".jsonl"));
        std::ofstream out(glue / (side + ".tsv"));
        out << "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
        std::string line;
        int id = 0;
        while (std::getline(in, line)) {
            const auto row = nlohmann::json::parse(line);
            out << id++ << "\tmain\tx\t2012\t0\tnone\tnone\t" << row["text"].get<std::string>() << "\tword\t"
                << row["label"].get<int>() << ".0\n";
        }
    }
    const std::string lottery = "'" + (bin / "prune-lottery").string() + "' --model '" + (d / "model").string() + "'";
    REQUIRE(run(lottery + " --quick --train '" + (glue / "train.tsv").string() + "' --dev '" + (glue / "dev.tsv").string() +
                "' --task STS-B --seeds 1 --epochs 1 --out '" + (d / "out-stsb").string() + "' 2>/dev/null") == 0);
    const auto json = nlohmann::json::parse(read(d / "out-stsb" / "report.json"));
    const auto& task = json["tasks"][0];
    CHECK(task["metric"] == "pearson");
    CHECK(task["majority"].get<double>() == 0.0);
    const double full = task["seeds"][0]["full"].get<double>();
    CHECK(full >= -1.0);
    CHECK(full <= 1.0);
}

TEST_CASE("the report is the same on 1 thread as on 2, timings aside") {
    const fs::path d = run_directory();
    REQUIRE(run(lottery_command(d, d / "out-1-thread", 1)) == 0);
    const auto two = nlohmann::json::parse(read(d / "out" / "report.json"));
    const auto one = nlohmann::json::parse(read(d / "out-1-thread" / "report.json"));
    CHECK(without_timings(one) == without_timings(two));
    CHECK(read(d / "out-1-thread" / "heads-all.svg") == read(d / "out" / "heads-all.svg"));
}

TEST_CASE("--max-steps caps m-pruning at that many steps, and the report names the cap") {
    const fs::path d = run_directory();
    const fs::path out = d / "out-max-steps";
    std::string command = lottery_command(d, out, 2);
    command.replace(command.find(" --seeds 2"), 10, " --seeds 1 --tasks pos --max-steps 2");
    REQUIRE(run(command) == 0);
    const auto json = nlohmann::json::parse(read(out / "report.json"));
    CHECK(json["configuration"]["m_max_steps"] == 2);
    const auto& history = json["tasks"][0]["seeds"][0]["m_history"];
    REQUIRE(history.size() >= 2);
    CHECK(history.size() <= 3);  // step 0 (the full model) and at most 2 steps
    if (history.back()["passed"].get<bool>()) {
        CHECK(read(out / "report.md").find("at most 2 steps, the paper's 10") != std::string::npos);
    }
}

