// Tests of the prune-eval binary (CLI contract, docs/bad-inputs.md): logits equal PyTorch's on the
// oracle's models; --mask gates; text rows through vocab.txt; every kind of bad input gives
// exit 2, one line on stderr and no output file.
#include <prune/io/json.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

const fs::path work = fs::path(PRUNE_BINARY_DIR) / "tests" / "bert" / "prune_eval_work";

const fs::path& oracle() {
    static const fs::path dir = [] {
        fs::remove_all(work);
        fs::create_directories(work);
        const fs::path d = work / "oracle";
        const std::string command =
            std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/bert/oracle.py " + d.string();
        REQUIRE(std::system(command.c_str()) == 0);
        return d;
    }();
    return dir;
}

struct result {
    int code;
    std::string err;
};

result run(const std::string& args) {
    const fs::path err = work / "stderr.txt";
    const std::string command = std::string(PRUNE_BINARY_DIR) + "/bin/prune-eval " + args + " 2> " + err.string();
    const int status = std::system(command.c_str());
    std::ifstream in(err);
    std::stringstream ss;
    ss << in.rdbuf();
    return {WEXITSTATUS(status), ss.str()};
}

nlohmann::json read(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("prune-eval reproduces torch's logits and gated logits") {
    for (const char* name : {"odd", "regression", "deep"}) {
        const fs::path dir = oracle() / name;
        const auto expected = read(dir / "expected.json");
        const fs::path out = work / (std::string(name) + ".json");
        REQUIRE(run("--model " + dir.string() + " --data " + (dir / "data.jsonl").string() + " --batch-size 3 --json " +
                    out.string()).code == 0);
        auto got = read(out);
        REQUIRE(got["n"] == expected["logits"].size());
        for (std::size_t i = 0; i < got["logits"].size(); ++i)
            for (std::size_t c = 0; c < got["logits"][i].size(); ++c)
                REQUIRE(std::abs(got["logits"][i][c].get<double>() - expected["logits"][i][c].get<double>()) < 1e-4);
        // The same gates as a structure mask file (binary gates only).
        if (std::string(name) != "odd") {
            nlohmann::json mask;
            mask["heads"] = expected["head_gates"];
            mask["mlps"] = expected["mlp_gates"];
            for (auto& row : mask["heads"])
                for (auto& v : row) v = static_cast<int>(v.get<double>());
            for (auto& v : mask["mlps"]) v = static_cast<int>(v.get<double>());
            std::ofstream(work / "mask.json") << mask.dump();
            REQUIRE(run("--model " + dir.string() + " --data " + (dir / "data.jsonl").string() + " --mask " +
                        (work / "mask.json").string() + " --json " + out.string()).code == 0);
            got = read(out);
            for (std::size_t i = 0; i < got["logits"].size(); ++i)
                for (std::size_t c = 0; c < got["logits"][i].size(); ++c)
                    REQUIRE(std::abs(got["logits"][i][c].get<double>() -
                                     expected["gated_logits"][i][c].get<double>()) < 1e-4);
        }
        if (std::string(name) == "regression") {
            REQUIRE(got["accuracy"].is_null());
            REQUIRE(got["metric_name"] == "pearson");
        }
    }
}

TEST_CASE("prune-eval: text rows are tokenized with the model's vocab.txt") {
    const fs::path dir = work / "text_model";
    fs::remove_all(dir);
    fs::copy(oracle() / "odd", dir);
    std::ofstream vocab(dir / "vocab.txt");
    vocab << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\n";
    vocab.close();
    std::ofstream(work / "text.jsonl") << "{\"text\": \"The cat sat\", \"label\": 1}\n"
                                       << "{\"text\": \"the mat\", \"text_pair\": \"on the cat\", \"label\": 0}\n";
    REQUIRE(run("--model " + dir.string() + " --data " + (work / "text.jsonl").string() + " --json " +
                (work / "text.json").string()).code == 0);
    REQUIRE(read(work / "text.json")["n"] == 2);
}

TEST_CASE("prune-eval: bad input exits 2 with one line and writes nothing") {
    const fs::path dir = oracle() / "odd";
    const fs::path out = work / "never.json";
    auto bad_data = [&](const std::string& text, const std::string& expect) {
        std::ofstream(work / "bad.jsonl") << text;
        const auto r = run("--model " + dir.string() + " --data " + (work / "bad.jsonl").string() + " --json " +
                           out.string());
        INFO(r.err);
        REQUIRE(r.code == 2);
        REQUIRE(r.err.find(expect) != std::string::npos);
        REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        REQUIRE_FALSE(fs::exists(out));
    };
    bad_data("{\"input_ids\": [1, 2], \"label\": 0}\n{\"input_ids\": [1, 60], \"label\": 1}\n", ":2");
    std::string long_row = "{\"input_ids\": [1";
    for (int i = 0; i < 24; ++i) long_row += ", 2";
    bad_data(long_row + "], \"label\": 0}\n", "max_position_embeddings");
    bad_data("", "no examples");
    bad_data("{\"input_ids\": [1, 2], \"label\": 0}\n{\"input_ids\": [1, 2], \"label\": 1\n", ":2");
    // A truncated checkpoint and a missing tensor.
    const fs::path broken = work / "broken";
    fs::remove_all(broken);
    fs::copy(dir, broken);
    fs::resize_file(broken / "model.safetensors", fs::file_size(broken / "model.safetensors") / 2);
    auto r = run("--model " + broken.string() + " --data " + (dir / "data.jsonl").string() + " --json " + out.string());
    REQUIRE(r.code == 2);
    REQUIRE_FALSE(fs::exists(out));
    auto cfg = read(dir / "config.json");
    cfg["hidden_size"] = 70;
    fs::remove_all(broken);
    fs::copy(dir, broken);
    std::ofstream(broken / "config.json") << cfg.dump();
    r = run("--model " + broken.string() + " --data " + (dir / "data.jsonl").string() + " --json " + out.string());
    REQUIRE(r.code == 2);
    REQUIRE(r.err.find("not divisible") != std::string::npos);
    REQUIRE_FALSE(fs::exists(out));
    r = run("--model " + dir.string());
    REQUIRE(r.code == 2);
}
