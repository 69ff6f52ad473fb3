// prune-llm end to end on a small Llama pre-trained here (prune-pretrain --arch llama on
// synthetic text), with --model/--text: report.json is the same bytes at 1 and 2 threads; the full
// model's perplexity is prune-eval's on the same text; each layer-removal point's perplexity is
// prune-eval's with a structure mask that turns that layer's heads and MLP off; every family and
// method has its points; the lottery's good subnetwork obeys the rule and its perplexity is
// prune-eval's with the good-mask.json written, random and bad have its size; the charts are SVG a renderer accepts (python's XML parser here); bad
// input exits 2 with nothing written.
#include "../decoder/synthetic_text.hpp"
#include "../support/files.hpp"
#include "../support/run_ok.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace fs = std::filesystem;

namespace {

using prune_test::read_json;
using prune_test::run_in;

/// prune-eval's perplexity of dir/lm on the held-out text (with a structure mask when given).
double eval_perplexity(const fs::path& dir, const std::string& mask_json = "") {
    std::string flags;
    if (!mask_json.empty()) {
        prune_test::write_file(dir / "mask.json", mask_json);
        flags = " --mask mask.json";
    }
    run_in(dir, "prune-eval --model lm --data data/pretrain/dev.txt --context 64 --json eval.json" + flags);
    return read_json(dir / "eval.json")["perplexity"].get<double>();
}

const char* const llm_flags =
    "prune-llm --quick --model lm --text data/pretrain/dev.txt --train-text data/pretrain/train.txt --probes 8 --cache cache";

}  // namespace

TEST_CASE("prune-llm --model: reproducible report, perplexities as prune-eval's, every curve", "[llm][cli]") {
    prune_test::temp_dir dir("llm_cli");
    prune_test::write_pretrain_data(dir.path(), 400, 60);
    run_in(dir.path(), "prune-pretrain --arch llama --data data --layers 2 --hidden 32 --heads 8 --kv-heads 2 --intermediate 64 "
                       "--vocab-size 320 --max-length 64 --steps 30 --batch-size 8 --lr 1e-2 --seed 3 --threads 1 --out lm");
    run_in(dir.path(), std::string(llm_flags) + " --threads 1 --out o1");
    run_in(dir.path(), std::string(llm_flags) + " --threads 2 --out o2");
    CHECK(prune_test::read_file(dir.path() / "o1" / "report.json") == prune_test::read_file(dir.path() / "o2" / "report.json"));

    const nlohmann::json r = read_json(dir.path() / "o1" / "report.json");
    CHECK(r["full"]["perplexity"].get<double>() == Approx(eval_perplexity(dir.path())).epsilon(1e-6));
    const double layer0_off = eval_perplexity(dir.path(), R"({"heads": [[0,0,0,0,0,0,0,0],[1,1,1,1,1,1,1,1]], "mlps": [0,1]})");
    const double layer1_off = eval_perplexity(dir.path(), R"({"heads": [[1,1,1,1,1,1,1,1],[0,0,0,0,0,0,0,0]], "mlps": [1,0]})");
    REQUIRE(std::abs(layer0_off - layer1_off) > 1e-3 * layer0_off);  // the check below tells them apart
    std::set<std::string> seen;
    for (const auto& p : r["points"]) {
        const std::string family = p["family"], method = p["method"];
        seen.insert(family + "/" + method);
        CHECK(p["perplexity"].get<double>() > 1.0);
        for (const char* g : {"hypernym", "pos", "copy"}) {
            const auto& s = p["probes"][g];
            CHECK(s["n"].get<int>() == 8);
            CHECK(s["accuracy"].get<double>() - s["baseline"].get<double>() == Approx(s["gain"].get<double>()).margin(1e-12));
        }
        if (family != "layers") continue;
        const double ppl = p["perplexity"].get<double>();
        CHECK((std::abs(ppl - layer0_off) < 1e-6 * ppl || std::abs(ppl - layer1_off) < 1e-6 * ppl));
    }
    CHECK(seen == std::set<std::string>{"unstructured/magnitude", "unstructured/wanda", "unstructured/sparsegpt", "heads/michel",
                                        "heads/taylor", "heads/random", "channels/taylor", "channels/random",
                                        "layers/block-influence", "layers/random"});
    // The lottery: random and bad keep as many heads and MLPs as good; good's pruned perplexity is
    // prune-eval's with good-mask.json and obeys the rule; the full ticket is the full model.
    const auto& lottery = r["lottery"];
    REQUIRE(lottery["tickets"].size() == 4);  // --quick: one seed of full, good, random, bad
    const double good_pruned = lottery["tickets"][1]["pruned"]["perplexity"].get<double>();
    CHECK(good_pruned == Approx(eval_perplexity(dir.path(), prune_test::read_file(dir.path() / "o1" / "good-mask.json"))).epsilon(1e-6));
    CHECK(good_pruned <= r["full"]["perplexity"].get<double>() / 0.9);
    CHECK(lottery["tickets"][0]["pruned"]["perplexity"].get<double>() == Approx(r["full"]["perplexity"].get<double>()).epsilon(1e-12));
    for (const auto& t : lottery["tickets"]) {
        if (t["kind"] == "full") continue;
        CHECK(t["heads_kept"] == lottery["good"]["heads_kept"]);
        CHECK(t["mlps_kept"] == lottery["good"]["mlps_kept"]);
        CHECK(t["retrained"]["perplexity"].get<double>() > 1.0);
    }
    const std::string md = prune_test::read_file(dir.path() / "o1" / "report.md");
    CHECK(md.find("## The lottery on a decoder") != std::string::npos);
    // --quick has one seed a kind: the verdict says there is no test (tests/llm/test_llm_verdict.cpp tests the rest)
    CHECK(lottery["all_tickets_win"]["verdict"] == "not testable with 1 seed(s)");
    CHECK(md.find("within 5%: **not testable with 1 seed(s)**") != std::string::npos);
    CHECK(md.find("| copy | 8 | 0.25 |") != std::string::npos);
    const std::string check_svg = std::string(PRUNE_TEST_PYTHON) +
                                  " -c \"import sys, xml.etree.ElementTree as E; [E.parse(f) for f in sys.argv[1:]]\" o1/*.svg";
    CHECK(std::system(("cd '" + dir.path().string() + "' && " + check_svg).c_str()) == 0);
    CHECK(fs::exists(dir.path() / "o1" / "heads-perplexity.svg"));
}

TEST_CASE("prune-llm: bad input exits 2 and writes nothing", "[llm][cli]") {
    prune_test::temp_dir dir("llm_bad");
    const auto nothing_written = [&](const std::string& flags, const std::string& message) {
        const prune_test::outcome o = prune_test::run_binary("prune-llm " + flags + " --out out", dir.path(), dir.path() / "err.txt");
        INFO(o.err);
        CHECK(o.code == 2);
        CHECK(o.err.find(message) != std::string::npos);
        CHECK_FALSE(fs::exists(dir.path() / "out"));
    };
    nothing_written("--model lm", "--model requires --text");
    nothing_written("--wordnet /nonexistent/wordnet", "cannot open WordNet file /nonexistent/wordnet/data.noun");
    nothing_written("--probes 0", "--probes 0");
}
