// Tests for prune/data/wordnet_lm.hpp on Debian's WordNet: the split holds (no held-out entry, so
// no fact a probe asks about, is in the training text; every probe is about a held-out entry), the
// probes are well-formed (the answer among distinct choices; pos balanced; copy's context holds the
// answer and its baseline does not; hypernym distractors are hypernyms of training entries, never
// the entry's own word), and the same seed gives the same text while another seed splits otherwise.
#include <prune/data/wordnet_lm.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <sstream>
#include <string>

namespace {

const prune::data::wordnet_database& db() {
    static const prune::data::wordnet_database d = prune::data::load_wordnet("/usr/share/wordnet");
    return d;
}

/// The entry word of a line ("word : ...").
std::string word_of(const std::string& line) { return line.substr(0, line.find(" : ")); }

/// The hypernym a line states ("" when none).
std::string hypernym_of(const std::string& line) {
    const std::string key = " is a kind of ";
    const auto at = line.rfind(key);
    if (at == std::string::npos) return "";
    return line.substr(at + key.size(), line.size() - at - key.size() - 2);  // drop " ."
}

}  // namespace

TEST_CASE("build_wordnet_lm: held-out entries never in the training text; probes only about them", "[wordnet]") {
    prune::data::wordnet_lm_options o;
    o.probes_per_kind = 120;
    const auto lm = prune::data::build_wordnet_lm(db(), o);
    const std::set<std::string> train(lm.train.begin(), lm.train.end());
    std::map<std::string, std::string> dev_by_prefix;  // "word : definition ." -> the line
    REQUIRE(lm.train.size() > 50000);  // WordNet 3.0 has ~82k noun synsets alone
    REQUIRE(lm.dev.size() > 3000);
    for (const auto& line : lm.dev) {
        CHECK(train.count(line) == 0);
        dev_by_prefix[line.substr(0, line.find(" . ") + 2)] = line;
    }
    std::set<std::string> train_hypernyms;
    for (const auto& line : lm.train) train_hypernyms.insert(hypernym_of(line));
    std::map<std::string, std::size_t> kinds, pos_answers;
    for (const auto& p : lm.probes) {
        ++kinds[p.kind];
        REQUIRE(p.choices.size() == 4);
        REQUIRE(p.answer < 4);
        CHECK(std::set<std::string>(p.choices.begin(), p.choices.end()).size() == 4);
        const auto cut = p.context.find(" . ");  // copy's context is the entry's start alone
        const std::string entry = cut == std::string::npos ? p.context.substr(1) : p.context.substr(1, cut + 1);  // "word : definition ."
        INFO(p.context);
        REQUIRE(dev_by_prefix.count(entry) == 1);  // the probe is about a held-out entry
        const std::string& line = dev_by_prefix[entry];
        const std::string answer = p.choices[p.answer].substr(1);
        if (p.kind == "hypernym") {
            CHECK(hypernym_of(line) == answer);
            for (const auto& c : p.choices) CHECK(train_hypernyms.count(c.substr(1)) == 1);
            CHECK(p.baseline == "\n" + word_of(line) + " is a kind of");
        } else if (p.kind == "pos") {
            CHECK(line.find(word_of(line) + " is " + answer + " .") != std::string::npos);
            ++pos_answers[answer];
        } else {
            REQUIRE(p.kind == "copy");
            CHECK(answer == word_of(line));
            CHECK(p.context.find(answer) != std::string::npos);
            CHECK(p.baseline.rfind("\n" + answer + " ", 0) != 0);
        }
    }
    CHECK(kinds["hypernym"] == 120);
    CHECK(kinds["pos"] == 120);
    CHECK(kinds["copy"] == 120);
    CHECK(pos_answers.size() == 4);
    for (const auto& [answer, n] : pos_answers) CHECK(n == 30);
}

TEST_CASE("build_wordnet_lm: the same seed gives the same text and probes, another seed another split", "[wordnet]") {
    prune::data::wordnet_lm_options o;
    o.probes_per_kind = 20;
    const auto a = prune::data::build_wordnet_lm(db(), o), b = prune::data::build_wordnet_lm(db(), o);
    CHECK(a.train == b.train);
    CHECK(a.dev == b.dev);
    REQUIRE(a.probes.size() == b.probes.size());
    for (std::size_t i = 0; i < a.probes.size(); ++i) CHECK(a.probes[i].choices == b.probes[i].choices);
    o.seed = 1;
    const auto c = prune::data::build_wordnet_lm(db(), o);
    CHECK(std::set<std::string>(c.dev.begin(), c.dev.end()) != std::set<std::string>(a.dev.begin(), a.dev.end()));
}

TEST_CASE("build_wordnet_lm refuses options outside their ranges", "[wordnet]") {
    prune::data::wordnet_lm_options o;
    o.dev_fraction = 1.0;
    CHECK_THROWS_WITH(prune::data::build_wordnet_lm(db(), o), Catch::Contains("dev_fraction"));
    o.dev_fraction = 0.1;
    o.choices = 1;
    CHECK_THROWS_WITH(prune::data::build_wordnet_lm(db(), o), Catch::Contains("choices 1"));
}
