// Tests of prune/text/wordpiece.hpp: hand-checked cases of Hugging Face's BertTokenizer,
// vocab.txt errors, pair encoding and truncation, and a randomized comparison against
// hf_reference.py (HF's algorithm over Python's own unicodedata / str.lower / bytes.decode).
#include <prune/text/wordpiece.hpp>
#include <prune/text/wordpiece_builder.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using prune::text::basic_tokenize;
using strings = std::vector<std::string>;

std::filesystem::path temp_dir(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("prune_test_text_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// The vocabulary of transformers' test_wordpiece_tokenizer (tests/models/bert/test_tokenization_bert.py),
// plus [PAD] and [MASK] which our vocabulary requires.
prune::text::vocabulary hf_test_vocab() {
    return prune::text::vocabulary::from_tokens(
        {"[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", "[PAD]", "[MASK]"});
}

prune::text::basic_tokenizer_options no_lower() {
    prune::text::basic_tokenizer_options o;
    o.lower_case = false;
    o.strip_accents = false;
    return o;
}

}  // namespace

// Expected values of this section are HF's documented behaviour, from transformers'
// tests/models/bert/test_tokenization_bert.py (BertTokenizationTest), recalled by hand
// because transformers cannot be installed offline; hf_reference.py re-checks them below.
TEST_CASE("basic tokenizer: HF's documented cases", "[tokenizer]") {
    // test_chinese: CJK ideographs become single tokens.
    CHECK(basic_tokenize("ah\u535A\u63A8zz") == strings{"ah", "\u535A", "\u63A8", "zz"});
    // test_basic_tokenizer_lower: whitespace cleanup, lower-casing, punctuation split.
    CHECK(basic_tokenize(" \tHeLLo!how  \n Are yoU?  ") == strings{"hello", "!", "how", "are", "you", "?"});
    CHECK(basic_tokenize("H\u00E9llo") == strings{"hello"});
    // test_basic_tokenizer_lower_strip_accents_default: ä -> a.
    CHECK(basic_tokenize(" \tH\u00E4LLo!how  \n Are yoU?  ") == strings{"hallo", "!", "how", "are", "you", "?"});
    // test_basic_tokenizer_no_lower.
    CHECK(basic_tokenize(" \tHeLLo!how  \n Are yoU?  ", no_lower()) == strings{"HeLLo", "!", "how", "Are", "yoU", "?"});
    // test_basic_tokenizer_no_lower_strip_accents_true: "HäLLo" -> "HaLLo".
    auto strip_only = no_lower();
    strip_only.strip_accents = true;
    CHECK(basic_tokenize(" \tH\u00E4LLo!how  \n Are yoU?  ", strip_only) == strings{"HaLLo", "!", "how", "Are", "yoU", "?"});
    // Python's str.lower: a capital sigma ending a word is final (U+03C2) in BasicTokenizer alone...
    CHECK(basic_tokenize("\u039F\u0394\u039F\u03A3") == strings{"\u03BF\u03B4\u03BF\u03C2"});
    // ...but BertTokenizer.tokenize lower-cases character by character first, so sigma stays U+03C3.
    const prune::text::tokenizer greek(prune::text::vocabulary::from_tokens(
        {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\u03BF\u03B4\u03BF\u03C3", "\u03BF\u03B4\u03BF\u03C2"}));
    CHECK(greek.tokenize("\u039F\u0394\u039F\u03A3") == strings{"\u03BF\u03B4\u03BF\u03C3"});
}

TEST_CASE("character classes: HF's _is_whitespace, _is_control, _is_punctuation", "[tokenizer]") {
    using namespace prune::text;
    // test_is_whitespace
    for (char32_t c : {U' ', U'\t', U'\r', U'\n', U'\u00A0'}) CHECK(is_bert_whitespace(c));
    for (char32_t c : {U'A', U'-'}) CHECK_FALSE(is_bert_whitespace(c));
    // test_is_control
    CHECK(is_bert_control(U'\u0005'));
    for (char32_t c : {U'A', U' ', U'\t', U'\r'}) CHECK_FALSE(is_bert_control(c));
    // test_is_punctuation ("$" and "`" are symbols in Unicode, punctuation in BERT's ASCII rule)
    for (char32_t c : {U'-', U'$', U'`', U'.'}) CHECK(is_bert_punctuation(c));
    for (char32_t c : {U'A', U' '}) CHECK_FALSE(is_bert_punctuation(c));
    // Beyond ASCII: U+2014 EM DASH is Pd, U+00BF is Po (punctuation); U+00A9 is So (not).
    CHECK(is_bert_punctuation(U'\u2014'));
    CHECK(is_bert_punctuation(U'\u00BF'));
    CHECK_FALSE(is_bert_punctuation(U'\u00A9'));
}

TEST_CASE("wordpiece: HF's test_wordpiece_tokenizer", "[tokenizer]") {
    const prune::text::tokenizer tok(hf_test_vocab());
    // Greedy longest match: "unwanted" = un + ##want + ##ed; "running" = runn + ##ing.
    CHECK(tok.tokenize("") == strings{});
    CHECK(tok.tokenize("unwanted running") == strings{"un", "##want", "##ed", "runn", "##ing"});
    // One unknown piece ("x" after "unwanted") makes the whole word [UNK].
    CHECK(tok.tokenize("unwantedX running") == strings{"[UNK]", "runn", "##ing"});
    // test_clean_text: U+00AD SOFT HYPHEN is Cf and disappears; "test" is not in the vocabulary.
    CHECK(tok.tokenize("Test") == strings{"[UNK]"});
    CHECK(tok.tokenize("\u00AD") == strings{});
    // A special token's string stays whole (HF's no-split special tokens), wherever it sits.
    CHECK(tok.tokenize("want[MASK]runn [SEP]") == strings{"want", "[MASK]", "runn", "[SEP]"});
    // Words longer than 100 code points are [UNK] even when they would segment: "wa" + 99 x "##want"...
    std::string long_word = "un";
    for (int i = 0; i < 25; ++i) long_word += "want";  // 2 + 100 = 102 characters
    CHECK(tok.tokenize(long_word) == strings{"[UNK]"});
    std::string ok_word = "un";
    for (int i = 0; i < 24; ++i) ok_word += "want";    // 98 characters: segments
    CHECK(tok.tokenize(ok_word).size() == 25);
}

TEST_CASE("encode: [CLS] A [SEP] B [SEP], token types, longest-first truncation", "[tokenizer]") {
    const prune::text::tokenizer tok(hf_test_vocab());
    // Ids are positions in hf_test_vocab(): [CLS]=1 [SEP]=2 want=3 ##want=4 ##ed=5 un=7 runn=8 ##ing=9.
    auto single = tok.encode("unwanted running");
    CHECK(single.input_ids == std::vector<std::int32_t>{1, 7, 4, 5, 8, 9, 2});
    CHECK(single.token_type_ids == std::vector<std::int32_t>(7, 0));
    CHECK(single.attention_mask == std::vector<std::int32_t>(7, 1));

    auto pair = tok.encode("unwanted running", "want");
    CHECK(pair.input_ids == std::vector<std::int32_t>{1, 7, 4, 5, 8, 9, 2, 3, 2});
    CHECK(pair.token_type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 0, 1, 1});

    // 5 + 1 + 3 specials = 9 > 8: one token leaves A (5 > 1), from its end.
    auto cut = tok.encode("unwanted running", "want", 8);
    CHECK(cut.input_ids == std::vector<std::int32_t>{1, 7, 4, 5, 8, 2, 3, 2});
    // Budget 7 - 3 = 4 for A (5 tokens) and B (3): A 5 > 3 -> A 4; A 4 > 3 -> A 3; tie 3 == 3 -> B 2
    // (HF removes from the pair on a tie); A 3 > 2 -> A 2. A = un ##want, B = want want.
    auto both = tok.encode("unwanted running", "want want want", 7);
    CHECK(both.input_ids == std::vector<std::int32_t>{1, 7, 4, 2, 3, 3, 2});
    CHECK(both.token_type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 1, 1, 1});
    // Single sequence: cut from the end.
    CHECK(tok.encode("unwanted running", 4).input_ids == std::vector<std::int32_t>{1, 7, 4, 2});
    CHECK_THROWS_AS(tok.encode("a", "b", 2), prune::value_error);

    prune::text::pad(pair, 12, tok.vocab().pad_id());
    CHECK(pair.input_ids.size() == 12);
    CHECK(pair.input_ids.back() == 10);
    CHECK(pair.attention_mask == std::vector<std::int32_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0});
}

TEST_CASE("vocabulary: vocab.txt loading and its errors", "[tokenizer]") {
    const auto dir = temp_dir("vocab");
    auto write = [&](const std::string& name, const std::string& text) {
        std::ofstream(dir / name, std::ios::binary) << text;
        return dir / name;
    };
    const auto good = prune::text::vocabulary::load(write("good.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\r\n"));
    CHECK(good.size() == 7);
    CHECK(good.pad_id() == 0);
    CHECK(good.mask_id() == 4);
    CHECK(good.find("##s") == 6);  // trailing \r dropped
    CHECK(good.token(5) == "hello");
    CHECK_THROWS_AS(good.token(7), prune::value_error);

    CHECK_THROWS_AS(prune::text::vocabulary::load(dir / "missing.txt"), prune::io_error);
    try {
        prune::text::vocabulary::load(write("nomask.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n"));
        FAIL("expected a format_error");
    } catch (const prune::format_error& e) {
        CHECK(std::string(e.what()).find("[MASK]") != std::string::npos);
    }
    try {
        prune::text::vocabulary::load(write("dup.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nhello\n"));
        FAIL("expected a format_error");
    } catch (const prune::format_error& e) {
        CHECK(std::string(e.what()).find("lines 6 and 7") != std::string::npos);
    }
    CHECK_THROWS_AS(prune::text::vocabulary::load(write("empty.txt", "[PAD]\n\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")),
                    prune::format_error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("UTF-8 decoding: invalid bytes become U+FFFD, hand-checked", "[tokenizer]") {
    using prune::text::decode_utf8;
    // Maximal-subpart replacement (Unicode 3.9 / WHATWG), as Python's bytes.decode('utf-8', 'replace'):
    CHECK(decode_utf8("a\xC3\xA9") == U"a\u00E9");          // valid 2-byte
    CHECK(decode_utf8("\xC0\xAF") == U"\uFFFD\uFFFD");      // overlong lead C0: each byte
    CHECK(decode_utf8("\xE0\x80\x80") == U"\uFFFD\uFFFD\uFFFD");  // E0 needs A0..BF next
    CHECK(decode_utf8("\xED\xA0\x80") == U"\uFFFD\uFFFD\uFFFD");  // surrogate
    CHECK(decode_utf8("\xE2\x82") == U"\uFFFD");            // truncated 3-byte: one U+FFFD
    CHECK(decode_utf8("\xF4\x90\x80\x80") == U"\uFFFD\uFFFD\uFFFD\uFFFD");  // > U+10FFFF
    CHECK(decode_utf8("\xF0\x9F\x98\x80") == U"\U0001F600");
    // Tokenizing garbage is safe: U+FFFD is dropped by HF's clean_text.
    CHECK(basic_tokenize(std::string("\xFF\xFE hi \x80", 7)) == strings{"hi"});
}

TEST_CASE("tokenizer agrees with HF's algorithm on random text (Python reference)", "[tokenizer][python]") {
    const auto dir = temp_dir("fuzz");
    std::mt19937_64 rng(12345);
    auto pick = [&](std::uint64_t n) { return static_cast<std::size_t>(rng() % n); };

    // A vocabulary built from English-ish text (so WordPiece has work to do).
    prune::text::word_counter counter;
    for (const char* t : {"The quick brown fox jumps over the lazy dog.", "unwanted running runners ran away",
                          "Caf\u00E9s na\u00EFvely r\u00E9sum\u00E9 \u00FCber stra\u00DFe", "\u535A\u63A8 \u03A3\u039F\u03A6\u039F\u03A3 sophia"})
        for (int k = 0; k < 3; ++k) counter.add_text(t);
    prune::text::wordpiece_builder_options vo;
    vo.vocab_size = 150;
    const auto tokens = prune::text::build_wordpiece_vocabulary(counter.counts(), vo);
    const prune::text::tokenizer tok(prune::text::vocabulary::from_tokens(tokens));
    {
        std::ofstream v(dir / "vocab.txt", std::ios::binary);
        for (const auto& t : tokens) v << t << "\n";
    }

    // Code point palette: ASCII, whitespace and controls, Latin-1/Extended, combining marks,
    // Greek with capital sigma, Cyrillic, CJK, Hangul, Kana, punctuation, symbols, Mc marks
    // with combining classes, unassigned, private use, astral, and anything at all.
    const std::vector<std::pair<char32_t, char32_t>> palette = {
        {0x20, 0x7E}, {0x20, 0x20}, {0x09, 0x0D}, {0x00, 0x1F}, {0x7F, 0xA0}, {0xA0, 0xFF}, {0x100, 0x24F},
        {0x300, 0x36F}, {0x391, 0x3C9}, {0x3A3, 0x3A3}, {0x400, 0x45F}, {0x4E00, 0x4E20}, {0xAC00, 0xAC40},
        {0x3040, 0x30FF}, {0x2000, 0x206F}, {0x2100, 0x214F}, {0x1D165, 0x1D172}, {0x0F71, 0x0F84},
        {0x1E00, 0x1EFF}, {0x0370, 0x0380}, {0xE000, 0xE005}, {0xFB00, 0xFB06}, {0xF900, 0xF910},
        {0x1F600, 0x1F610}, {0x130, 0x130}, {0x10400, 0x1044F}, {0x1, 0xD7FF}, {0xE000, 0x10FFFF}};
    std::vector<std::string> cases;
    for (int c = 0; c < 400; ++c) {
        std::string s;
        const std::size_t len = 1 + pick(24);
        for (std::size_t i = 0; i < len; ++i) {
            const auto [lo, hi] = palette[pick(palette.size())];
            char32_t cp = lo + static_cast<char32_t>(pick(hi - lo + 1));
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = U'x';
            prune::text::append_utf8(s, cp);
        }
        if (c % 4 == 0) {  // raw byte damage
            for (int k = 0; k < 3; ++k) s.insert(pick(s.size() + 1), 1, static_cast<char>(rng() & 0xFF));
        }
        cases.push_back(s);
    }
    for (const char* fixed : {"\u03A3", "A\u03A3", "A\u03A3.", "A\u03A3'B", "\u0130stanbul", "\u212Bngstr\u00F6m",
                              "\U0001D165\U0001D16D\u0301", "na\u00EFve caf\u00E9 \u00C5ngstr\u00F6m", "e\u0301\u0302 \u1E9B\u0323",
                              "\u00DFtra\u00DFe", "\uFB01ne", "\u2028x\u2029y\u0085z\u000Bw", "a\u200Bb\u00ADc"})
        cases.emplace_back(fixed);
    {
        std::ofstream in(dir / "cases.txt");
        for (const auto& s : cases) {
            static const char* hex = "0123456789abcdef";
            std::string h;
            for (unsigned char b : s) {
                h += hex[b >> 4];
                h += hex[b & 15];
            }
            in << h << "\n";
        }
    }
    const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/text/hf_reference.py " +
                                (dir / "vocab.txt").string() + " " + (dir / "cases.txt").string() + " " +
                                (dir / "out.jsonl").string();
    REQUIRE(std::system(command.c_str()) == 0);
    std::ifstream out(dir / "out.jsonl");
    std::string line;
    std::size_t k = 0;
    for (; std::getline(out, line); ++k) {
        REQUIRE(k < cases.size());
        const auto j = nlohmann::json::parse(line);
        INFO("case " << k);
        const auto decoded = prune::text::decode_utf8(cases[k]);
        CHECK(std::vector<std::uint32_t>(decoded.begin(), decoded.end()) == j["decoded"].get<std::vector<std::uint32_t>>());
        CHECK(basic_tokenize(cases[k]) == j["basic"].get<strings>());
        CHECK(tok.tokenize(cases[k]) == j["tokens"].get<strings>());
    }
    CHECK(k == cases.size());
    std::filesystem::remove_all(dir);
}
