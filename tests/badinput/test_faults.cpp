// Fault injection on a real binary (prune-finetune, which writes a model directory and a
// --json report): the disk fills up (a file-size limit, RLIMIT_FSIZE, makes every write past
// it fail as a full disk does), the process is killed with SIGKILL at points spread over its
// whole run and then run again, and two runs write the same output at once; prune-magnitude's
// output does not fit (its space reservation fails before any work). What must hold:
// - a failed write exits 2 with one line naming the file, and leaves the previous model and
//   report byte for byte, and no debris;
// - after a SIGKILL the model directory is the previous one or the complete new one (never a
//   mixture), the report is never newer than the model, and the next run removes the killed
//   run's staging debris and writes the same bytes as an undisturbed run (fine-tuning is
//   deterministic);
// - two simultaneous runs both succeed and leave one complete output and no debris; so do two
//   prune-data runs building one cache entry (what two prune-lottery runs on one --cache do).
#include "../support/files.hpp"
#include "../support/tiny_bert.hpp"

#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/weights.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using prune_test::read_file;
using prune_test::write_file;

namespace {

/// Every file under `dir` (relative name -> bytes; directories as "<dir>"), hidden ones included.
std::map<std::string, std::string> contents(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        out[fs::relative(e.path(), dir).string()] = e.is_directory() ? "<dir>" : read_file(e.path());
    }
    return out;
}

/// The subset of `all` under the top-level entry `name`.
std::map<std::string, std::string> under(const std::map<std::string, std::string>& all, const std::string& name) {
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : all) {
        if (k == name || k.rfind(name + "/", 0) == 0) out[k] = v;
    }
    return out;
}

/// Top-level hidden entries of `dir` (staging directories and temporaries).
std::vector<std::string> hidden_entries(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().filename().string().front() == '.') out.push_back(e.path().filename().string());
    }
    return out;
}

/// A started binary: its process and the read end of its stderr.
struct running {
    pid_t pid;
    int err;
};

/// Starts PRUNE_BINARY_DIR/bin/<arguments[0]> with its arguments in `cwd` (no shell), stdout
/// discarded and stderr into a pipe; with `file_limit` > 0 every file it writes is limited to
/// that many bytes (SIGXFSZ ignored, so a write past it fails with EFBIG as on a full disk).
running start(const std::vector<std::string>& arguments, const fs::path& cwd, rlim_t file_limit = 0) {
    std::vector<std::string> storage = arguments;
    storage[0] = std::string(PRUNE_BINARY_DIR) + "/bin/" + storage[0];
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::chdir(cwd.c_str()) != 0) ::_exit(126);
        const int null = ::open("/dev/null", O_WRONLY);
        if (null < 0 || ::dup2(null, 1) < 0 || ::dup2(pipe_fds[1], 2) < 0) ::_exit(126);
        ::close(pipe_fds[0]);
        if (file_limit > 0) {
            std::signal(SIGXFSZ, SIG_IGN);
            const rlimit limit{file_limit, file_limit};
            if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(126);
        }
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(pipe_fds[1]);
    return {pid, pipe_fds[0]};
}

/// Waits for a started binary: its exit code (-signal when a signal killed it) and stderr.
prune_test::outcome finish(running r) {
    std::string err;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(r.err, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        err.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(r.err);
    int status = 0;
    while (::waitpid(r.pid, &status, 0) < 0 && errno == EINTR) {
    }
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), err};
}

/// A tiny BERT, train and dev files, and a previous output (model "out" and report.json) in a
/// fresh directory.
struct fixture {
    prune_test::temp_dir temp;
    fs::path w = fs::weakly_canonical(temp.path());
    std::vector<std::string> finetune = {"prune-finetune", "--model", "model", "--train", "train.jsonl", "--dev",
                                         "dev.jsonl",      "--epochs", "3",    "--threads", "1", "--out", "out",
                                         "--json",         "report.json"};
    explicit fixture(const std::string& name) : temp(name) {
        prune::bert::save_model(prune::bert::random_weights(prune_test::tiny_config(), 7, 0.1f), w / "model");
        std::string rows;
        for (int i = 0; i < 64; ++i) {
            rows += "{\"input_ids\": [2, " + std::to_string(5 + i % 15) + ", 3, " + std::to_string(5 + (i * 7) % 15) +
                    ", 4], \"label\": " + std::to_string(i % 2) + "}\n";
        }
        write_file(w / "dev.jsonl", rows);
        std::string train;
        for (int i = 0; i < 8; ++i) train += rows;
        write_file(w / "train.jsonl", train);
        fs::copy(w / "model", w / "out", fs::copy_options::recursive);  // the previous output
        write_file(w / "report.json", "{\"previous\": true}\n");
    }
};

}  // namespace

TEST_CASE("a full disk: exit 2 naming the file, the previous outputs intact, no debris", "[faults]") {
    fixture f("prune_faults_disk");
    const auto before = contents(f.w);
    // the tiny model's safetensors is about 60 kB: 16 kB lets the report through and stops the model
    const rlim_t limit = GENERATE(rlim_t{16} * 1024, rlim_t{1});
    const auto r = finish(start(f.finetune, f.w, limit));
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(prune_test::last_line(r.err).rfind("prune-finetune: ", 0) == 0);
    CHECK(prune_test::last_line(r.err).find("File too large") != std::string::npos);
    CHECK(contents(f.w) == before);
}

