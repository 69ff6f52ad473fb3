// Unit tests of prune/text/bpe.hpp and bpe_regex.hpp that need no npm reference: the regex
// subset (matches worked out by hand from Oniguruma's leftmost-first backtracking), NFC
// (expected values from Python's unicodedata.normalize("NFC")), the BPE merge order on a
// tiny hand-made vocabulary, and tokenizer.json files that must be refused with a message
// naming the JSON path and what was expected.
#include <prune/text/bpe.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace prune::text;

namespace {

// The pieces `pattern` isolates in `text` (matches and the gaps between them).
std::vector<std::u32string> pieces(std::u32string_view pattern, std::u32string_view text) {
    const auto re = split_regex::parse(pattern, "test");
    std::vector<std::u32string> out;
    bpe_detail::split_pieces(text, re, bpe_detail::split_behavior::isolated, false, out);
    return out;
}

// A byte-level tokenizer.json: the 256 byte characters (ids 0..255 in byte order) plus
// `extra` tokens, `merges` as "a b" strings; `patch` edits the JSON before loading.
prune::io::sorted_json tiny(const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
    prune::io::sorted_json t;
    t["version"] = "1.0";
    prune::io::sorted_json vocab = prune::io::sorted_json::object();
    for (unsigned b = 0; b < 256; ++b) {
        std::string s;
        append_utf8(s, byte_to_unicode()[b]);
        vocab[s] = b;
    }
    for (const auto& e : extra) vocab[e] = vocab.size();
    t["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
    t["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}};
    t["decoder"] = {{"type", "ByteLevel"}};
    t["added_tokens"] = prune::io::sorted_json::array();
    return t;
}

std::string error_of(const prune::io::sorted_json& t) {
    try {
        (void)bpe_tokenizer::from_json(t, "tok.json");
    } catch (const prune::format_error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("GPT-2's and Llama-3's patterns split as Oniguruma does") {
    // \s+(?!\S) leaves the last space of a run to the word after it; a lone tab stays alone.
    CHECK(pieces(gpt2_pattern, U"a   b\t c") == std::vector<std::u32string>{U"a", U"  ", U" b", U"\t", U" c"});
    CHECK(pieces(gpt2_pattern, U"it's 12ab!!") == std::vector<std::u32string>{U"it", U"'s", U" 12", U"ab", U"!!"});
    CHECK(pieces(gpt2_pattern, U"end  ") == std::vector<std::u32string>{U"end", U"  "});
    // Llama-3: case-insensitive contractions (with the long s), digits in threes, newlines kept with punctuation.
    CHECK(pieces(llama3_pattern, U"IT'S it'\u017F") == std::vector<std::u32string>{U"IT", U"'S", U" it", U"'\u017F"});
    CHECK(pieces(llama3_pattern, U"1234567") == std::vector<std::u32string>{U"123", U"456", U"7"});
    CHECK(pieces(llama3_pattern, U"a.\n\nb") == std::vector<std::u32string>{U"a", U".\n\n", U"b"});
    CHECK(pieces(llama3_pattern, U"x \n y") == std::vector<std::u32string>{U"x", U" \n", U" y"});
}

TEST_CASE("regex features: quantifiers, lazy, possessive, lookahead, classes") {
    CHECK(pieces(U"a{2,3}", U"aaaaaaa") == std::vector<std::u32string>{U"aaa", U"aaa", U"a"});
    CHECK(pieces(U"a+?b|a", U"aab") == std::vector<std::u32string>{U"aab"});
    CHECK(pieces(U"a++a|b", U"aaab") == std::vector<std::u32string>{U"aaa", U"b"});  // possessive never gives back
    CHECK(pieces(U"x(?=y)", U"xyxz") == std::vector<std::u32string>{U"x", U"yxz"});
    CHECK(pieces(U"[^\\p{L}]+", U"ab12!c") == std::vector<std::u32string>{U"ab", U"12!", U"c"});
    CHECK(pieces(U"\\x41|\\u00e9|\\x{1F600}", U"A\u00e9\U0001F600") == std::vector<std::u32string>{U"A", U"\u00e9", U"\U0001F600"});
    CHECK(pieces(U"(?:ab)?c", U"abcc") == std::vector<std::u32string>{U"abc", U"c"});
}

TEST_CASE("unsupported regex features are refused with what was met") {
    for (const char32_t* bad : {U"\\w+", U"^a", U"(?<=a)b", U"a{2}+", U"(ab)+", U"\\p{Han}", U"[[:alpha:]]", U"a*",
                                U"(?i:[a-z])", U"(?i:ss)", U"a|", U"(a", U"a)", U"\\1"}) {
        INFO(encode_utf8(bad));
        CHECK_THROWS_AS(split_regex::parse(bad, "p"), prune::format_error);
    }
    CHECK_THROWS_WITH(split_regex::parse(U"\\w", "tok.json: pre_tokenizer.pattern.Regex"),
                      Catch::Contains("tok.json: pre_tokenizer.pattern.Regex") && Catch::Contains("\\w is not supported"));
}

TEST_CASE("NFC composes, reorders and keeps singletons decomposed as Python's unicodedata") {
    CHECK(nfc(U"e\u0301") == U"\u00e9");
    CHECK(nfc(U"\u212b") == U"\u00c5");                       // Angstrom sign -> A with ring
    CHECK(nfc(U"\u1e9b\u0323") == U"\u1e9b\u0323");            // Python: NFC('ẛ̣') == 'ẛ̣'
    CHECK(nfc(U"a\u0323\u0302") == U"\u1ead");                 // dot below then circumflex: ậ
    CHECK(nfc(U"a\u0302\u0323") == U"\u1ead");                 // reordered first
    CHECK(nfc(U"\u1100\u1161\u11a8") == U"\uac01");            // conjoining jamo -> 각
    CHECK(nfc(U"\u0344") == U"\u0308\u0301");                  // a composition exclusion
    CHECK(nfc(U"plain ascii") == U"plain ascii");
}

TEST_CASE("BPE merges by rank, leftmost first, as Hugging Face's priority queue") {
    // "a b" rank 0, "b c" rank 1: "abc" -> ab c; "bbc" -> b bc; "aaaa" with "a a" -> aa aa.
    const auto tok = bpe_tokenizer::from_json(tiny({"ab", "bc", "aa"}, {"a b", "b c", "a a"}), "tiny");
    auto id = [&](const char* s) { return *tok.token_to_id(s); };
    CHECK(tok.encode("abc") == std::vector<std::int32_t>{id("ab"), id("c")});
    CHECK(tok.encode("bbc") == std::vector<std::int32_t>{id("b"), id("bc")});
    CHECK(tok.encode("aaaaa") == std::vector<std::int32_t>{id("aa"), id("aa"), id("a")});
    CHECK(tok.decode(tok.encode("abc \xE2\x82\xAC")) == "abc \xE2\x82\xAC");
    CHECK(tok.decode(tok.encode("\xFF")) == "\xEF\xBF\xBD");   // invalid UTF-8 is read as U+FFFD
    const std::int32_t half_euro[] = {0xE2, 0x82};             // bytes of a cut character
    CHECK(tok.decode(half_euro) == "\xEF\xBF\xBD");
    CHECK(tok.decode_bytes(half_euro) == "\xE2\x82");
    CHECK_THROWS_AS(tok.decode(std::vector<std::int32_t>{999}), prune::value_error);
}

TEST_CASE("malformed and unsupported tokenizer.json files are refused, naming the path") {
    auto base = tiny({"ab"}, {"a b"});
    auto with = [&](auto edit) {
        auto t = base;
        edit(t);
        return error_of(t);
    };
    CHECK(error_of(base).empty());
    CHECK_THAT(with([](auto& t) { t.erase("model"); }), Catch::Contains("tok.json: model is missing"));
    CHECK_THAT(with([](auto& t) { t["model"]["type"] = "WordPiece"; }), Catch::Contains("model.type is \"WordPiece\" (expected \"BPE\""));
    CHECK_THAT(with([](auto& t) { t["model"]["type"] = "Unigram"; }), Catch::Contains("model.type is \"Unigram\""));
    CHECK_THAT(with([](auto& t) { t["model"]["byte_fallback"] = true; }), Catch::Contains("model.byte_fallback is true") && Catch::Contains("Llama-2"));
    CHECK_THAT(with([](auto& t) { t["model"]["merges"] = {"a zz"}; }), Catch::Contains("model.merges[0] names \"zz\", which is not in model.vocab"));
    CHECK_THAT(with([](auto& t) { t["model"]["merges"] = {"b c"}; }), Catch::Contains("model.merges[0] names \"bc\""));
    CHECK_THAT(with([](auto& t) { t["model"]["merges"] = {"a b c"}; }), Catch::Contains("model.merges[0] is \"a b c\""));
    CHECK_THAT(with([](auto& t) { t["model"]["vocab"]["ab"] = 5; }), Catch::Contains("has id 5, already the id of") && Catch::Contains("(expected unique ids)"));
    CHECK_THAT(with([](auto& t) { t["model"]["vocab"]["ab"] = 300; }), Catch::Contains("model.vocab[\"ab\"] is 300 (expected an id in [0, 257)"));
    CHECK_THAT(with([](auto& t) { t["model"]["vocab"]["ab"] = -1; }), Catch::Contains("model.vocab[\"ab\"] is -1"));
    CHECK_THAT(with([](auto& t) { t["model"]["dropout"] = 0.1; }), Catch::Contains("model.dropout is 0.1"));
    CHECK_THAT(with([](auto& t) { t["normalizer"] = {{"type", "Lowercase"}}; }), Catch::Contains("normalizer.type is \"Lowercase\""));
    CHECK_THAT(with([](auto& t) { t["pre_tokenizer"] = {{"type", "Metaspace"}}; }), Catch::Contains("pre_tokenizer.type is \"Metaspace\""));
    CHECK_THAT(with([](auto& t) { t["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", prune::io::sorted_json::array()}}; }),
               Catch::Contains("pre_tokenizer has no ByteLevel step"));
    CHECK_THAT(with([](auto& t) { t["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}, {"invert", false}}}}}; }),
               Catch::Contains("pre_tokenizer.pretokenizers[0].pattern.Regex: regex \"\\w+\""));
    CHECK_THAT(with([](auto& t) { t["decoder"] = {{"type", "Metaspace"}}; }), Catch::Contains("decoder.type is \"Metaspace\""));
    CHECK_THAT(with([](auto& t) { t["truncation"] = {{"max_length", 512}}; }), Catch::Contains("truncation is set"));
    CHECK_THAT(with([](auto& t) { t["post_processor"] = {{"type", "BertProcessing"}}; }), Catch::Contains("post_processor.type is \"BertProcessing\""));
    CHECK_THAT(with([](auto& t) { t["added_tokens"] = {{{"id", 300}, {"content", "<s>"}, {"special", true}}}; }),
               Catch::Contains("added_tokens[0].id is 300 but \"<s>\" gets id 257"));
    CHECK_THAT(with([](auto& t) {
                   t["added_tokens"] = {{{"id", 257}, {"content", "<s>"}}, {{"id", 257}, {"content", "<s>"}}};
               }),
               Catch::Contains("added_tokens[1].content \"<s>\" is already an added token"));
    CHECK_THAT(with([](auto& t) {
                   t["added_tokens"] = {{{"id", 257}, {"content", "<s>"}}};
                   t["post_processor"] = {{"type", "TemplateProcessing"},
                                          {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                                          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {999}}}}}}};
               }),
               Catch::Contains("post_processor.special_tokens[\"<s>\"].ids holds 999 (expected ids in [0, 258))"));
    CHECK_THROWS_WITH(bpe_tokenizer::from_string("{\"model\": 1, \"model\": 2}", "dup.json"), Catch::Contains("'model' more than once"));
    CHECK_THROWS_AS(bpe_tokenizer::from_file("/nonexistent/tokenizer.json"), prune::io_error);
}

TEST_CASE("added tokens: lstrip/rstrip swallow whitespace, single_word needs word boundaries, special ones can be skipped") {
    auto t = tiny({}, {});
    t["added_tokens"] = {{{"id", 256}, {"content", "<m>"}, {"lstrip", true}, {"rstrip", true}, {"special", true}},
                         {{"id", 257}, {"content", "[w]"}, {"single_word", true}}};
    const auto tok = bpe_tokenizer::from_json(t, "t");
    CHECK(tok.encode("a  <m>  b") == std::vector<std::int32_t>{'a', 256, 'b'});
    CHECK(tok.encode("x[w]") == std::vector<std::int32_t>{'x', '[', 'w', ']'});  // not a single word
    CHECK(tok.encode("x [w] y") == std::vector<std::int32_t>{'x', ' ', 257, ' ', 'y'});  // byte b has id b here
    CHECK(tok.decode(tok.encode("a<m>b"), true) == "ab");
    CHECK(tok.decode(tok.encode("a<m>b")) == "a<m>b");
    CHECK(tok.is_special(256));
    CHECK_FALSE(tok.is_special(257));
}
