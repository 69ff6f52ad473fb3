// No path or user string reaches a shell (docs/bad-inputs.md, "Paths are never shell code").
// prune-lottery starts prune-data and prune-pretrain; these tests copy prune-lottery into a
// scratch directory beside fake prune-data / prune-pretrain scripts (it runs the siblings of
// its own executable), then give it a --cache path full of shell metacharacters: a single
// quote, `;`, `$(...)`, backticks, spaces and a newline. The fakes record the argument vector
// they received; the test checks it holds the path as one intact argument and that none of the
// embedded `touch` commands ran. A further test SIGTERMs prune-lottery while its child runs and
// checks that the child is stopped too (it used to keep running and write into the cache).
// The last test runs every binary with every path flag (inputs and outputs) inside a directory
// whose name holds those metacharacters, and checks that each run works and no shell ran.
#include "../support/files.hpp"
#include "../support/tiny_bert.hpp"

#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/text/bpe_trainer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

using prune_test::read_file;
using prune_test::write_file;

/// Starts `argv` (argv[0] a path) in `cwd` without a shell, stdout to /dev/null, stderr to `err`.
pid_t start(const std::vector<std::string>& argv, const fs::path& cwd, const fs::path& err) {
    std::vector<std::string> storage = argv;
    std::vector<char*> pointers;
    for (auto& s : storage) pointers.push_back(s.data());
    pointers.push_back(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::chdir(cwd.c_str()) != 0) ::_exit(126);
        const int null = ::open("/dev/null", O_WRONLY);
        const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (null < 0 || e < 0) ::_exit(126);
        ::dup2(null, 1);
        ::dup2(e, 2);
        ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
        ::execv(pointers[0], pointers.data());
        ::_exit(127);
    }
    return pid;
}

