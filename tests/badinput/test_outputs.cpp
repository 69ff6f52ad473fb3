// Outputs never destroy inputs (examples/common/outputs.hpp, docs/bad-inputs.md "Outputs never
// destroy inputs"): every one of the nine binaries is given an output (--out, --json, and
// prune-lottery's --cache) that is, contains or lies inside one of its inputs, directly, through
// a symbolic link or through `..`, the root directory, the working directory, or another
// output; each must exit 2 with the exact one-line refusal and leave every file of the fixture
// byte for byte as it was (before any work: the refusals come first, so each run is cheap).
// Then prune-eval's --json is written through a symbolic link (the link stays, its target gets
// the report), to a pipe (/dev/stdout piped to cat), to a regular file behind /dev/stdout and to
// a FIFO, where a rename would have replaced the special file by a regular one.
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/weights.hpp>

#include "../support/files.hpp"
#include "../support/tiny_bert.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>

namespace fs = std::filesystem;

namespace {

using prune_test::last_line;
using prune_test::read_file;
using prune_test::write_file;

/// The fixture: a tiny model, data, a fake WordNet and prune-data directory, a cache, a
/// symbolic link to the model; the binaries run in it.
struct fixture {
    prune_test::temp_dir temp{"prune_outputs"};
    fs::path w = fs::weakly_canonical(temp.path());
    fixture() {
        prune::bert::save_model(prune::bert::random_weights(prune_test::tiny_config(), 7, 0.1f), w / "model");
        std::string rows;
        for (int i = 0; i < 8; ++i) {
            rows += "{\"input_ids\": [2, " + std::to_string(5 + i) + ", 3], \"label\": " + std::to_string(i % 2) + "}\n";
        }
        write_file(w / "dev.jsonl", rows);
        write_file(w / "train.jsonl", rows + rows);
        fs::create_directories(w / "box");
        fs::copy(w / "model", w / "box" / "model2", fs::copy_options::recursive);
        fs::create_directory_symlink("model", w / "link");
        write_file(w / "wn" / "data.noun", "not WordNet, but an input all the same\n");
        write_file(w / "data" / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
        write_file(w / "data" / "pretrain" / "train.txt", "a line\n");
        write_file(w / "cache" / "kept.txt", "what the cache holds\n");
        fs::create_directories(w / "sub");
    }
    /// Every file under the fixture with its bytes (directories as "<dir>").
    std::map<std::string, std::string> contents() const {
        std::map<std::string, std::string> out;
        for (auto it = fs::recursive_directory_iterator(w); it != fs::recursive_directory_iterator(); ++it) {
            const auto& e = *it;
            if (e.path().filename() == "stderr.txt") continue;
            out[e.path().string()] = e.is_symlink()        ? "-> " + fs::read_symlink(e.path()).string()
                                     : e.is_regular_file() ? read_file(e.path())
                                                           : "<dir>";
        }
        return out;
    }
    prune_test::outcome run(const std::string& command) const {
        return prune_test::run_binary(command, w, w / "stderr.txt", "OPENBLAS_NUM_THREADS=1");
    }
};

std::string substitute(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
    }
    return s;
}

struct refusal {
    std::string command;  ///< run in the fixture; {w} is its absolute path
    std::string message;  ///< the exact last line of stderr; {w} as above
};

const std::string destroy = " (expected an output apart from every input: writing it would destroy the input)";
const std::string separate = " (expected separate outputs: one would replace the other)";
const std::string root = " is the root directory (expected a new or replaceable file or directory)";
const std::string cwd = " is or contains the working directory '{w}' (expected an output outside it or below it)";

// Per binary: the same path, through a symlink, through `..`, contains, inside, root, cwd, two outputs.
const std::vector<refusal> refusals = {
    {"prune-eval --model model --data dev.jsonl --json dev.jsonl",
     "prune-eval: --json 'dev.jsonl' is the same path as --data 'dev.jsonl'" + destroy},
    {"prune-eval --model model --data dev.jsonl --json link/config.json",
     "prune-eval: --json 'link/config.json' (resolves to '{w}/model/config.json') is inside --model 'model'" + destroy},
    {"prune-eval --model model --data dev.jsonl --json sub/../dev.jsonl",
     "prune-eval: --json 'sub/../dev.jsonl' is the same path as --data 'dev.jsonl'" + destroy},
    {"prune-eval --model model --data dev.jsonl --json /", "prune-eval: --json '/'" + root},
    {"prune-importance --model link --data dev.jsonl --json model/scores.json",
     "prune-importance: --json 'model/scores.json' is inside --model 'link' (resolves to '{w}/model')" + destroy},
    {"prune-importance --model model --data dev.jsonl --json {w}/sub/..",
     "prune-importance: --json '{w}/sub/..'" + cwd},
    {"prune-finetune --model model --train train.jsonl --dev dev.jsonl --out model",
     "prune-finetune: --out 'model' is the same path as --model 'model'" + destroy},
    {"prune-finetune --model box/model2 --train train.jsonl --dev dev.jsonl --out box",
     "prune-finetune: --out 'box' contains --model 'box/model2'" + destroy},
    {"prune-finetune --model model --train train.jsonl --dev dev.jsonl --out out --json out/report.json",
     "prune-finetune: --out 'out' contains --json 'out/report.json'" + separate},
    {"prune-finetune --model model --train train.jsonl --dev box/../train.jsonl --out {w}/sub/x --json train.jsonl",
     "prune-finetune: --json 'train.jsonl' is the same path as --train 'train.jsonl'" + destroy},
    {"prune-heads --model model --data dev.jsonl --out link",
     "prune-heads: --out 'link' (resolves to '{w}/model') is the same path as --model 'model'" + destroy},
    {"prune-heads --model model --data dev.jsonl --out /", "prune-heads: --out '/'" + root},
    {"prune-heads --model model --data dev.jsonl --out {w}", "prune-heads: --out '{w}'" + cwd},
    {"prune-magnitude --model model --steps 1 --out model/pruned",
     "prune-magnitude: --out 'model/pruned' is inside --model 'model'" + destroy},
    {"prune-magnitude --model model --steps 1 --out //", "prune-magnitude: --out '//'" + root},
    {"prune-magnitude --model model --steps 1 --data dev.jsonl --out ..", "prune-magnitude: --out '..'" + cwd},
    {"prune-data wordnet --wordnet-dir wn --out wn",
     "prune-data: --out 'wn' is the same path as --wordnet-dir 'wn'" + destroy},
    {"prune-data wordnet --wordnet-dir sub/../wn/ --out .", "prune-data: --out '.'" + cwd},
    {"prune-data wordnet --out /", "prune-data: --out '/'" + root},
    {"prune-pretrain --data data --steps 1 --out data",
     "prune-pretrain: --out 'data' is the same path as --data 'data'" + destroy},
    {"prune-pretrain --data data --steps 1 --out data/pretrain/model",
     "prune-pretrain: --out 'data/pretrain/model' is inside --data 'data'" + destroy},
    {"prune-pretrain --data data --steps 1 --out /", "prune-pretrain: --out '/'" + root},
    {"prune-lottery --quick --cache cache --out cache/out",
     "prune-lottery: --out 'cache/out' is inside --cache 'cache'" + destroy},
    {"prune-lottery --quick --cache out2/cache --out out2",
     "prune-lottery: --out 'out2' contains --cache 'out2/cache'" + destroy},
    {"prune-lottery --model model --train dev.jsonl --dev dev.jsonl --out link",
     "prune-lottery: --out 'link' (resolves to '{w}/model') is the same path as --model 'model'" + destroy},
    {"prune-lottery --quick --out /", "prune-lottery: --out '/'" + root},
    {"prune-sparsify --model model --calib dev.jsonl --method wanda --sparsity 0.5 --out dev.jsonl",
     "prune-sparsify: --out 'dev.jsonl' is the same path as --calib 'dev.jsonl'" + destroy},
    {"prune-sparsify --model model --calib dev.jsonl --method wanda --nm 2:4 --eval dev.jsonl --out sub/../model",
     "prune-sparsify: --out 'sub/../model' is the same path as --model 'model'" + destroy},
    {"prune-sparsify --model model --method magnitude --sparsity 0.5 --out .", "prune-sparsify: --out '.'" + cwd},
    {"prune-compact --model model --remove-layers 0 --out model/small",
     "prune-compact: --out 'model/small' is inside --model 'model'" + destroy},
    {"prune-llm --quick --cache cache --out cache/llm", "prune-llm: --out 'cache/llm' is inside --cache 'cache'" + destroy},
    {"prune-convert --model model --out model/model.gguf",
     "prune-convert: --out 'model/model.gguf' is inside --model 'model'" + destroy},
};

}  // namespace

