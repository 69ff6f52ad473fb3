// Tests of prune/data/wordnet.hpp and prune/data/wordnet_tasks.hpp on Debian's wordnet-base:
// parsing (against lines of the data files quoted here), error paths, and the generated suite:
// determinism (same seed, same bytes), no train/dev leakage of synsets or texts, stats.json
// agreeing with the files, class balance, token ids agreeing with the tokenizer, and the
// prune-data binary's exit codes.
#include <prune/text/wordpiece.hpp>
#include <prune/data/wordnet.hpp>
#include <prune/data/wordnet_tasks.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
const fs::path wordnet_dir = "/usr/share/wordnet";

fs::path temp_dir(const std::string& name) {
    auto dir = fs::temp_directory_path() / ("prune_test_wordnet_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
    std::vector<nlohmann::json> rows;
    std::ifstream in(p);
    std::string line;
    while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
    return rows;
}

const prune::data::wordnet_database& database() {
    static const auto db = prune::data::load_wordnet(wordnet_dir);
    return db;
}

// A reduced suite for speed: every 4th synset, all tasks.
prune::data::wordnet_glue_options small_options(std::uint64_t seed) {
    prune::data::wordnet_glue_options o;
    o.seed = seed;
    o.tasks = prune::data::wordnet_task_names();
    o.synset_stride = 4;
    o.train_rows = 1000;
    o.dev_rows = 200;
    o.vocab_size = 1000;
    o.write_ids = true;
    return o;
}

}  // namespace

TEST_CASE("wordnet: parses Debian's WordNet 3.0", "[wordnet]") {
    const auto& db = database();
    // WordNet 3.0's published counts: 82115 noun, 13767 verb, 18156 adjective, 3621 adverb synsets.
    REQUIRE(db.synsets.size() == 82115 + 13767 + 18156 + 3621);
    // First line of data.noun: "00001740 03 n 01 entity 0 003 ~ ... | that which is perceived or known
    // or inferred to have its own distinct existence (living or nonliving)"
    const auto& entity = db.synsets[0];
    CHECK(entity.offset == 1740);
    CHECK(entity.lexicographer_file == 3);
    CHECK(prune::data::wordnet_lexicographer_files[3] == "noun.Tops");
    CHECK(entity.lemmas == std::vector<std::string>{"entity"});
    CHECK(entity.definition == "that which is perceived or known or inferred to have its own distinct existence (living or nonliving)");
    CHECK(entity.examples.empty());
    CHECK(entity.hypernyms.empty());
    // Second: "00001930 03 n 01 physical_entity 0 007 @ 00001740 n 0000 ..." -> hypernym entity.
    CHECK(db.synsets[1].lemmas == std::vector<std::string>{"physical entity"});
    CHECK(db.synsets[1].hypernyms == std::vector<std::size_t>{0});
    // First line of data.adj: "00001740 00 a 01 able 0 005 ... | (usually followed by `to') having the
    // necessary means or skill or know-how or authority to do something; "able to swim"; "she was able
    // to program her computer"; "we were at last able to buy a car"; "able to get a grant for the project""
    const auto& able = db.synsets[82115 + 13767];
    CHECK(able.pos == 'a');
    CHECK(able.lemmas == std::vector<std::string>{"able"});
    CHECK(able.definition == "(usually followed by `to') having the necessary means or skill or know-how or authority to do something");
    CHECK(able.examples == std::vector<std::string>{"able to swim", "she was able to program her computer",
                                                    "we were at last able to buy a car", "able to get a grant for the project"});
    // Verb "00002325 29 v 01 respire 1 005 $ 00001740 v 0000 @ 02108395 v 0000 ..." has one hypernym, a verb.
    const auto& respire = db.synsets[82115 + 1];
    CHECK(respire.lemmas == std::vector<std::string>{"respire"});
    REQUIRE(respire.hypernyms.size() == 1);
    CHECK(db.synsets[respire.hypernyms[0]].pos == 'v');
    CHECK(db.synsets[respire.hypernyms[0]].offset == 2108395);
}