TEST_CASE("prune-magnitude on a disk too small: the space reservation fails before the work, nothing changes", "[faults]") {
    fixture f("prune_faults_reserve");
    const auto before = contents(f.w);
    const std::vector<std::string> magnitude = {"prune-magnitude", "--model", "model", "--amount", "0.5", "--steps", "1",
                                                "--out", "out"};
    // 16 kB: masks.safetensors and the reservation of the ~60 kB model.safetensors cannot both fit
    const auto r = finish(start(magnitude, f.w, rlim_t{16} * 1024));
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(prune_test::last_line(r.err).rfind("prune-magnitude: ", 0) == 0);
    CHECK(prune_test::last_line(r.err).find("model.safetensors") != std::string::npos);
    CHECK(prune_test::last_line(r.err).find("File too large") != std::string::npos);
    CHECK(contents(f.w) == before);
    REQUIRE(finish(start(magnitude, f.w)).code == 0);  // without the limit the same run succeeds
}

TEST_CASE("SIGKILL anywhere in a run: the previous output or the new one, and the rerun cleans up", "[faults]") {
    fixture f("prune_faults_kill");
    const auto previous = contents(f.w);
    // an undisturbed run, timed: the reference output
    fixture reference("prune_faults_kill_reference");
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(finish(start(reference.finetune, reference.w)).code == 0);
    const auto duration = std::chrono::steady_clock::now() - t0;
    const auto expected = contents(reference.w);
    REQUIRE(under(expected, "out") != under(previous, "out"));

    int saw_previous = 0, saw_new = 0;
    for (int k = 0; k < 8; ++k) {  // kill points spread over the run, from the start to past its end
        const auto delay = duration * (k + 1) / 8;
        const running run = start(f.finetune, f.w);
        std::this_thread::sleep_for(delay);
        ::kill(run.pid, SIGKILL);
        const int code = finish(run).code;
        INFO("kill point " << k << " of 8, exit " << code);
        auto now = contents(f.w);
        const auto model = under(now, "out");
        const bool is_previous = model == under(previous, "out"), is_new = model == under(expected, "out");
        CHECK((is_previous || is_new));
        if (is_previous) CHECK(now["report.json"] == previous.at("report.json"));  // never a report without its model
        CHECK((now["report.json"] == previous.at("report.json") || now["report.json"] == expected.at("report.json")));
        saw_previous += is_previous;
        saw_new += is_new;

        // the rerun removes what the killed run left and writes the reference bytes
        REQUIRE(finish(start(f.finetune, f.w)).code == 0);
        CHECK(hidden_entries(f.w).empty());
        CHECK(contents(f.w) == expected);
        // back to the previous output for the next kill point
        fs::remove_all(f.w / "out");
        fs::copy(f.w / "model", f.w / "out", fs::copy_options::recursive);
        write_file(f.w / "report.json", "{\"previous\": true}\n");
    }
    WARN("kill points that left the previous output: " << saw_previous << ", the new one: " << saw_new);
    CHECK(saw_previous > 0);  // the early kill points interrupted the work
}

TEST_CASE("two runs writing the same output at once both succeed and leave one whole output", "[faults]") {
    fixture f("prune_faults_two");
    fixture reference("prune_faults_two_reference");
    REQUIRE(finish(start(reference.finetune, reference.w)).code == 0);
    const running a = start(f.finetune, f.w), b = start(f.finetune, f.w);
    const auto ra = finish(a), rb = finish(b);
    INFO(ra.err << rb.err);
    CHECK(ra.code == 0);
    CHECK(rb.code == 0);
    CHECK(hidden_entries(f.w).empty());
    CHECK(contents(f.w) == contents(reference.w));
}

TEST_CASE("two runs building one cache entry at once (as two prune-lottery runs on one --cache do)", "[faults]") {
    if (!fs::exists("/usr/share/wordnet/data.noun")) {
        WARN("skipped: Debian's wordnet-base is not installed");
        return;
    }
    prune_test::temp_dir temp("prune_faults_cache");
    const fs::path w = fs::weakly_canonical(temp.path());
    const std::vector<std::string> data = {"prune-data", "wordnet", "--out", "cache/wordnet-glue", "--seed", "1",
                                           "--train-rows", "40", "--dev-rows", "20"};
    fs::create_directories(w / "alone" / "cache");
    REQUIRE(finish(start(data, w / "alone")).code == 0);
    fs::create_directories(w / "shared" / "cache");
    const running a = start(data, w / "shared"), b = start(data, w / "shared");
    const auto ra = finish(a), rb = finish(b);
    INFO(ra.err << rb.err);
    CHECK(ra.code == 0);
    CHECK(rb.code == 0);
    CHECK(hidden_entries(w / "shared" / "cache").empty());
    CHECK(contents(w / "shared") == contents(w / "alone"));
}