TEST_CASE("every binary refuses an output that is, contains or lies inside an input, and changes nothing") {
    const fixture fx;
    const std::string w = fx.w.string();
    std::set<std::string> binaries;
    for (const refusal& r : refusals) {
        const std::string command = substitute(r.command, "{w}", w);
        INFO(command);
        const auto before = fx.contents();
        const auto o = fx.run(command);
        CHECK(o.code == 2);
        CHECK(last_line(o.err) == substitute(r.message, "{w}", w));
        CHECK(fx.contents() == before);  // nothing replaced, nothing written, no staging debris
        binaries.insert(command.substr(0, command.find(' ')));
    }
    CHECK(binaries.size() == 12);  // every binary that writes (all but prune-generate) tried
}

TEST_CASE("prune-eval --json writes through a symbolic link, to a pipe, behind /dev/stdout and to a FIFO") {
    const fixture fx;
    const std::string eval = "prune-eval --model model --data dev.jsonl";
    auto n_of = [&](const std::string& file) { return nlohmann::json::parse(read_file(fx.w / file)).at("n").get<int>(); };

    write_file(fx.w / "real.json", "old\n");
    fs::create_symlink("real.json", fx.w / "jlink");
    REQUIRE(fx.run(eval + " --json jlink").code == 0);
    CHECK(fs::is_symlink(fx.w / "jlink"));  // the link stays a link
    CHECK(n_of("real.json") == 8);          // its target holds the report

    // /dev/stdout is a pipe here (piped to cat): written in place; the binary's exit code kept in rc.
    const std::string bin = std::string(PRUNE_BINARY_DIR) + "/bin/";
    const std::string piped = "cd '" + fx.w.string() + "' && (OPENBLAS_NUM_THREADS=1 " + bin + eval +
                              " --json /dev/stdout 2>/dev/null; echo $? > rc) | cat > piped.json";
    REQUIRE(std::system(piped.c_str()) == 0);
    CHECK(read_file(fx.w / "rc") == "0\n");
    CHECK(n_of("piped.json") == 8);

    // /dev/stdout redirected to a regular file: the file holds the report.
    const std::string redirected = "cd '" + fx.w.string() + "' && OPENBLAS_NUM_THREADS=1 " + bin + eval +
                                   " --json /dev/stdout 2>/dev/null > redirected.json";
    REQUIRE(std::system(redirected.c_str()) == 0);
    CHECK(n_of("redirected.json") == 8);

    // A FIFO with a reader: written in place, still a FIFO afterwards.
    REQUIRE(::mkfifo((fx.w / "fifo").c_str(), 0600) == 0);
    const std::string fifo = "cd '" + fx.w.string() + "' && { timeout 60 cat fifo > from-fifo.json & OPENBLAS_NUM_THREADS=1 " +
                             bin + eval + " --json fifo 2>/dev/null; rc=$?; wait; exit $rc; }";
    REQUIRE(std::system(fifo.c_str()) == 0);
    CHECK(n_of("from-fifo.json") == 8);
    CHECK(fs::is_fifo(fx.w / "fifo"));
}