TEST_CASE("wordnet: gloss splitting and lemma cleaning", "[wordnet]") {
    using prune::data::detail::split_gloss;
    auto [d1, e1] = split_gloss("move fast; \"he ran to the store\"; \"the car raced\"");
    CHECK(d1 == "move fast");
    CHECK(e1 == std::vector<std::string>{"he ran to the store", "the car raced"});
    auto [d2, e2] = split_gloss("a definition; with two parts");
    CHECK(d2 == "a definition; with two parts");
    CHECK(e2.empty());
    CHECK(prune::data::detail::clean_lemma("lay_out(p)") == "lay out");
    CHECK(prune::data::detail::clean_lemma("galore(ip)") == "galore");
}

TEST_CASE("wordnet: bad input throws with the place", "[wordnet]") {
    CHECK_THROWS_AS(prune::data::load_wordnet("/nonexistent/wordnet"), prune::io_error);
    const auto dir = temp_dir("bad");
    for (const char* f : {"data.noun", "data.verb", "data.adj", "data.adv"}) std::ofstream(dir / f) << "";
    std::ofstream(dir / "data.verb") << "  1 licence\n00000001 29 v 01 run 0 zz | gloss\n";
    try {
        prune::data::load_wordnet(dir);
        FAIL("expected a format_error");
    } catch (const prune::format_error& e) {
        CHECK(std::string(e.what()).find("data.verb:2") != std::string::npos);
    }
    std::ofstream(dir / "data.verb") << "00000001 29 v 01 run 0 001 @ 00000099 v 0000 | gloss\n";
    CHECK_THROWS_AS(prune::data::load_wordnet(dir), prune::format_error);  // dangling hypernym
    fs::remove_all(dir);
}

TEST_CASE("wordnet-glue: same seed, same bytes; another seed, other bytes", "[wordnet]") {
    const auto dir = temp_dir("determinism");
    for (const char* name : {"a", "b"})
        prune::data::write_wordnet_glue(prune::data::build_wordnet_glue(database(), small_options(7)), dir / name,
                                        small_options(7));
    prune::data::write_wordnet_glue(prune::data::build_wordnet_glue(database(), small_options(8)), dir / "c",
                                    small_options(8));
    std::size_t files = 0;
    bool any_differs = false;
    for (const auto& entry : fs::recursive_directory_iterator(dir / "a")) {
        if (!entry.is_regular_file()) continue;
        const auto rel = fs::relative(entry.path(), dir / "a");
        INFO(rel.string());
        CHECK(read_all(entry.path()) == read_all(dir / "b" / rel));
        any_differs = any_differs || read_all(entry.path()) != read_all(dir / "c" / rel);
        ++files;
    }
    // every task x {train,dev}{.jsonl,.ids.jsonl}, vocab, stats, 2 pretrain files
    CHECK(files == prune::data::wordnet_task_names().size() * 4 + 4);
    CHECK(any_differs);
    // Nothing staged is left behind.
    for (const auto& entry : fs::directory_iterator(dir)) CHECK(entry.path().filename().string().front() != '.');
    fs::remove_all(dir);
}