/// Waits for `pid`; its exit code, or -signal when a signal ended it.
int finish(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/// True while `pid` exists and is not a zombie.
bool alive(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return false;
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

/// A scratch directory with a copy of prune-lottery and fake siblings.
struct scratch {
    prune_test::temp_dir dir{"prune_no_shell"};
    fs::path bin = dir.path() / "bin";
    fs::path work = dir.path() / "work";
    fs::path args = dir.path() / "args.txt";  // where a fake writes its argument vector, one per line

    scratch() {
        fs::create_directories(bin);
        fs::create_directories(work);
        fs::copy_file(fs::path(PRUNE_BINARY_DIR) / "bin" / "prune-lottery", bin / "prune-lottery");
        fs::permissions(bin / "prune-lottery", fs::perms::owner_all, fs::perm_options::add);
    }
    /// Installs the fake `name` running `body` after recording its arguments to args.txt.
    void fake(const std::string& name, const std::string& body) {
        write_file(bin / name, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '" + args.string() +
                                   "'\n" + body + "\n");
        fs::permissions(bin / name, fs::perms::owner_all, fs::perm_options::add);
    }
};

/// Splits text into lines (a trailing newline ends the last line).
std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::string line;
    for (const char c : text) {
        if (c == '\n') {
            out.push_back(line);
            line.clear();
        } else {
            line += c;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("prune-lottery passes a --cache full of shell metacharacters to prune-data as one argument") {
    scratch s;
    const fs::path pwned = s.dir.path() / "PWNED";
    // Every way a shell would run the embedded command; no newline, so that args.txt stays one line per argument.
    const std::string cache = (s.work / "c'; touch PWNED; ' $(touch PWNED) `touch PWNED` \"; touch PWNED\" x").string();
    s.fake("prune-data", "exit 3");
    const pid_t pid = start({(s.bin / "prune-lottery").string(), "--quick", "--cache", cache, "--out", "out"},
                            s.dir.path(), s.dir.path() / "err.txt");
    const int code = finish(pid);
    const std::string err = read_file(s.dir.path() / "err.txt");
    INFO(err);
    CHECK(code == 2);
    CHECK(prune_test::last_line(err).rfind("prune-lottery: prune-data failed (exit 3): ", 0) == 0);
    const auto got = lines(read_file(s.args));
    const std::vector<std::string> expected = {"wordnet", "--out=" + cache + "/wordnet-glue-s1-400x200", "--seed", "1",
                                               "--train-rows", "400", "--dev-rows", "200"};
    CHECK(got == expected);
    CHECK(!fs::exists(pwned));
    CHECK(!fs::exists(s.work / "PWNED"));
    CHECK(!fs::exists(s.dir.path() / "out"));
}

TEST_CASE("prune-lottery passes --cache and --data-seed to prune-pretrain as arguments, never to a shell") {
    scratch s;
    // Relative and starting with '-': passed on as --data=VALUE / --out=VALUE, never read as a flag.
    const std::string cache = "-c $(touch PWNED);'`touch PWNED`'";
    // The fake prune-data makes a suite with the quick run's tasks (what the lottery checks before pre-training).
    s.fake("prune-data",
           "out=${2#--out=}\nfor t in supersense pos concrete hypernym same_supersense cohyponym example_match same_pos; "
           "do mkdir -p -- \"$out/$t\" && : > \"$out/$t/train.jsonl\" && : > \"$out/$t/dev.jsonl\"; done\n"
           ": > \"$out/stats.json\"\nexit 0");
    const fs::path pretrain_args = s.dir.path() / "pretrain-args.txt";
    write_file(s.bin / "prune-pretrain", "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '" +
                                             pretrain_args.string() + "'\nexit 4\n");
    fs::permissions(s.bin / "prune-pretrain", fs::perms::owner_all, fs::perm_options::add);
    const pid_t pid = start({(s.bin / "prune-lottery").string(), "--quick", "--cache=" + cache, "--out", "out"},
                            s.dir.path(), s.dir.path() / "err.txt");
    const int code = finish(pid);
    const std::string err = read_file(s.dir.path() / "err.txt");
    INFO(err);
    CHECK(code == 2);
    CHECK(prune_test::last_line(err).rfind("prune-lottery: prune-pretrain failed (exit 4): ", 0) == 0);
    const std::vector<std::string> expected = {"--data=" + cache + "/wordnet-glue-s1-400x200",
                                               "--out=" + cache + "/tiny-bert-quick-330steps-s1",
                                               "--seed",
                                               "1",
                                               "--steps",
                                               "330"};
    CHECK(lines(read_file(pretrain_args)) == expected);
    CHECK(fs::exists(s.dir.path() / cache / "wordnet-glue-s1-400x200" / "stats.json"));  // the fake ran with that path
    CHECK(!fs::exists(s.work / "PWNED"));
    CHECK(!fs::exists(s.dir.path() / "PWNED"));
    CHECK(!fs::exists(s.dir.path() / "out"));
}

TEST_CASE("a SIGTERM to prune-lottery stops the prune-data it started") {
    scratch s;
    const fs::path pid_file = s.dir.path() / "child.pid";
    // exec keeps the pid: the recorded pid is the sleeping process itself.
    s.fake("prune-data", "echo $$ > '" + pid_file.string() + ".tmp' && mv '" + pid_file.string() + ".tmp' '" +
                             pid_file.string() + "'\nexec sleep 60");
    const pid_t pid = start({(s.bin / "prune-lottery").string(), "--quick", "--cache", (s.work / "cache").string(),
                             "--out", "out"},
                            s.dir.path(), s.dir.path() / "err.txt");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(pid_file) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(fs::exists(pid_file));
    const pid_t child = static_cast<pid_t>(std::stol(read_file(pid_file)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the shell exec sleep
    REQUIRE(alive(child));
    ::kill(pid, SIGTERM);
    CHECK(finish(pid) == -SIGTERM);
    bool stopped = false;
    for (int i = 0; i < 250 && !stopped; ++i) {  // up to 5 s
        stopped = !alive(child);
        if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!stopped) ::kill(child, SIGKILL);
    CHECK(stopped);
}

namespace {

/// A directory name holding every shell metacharacter a path can: a quote, `;`, `$(...)`,
/// backticks, `&`, `|`, `>`, spaces, a newline. If any binary passed a path to a shell, the
/// embedded `touch` would create a canary file.
const std::string metachars = "a'b; touch canary1 $(touch canary2) `touch canary3` & touch canary4 | x > y\nz";

/// The canaries a shell would have created, anywhere under `dir` or in its parent.
bool canary_anywhere(const fs::path& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.path().filename().string().rfind("canary", 0) == 0) return true;
    }
    for (const auto& e : fs::directory_iterator(dir.parent_path())) {
        if (e.path().filename().string().rfind("canary", 0) == 0) return true;
    }
    return false;
}

/// Inputs for every binary inside the metacharacter directory `m`: a tiny BERT and its data, a
/// tiny Llama with a byte-level BPE tokenizer and its data, a prune-data-like directory.
void make_inputs(const fs::path& m) {
    prune::bert::save_model(prune::bert::random_weights(prune_test::tiny_config(), 7, 0.1f), m / "model");
    std::string rows;
    for (int i = 0; i < 8; ++i) {
        rows += "{\"input_ids\": [2, " + std::to_string(5 + i) + ", 3], \"label\": " + std::to_string(i % 2) + "}\n";
    }
    write_file(m / "dev.jsonl", rows);
    write_file(m / "train.jsonl", rows + rows);
    const prune::decoder::config cfg = prune::decoder::config_from_json(prune::io::parse_json(
        R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 16})",
        "lm config"));
    prune::decoder::save_model(prune::decoder::random_weights(cfg, 3, 0.1f), m / "lm");
    const std::string text = "the cat sat on the mat and the dog sat on the log by the cat.\n";
    prune::text::bpe_trainer_options o;
    o.vocab_size = 50;
    o.min_frequency = 1;
    o.full_alphabet = false;
    prune::text::bpe_trainer t(o);
    t.add_text(text);
    t.save(t.train(), m / "lm" / "tokenizer.json");
    write_file(m / "lm.txt", text + text);
    write_file(m / "lm.jsonl", "{\"input_ids\": [1, 2, 3, 4, 5]}\n{\"input_ids\": [6, 7, 8]}\n");
    write_file(m / "data" / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\n");
    write_file(m / "data" / "pretrain" / "train.txt", "the cat sat\nthe cat\n");
    write_file(m / "data" / "pretrain" / "dev.txt", "the cat sat\n");
}

}  // namespace

TEST_CASE("every path flag of every binary takes shell metacharacters as plain bytes") {
    prune_test::temp_dir dir{"prune_no_shell_paths"};
    const fs::path work = dir.path() / "work";
    const fs::path m = work / metachars;
    fs::create_directories(m);
    make_inputs(m);
    const std::string M = m.string() + "/";
    const fs::path bin = fs::path(PRUNE_BINARY_DIR) / "bin";
    struct run_case {
        std::vector<std::string> argv;
        std::vector<std::string> outputs;  // what must exist afterwards (inside m)
    };
    std::vector<run_case> cases = {
        {{"prune-eval", "--model", M + "model", "--data", M + "dev.jsonl", "--json", M + "eval.json"}, {"eval.json"}},
        {{"prune-eval", "--model", M + "lm", "--data", M + "lm.txt", "--context", "8", "--json", M + "ppl.json"}, {"ppl.json"}},
        {{"prune-importance", "--model", M + "model", "--data", M + "dev.jsonl", "--json", M + "imp.json"}, {"imp.json"}},
        {{"prune-importance", "--model", M + "lm", "--data", M + "lm.jsonl", "--json", M + "lm-imp.json"}, {"lm-imp.json"}},
        {{"prune-heads", "--model", M + "model", "--data", M + "dev.jsonl", "--out", M + "heads"}, {"heads/masks.json"}},
        {{"prune-magnitude", "--model", M + "model", "--steps", "1", "--out", M + "mag"}, {"mag"}},
        {{"prune-finetune", "--model", M + "model", "--train", M + "train.jsonl", "--dev", M + "dev.jsonl", "--epochs", "1",
          "--mask", M + "heads/masks.json", "--out", M + "ft", "--json", M + "ft.json"},
         {"ft/model.safetensors", "ft.json"}},
        {{"prune-pretrain", "--data", M + "data", "--steps", "1", "--layers", "1", "--hidden", "16", "--heads", "2",
          "--intermediate", "32", "--dev-sentences", "1", "--out", M + "pre"},
         {"pre/model.safetensors"}},
        {{"prune-sparsify", "--model", M + "lm", "--calib", M + "lm.jsonl", "--method", "wanda", "--sparsity", "0.5",
          "--eval", M + "lm.jsonl", "--out", M + "sparse"},
         {"sparse/masks.safetensors"}},
        {{"prune-generate", "--model", M + "lm", "--prompt", "the cat ';$(` sat", "--max-tokens", "3"}, {}},
        {{"prune-compact", "--model", M + "lm", "--remove-layers", "0", "--out", M + "small"}, {"small/model.safetensors"}},
    };
    if (fs::exists("/usr/share/wordnet/data.noun")) {
        cases.push_back({{"prune-data", "wordnet", "--out", M + "wn-glue", "--train-rows", "20", "--dev-rows", "10"},
                         {"wn-glue/stats.json"}});
    }
    for (auto& c : cases) {
        const std::string name = c.argv[0];
        c.argv[0] = (bin / name).string();
        const int code = finish(start(c.argv, work, dir.path() / "err"));
        INFO(name << ": " << read_file(dir.path() / "err"));
        CHECK(code == 0);
        for (const auto& out : c.outputs) CHECK(fs::exists(m / out));
        CHECK(!canary_anywhere(work));
    }
}
