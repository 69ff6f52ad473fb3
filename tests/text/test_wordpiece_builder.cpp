// Tests of prune/text/wordpiece_builder.hpp: a hand-worked merge sequence, determinism,
// coverage (no [UNK] on the corpus) and round trip through vocab.txt.
#include <prune/text/wordpiece.hpp>
#include <prune/text/wordpiece_builder.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

namespace {

using strings = std::vector<std::string>;

std::map<std::u32string, std::uint64_t> course_counts() {
    // The word counts of the BPE example in Hugging Face's NLP course (tokenizers chapter).
    return {{U"hug", 10}, {U"pug", 5}, {U"pun", 12}, {U"bun", 4}, {U"hugs", 5}};
}

}  // namespace

TEST_CASE("wordpiece builder: hand-worked merges", "[wordpiece_builder]") {
    // Worked by hand (## marks non-initial pieces; counts summed over word frequencies):
    //   pairs: (##u,##g)=20 (h,##u)=15 (p,##u)=17 (##u,##n)=16 (b,##u)=4 (##g,##s)=5
    //   1. ##u+##g -> ##ug (20)   then (h,##ug)=15 (p,##ug)=5 (p,##u)=12 (##u,##n)=16 (##ug,##s)=5
    //   2. ##u+##n -> ##un (16)   then (p,##un)=12 (b,##un)=4
    //   3. h+##ug  -> hug  (15)
    //   4. p+##un  -> pun  (12)
    //   5. tie at 5: (p,##ug) and (hug,##s); "p" entered the vocabulary first -> pug
    //   6. hug+##s -> hugs (5)
    //   7. b+##un  -> bun  (4)
    prune::text::wordpiece_builder_options options;
    options.vocab_size = 100;
    options.min_frequency = 1;
    const strings expected = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "b", "g", "h", "n", "p", "s", "u",
                              "##b", "##g", "##h", "##n", "##p", "##s", "##u",
                              "##ug", "##un", "hug", "pun", "pug", "hugs", "bun"};
    CHECK(prune::text::build_wordpiece_vocabulary(course_counts(), options) == expected);

    // min_frequency 5 stops before "bun" (4); vocab_size 22 stops after "##ug", "##un", "hug".
    options.min_frequency = 5;
    CHECK(prune::text::build_wordpiece_vocabulary(course_counts(), options) ==
          strings(expected.begin(), expected.end() - 1));
    options.vocab_size = 22;
    CHECK(prune::text::build_wordpiece_vocabulary(course_counts(), options) ==
          strings(expected.begin(), expected.begin() + 22));

    // The vocabulary segments the words as the merges did, and new words by greedy longest match.
    options.vocab_size = 100;
    options.min_frequency = 1;
    const prune::text::tokenizer tok(
        prune::text::vocabulary::from_tokens(prune::text::build_wordpiece_vocabulary(course_counts(), options)));
    CHECK(tok.tokenize("Hugs pun bun") == strings{"hugs", "pun", "bun"});
    CHECK(tok.tokenize("bugs snug") == strings{"b", "##ug", "##s", "s", "##n", "##ug"});
    CHECK(tok.tokenize("hugz") == strings{"[UNK]"});  // z is outside the alphabet

    CHECK_THROWS_AS(prune::text::build_wordpiece_vocabulary(course_counts(), {3, 1, {}}), prune::value_error);
}

TEST_CASE("wordpiece builder: deterministic, covering, loadable", "[wordpiece_builder]") {
    const char* corpus[] = {
        "a person who is unusually skilled at something; \"she is an expert at chess\"",
        "the act of running quickly; runners run races",
        "an instrument for measuring temperatures (the thermometer's scale)",
        "Caf\u00E9 society: na\u00EFve r\u00E9sum\u00E9s of the \u00FCber-rich",
        "move fast by using one's feet, with one foot off the ground at any given time",
        "having the necessary means or skill or know-how or authority to do something"};
    auto build = [&](bool reversed) {
        prune::text::word_counter counter;
        for (int k = 0; k < 6; ++k) counter.add_text(corpus[reversed ? 5 - k : k]);
        prune::text::wordpiece_builder_options options;
        options.vocab_size = 120;
        options.min_frequency = 1;  // the corpus is tiny: let merges run to the size limit
        return prune::text::build_wordpiece_vocabulary(counter.counts(), options);
    };
    const auto a = build(false);
    CHECK(a == build(false));
    CHECK(a == build(true));  // order of the texts does not matter
    CHECK(a.size() == 120);
    const prune::text::tokenizer tok(prune::text::vocabulary::from_tokens(a));  // no duplicates, specials present
    CHECK(tok.vocab().pad_id() == 0);
    CHECK(tok.vocab().unk_id() == 1);
    CHECK(tok.vocab().cls_id() == 2);
    CHECK(tok.vocab().sep_id() == 3);
    CHECK(tok.vocab().mask_id() == 4);
    for (const char* text : corpus)
        for (const auto& t : tok.tokenize(text)) CHECK(t != "[UNK]");
}