TEST_CASE("wordnet-glue: no synset or text of dev is in train", "[wordnet]") {
    const auto& db = database();
    const auto suite = prune::data::build_wordnet_glue(db, small_options(3));
    // Every text of every train-side synset.
    std::set<std::string> train_texts;
    for (std::size_t i = 0; i < suite.split.size(); ++i) {
        if (suite.split[i] != 0) continue;
        train_texts.insert(db.synsets[i].definition);
        for (const auto& e : db.synsets[i].examples) train_texts.insert(e);
    }
    for (const auto& task : suite.tasks) {
        INFO(task.name);
        CHECK(task.train.size() == 1000);
        CHECK(task.dev.size() == 200);
        std::set<std::size_t> train_synsets, dev_synsets;
        std::set<std::string> train_row_texts;
        for (const auto& r : task.train) {
            for (auto s : r.synsets) {
                CHECK(suite.split[s] == 0);
                train_synsets.insert(s);
            }
            train_row_texts.insert(r.text);
            if (r.text_pair && task.name != "hypernym") train_row_texts.insert(*r.text_pair);
        }
        for (const auto& r : task.dev) {
            for (auto s : r.synsets) {
                CHECK(suite.split[s] == 1);
                CHECK(train_synsets.count(s) == 0);
            }
            CHECK(train_texts.count(r.text) == 0);
            CHECK(train_row_texts.count(r.text) == 0);
            if (r.text_pair && task.name != "hypernym") {  // hypernym's text_pair is a lemma (a label word)
                CHECK(train_texts.count(*r.text_pair) == 0);
                CHECK(train_row_texts.count(*r.text_pair) == 0);
            }
        }
    }
    // The pre-training corpus of train holds no dev text.
    for (const auto& line : suite.pretrain_dev) CHECK(train_texts.count(line) == 0);
}

TEST_CASE("wordnet-glue: stats.json agrees with the files; balance; ids agree with the tokenizer", "[wordnet]") {
    const auto dir = temp_dir("stats");
    const auto options = small_options(5);
    prune::data::write_wordnet_glue(prune::data::build_wordnet_glue(database(), options), dir / "suite", options);
    const auto stats = nlohmann::json::parse(read_all(dir / "suite" / "stats.json"));
    const auto tok = prune::text::tokenizer::from_file(dir / "suite" / "vocab.txt");
    CHECK(stats["vocab_size"].get<std::size_t>() == tok.vocab().size());
    for (const auto& name : options.tasks) {
        INFO(name);
        const auto& t = stats["tasks"][name];
        const auto classes = t["num_labels"].get<std::size_t>();
        std::map<std::string, std::vector<std::size_t>> counts;
        for (const std::string side : {"train", "dev"}) {
            const auto rows = read_jsonl(dir / "suite" / name / (side + ".jsonl"));
            const auto ids = read_jsonl(dir / "suite" / name / (side + ".ids.jsonl"));
            REQUIRE(rows.size() == t[side]["rows"].get<std::size_t>());
            REQUIRE(ids.size() == rows.size());
            counts[side].assign(classes, 0);
            for (std::size_t i = 0; i < rows.size(); ++i) {
                const auto label = rows[i]["label"].get<std::size_t>();
                REQUIRE(label < classes);
                ++counts[side][label];
                CHECK(rows[i].contains("text_pair") == (t["kind"] == "pair"));
                CHECK(ids[i]["label"] == rows[i]["label"]);
                if (i < 50) {  // token ids are the tokenizer's encoding, truncated to 64
                    const auto e = rows[i].contains("text_pair")
                                       ? tok.encode(rows[i]["text"].get<std::string>(), rows[i]["text_pair"].get<std::string>(), 64)
                                       : tok.encode(rows[i]["text"].get<std::string>(), 64);
                    CHECK(ids[i]["input_ids"].get<std::vector<std::int32_t>>() == e.input_ids);
                    CHECK(ids[i]["token_type_ids"].get<std::vector<std::int32_t>>() == e.token_type_ids);
                }
            }
            CHECK(counts[side] == t[side]["class_counts"].get<std::vector<std::size_t>>());
        }
        // Majority baseline: the train majority label's share of dev.
        const auto& train = counts["train"];
        const auto majority = static_cast<std::size_t>(std::max_element(train.begin(), train.end()) - train.begin());
        CHECK(t["majority_label"].get<std::size_t>() == majority);
        CHECK(t["majority_baseline"].get<double>() ==
              Approx(static_cast<double>(counts["dev"][majority]) / static_cast<double>(t["dev"]["rows"].get<std::size_t>())));
        // Balance: pair tasks are 50/50 to the row; supersense has no class above 35%.
        if (t["kind"] == "pair") {
            for (const std::string side : {"train", "dev"}) {
                const auto diff = static_cast<long>(counts[side][0]) - static_cast<long>(counts[side][1]);
                CHECK(std::labs(diff) <= 1);
            }
        } else if (name == "supersense") {
            for (auto c : train) CHECK(static_cast<double>(c) <= 0.35 * static_cast<double>(t["train"]["rows"].get<std::size_t>()));
        } else {  // pos and concrete are balanced to the row: the classes in turn
            for (const std::string side : {"train", "dev"}) {
                const auto [lo, hi] = std::minmax_element(counts[side].begin(), counts[side].end());
                CHECK(*hi - *lo <= 1);
            }
        }
    }
    fs::remove_all(dir);
}

TEST_CASE("wordnet-glue: labels of pos, concrete and same_pos agree with the database", "[wordnet]") {
    const auto& db = database();
    auto options = small_options(7);
    options.tasks = {"pos", "concrete", "same_pos"};
    options.write_ids = false;
    const auto suite = prune::data::build_wordnet_glue(db, options);
    const std::string parts = "nvar";  // label index of each part of speech in task pos
    // Independent of the generator's ancestor sets: a breadth-first walk up the hypernym pointers.
    auto reaches = [&](std::size_t s, const std::string& lemma) {
        std::vector<std::size_t> todo = {s};
        std::set<std::size_t> seen;
        while (!todo.empty()) {
            const std::size_t x = todo.back();
            todo.pop_back();
            for (std::size_t h : db.synsets[x].hypernyms) {
                if (!seen.insert(h).second) continue;
                if (db.synsets[h].lemmas.front() == lemma) return true;
                todo.push_back(h);
            }
        }
        return false;
    };
    for (const auto& task : suite.tasks) {
        INFO(task.name);
        REQUIRE(task.train.size() == 1000);
        for (const auto* rows : {&task.train, &task.dev}) {
            for (const auto& r : *rows) {
                const auto& a = db.synsets[r.synsets.front()];
                CHECK(r.text == a.definition);
                if (task.name == "pos") {
                    CHECK(parts[static_cast<std::size_t>(r.label)] == a.pos);
                } else if (task.name == "concrete") {
                    CHECK(a.pos == 'n');
                    const bool physical = reaches(r.synsets.front(), "physical entity");
                    const bool abstract = reaches(r.synsets.front(), "abstraction");
                    CHECK(physical != abstract);
                    CHECK(r.label == (physical ? 1 : 0));
                } else {
                    REQUIRE(r.synsets.size() == 2);
                    const auto& b = db.synsets[r.synsets[1]];
                    CHECK(r.text_pair == b.definition);
                    CHECK(r.label == (a.pos == b.pos ? 1 : 0));
                }
            }
        }
    }
}

#ifdef PRUNE_DATA_BINARY
TEST_CASE("prune-data: bad input gives one line on stderr and exit 2", "[wordnet][cli]") {
    const auto dir = temp_dir("cli");
    auto run = [&](const std::string& args) {
        const std::string command = std::string(PRUNE_DATA_BINARY) + " " + args + " 2> " + (dir / "err.txt").string();
        const int status = std::system(command.c_str());
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };
    auto stderr_lines = [&] {
        const auto text = read_all(dir / "err.txt");
        return std::count(text.begin(), text.end(), '\n');
    };
    CHECK(run("wordnet --out " + (dir / "x").string() + " --wordnet-dir /nonexistent") == 2);
    CHECK(stderr_lines() == 1);
    CHECK(read_all(dir / "err.txt").find("data.noun") != std::string::npos);
    CHECK(run("wordnet --out /proc/prune-cannot-write-here --tasks supersense --train-rows 10 --dev-rows 10 --vocab-size 100") == 2);
    CHECK(stderr_lines() == 1);  // checked before any work
    CHECK(read_all(dir / "err.txt").find("prune-data: ") == 0);
    CHECK(run("wordnet --out " + (dir / "y").string() + " --tasks nonsense") == 2);
    CHECK(!fs::exists(dir / "y"));
    CHECK(run("wordnet") == 2);  // --out is required
    fs::remove_all(dir);
}
#endif
