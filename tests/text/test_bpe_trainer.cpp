// The byte-level BPE trainer (prune/text/bpe_trainer.hpp) without node: merge order and its
// tie rule on corpora small enough to count by hand, min_frequency, vocab_size, special
// tokens, the saved tokenizer.json (loaded back, atomic) and option errors. Its agreement
// with Hugging Face's own trainer and tokenizer is in test_bpe_reference.
#include <prune/text/bpe_trainer.hpp>

#include "../support/files.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace prune::text;

namespace {
bpe_trainer_options plain(std::size_t vocab_size, std::uint64_t min_frequency = 1) {
    bpe_trainer_options o;
    o.vocab_size = vocab_size;
    o.min_frequency = min_frequency;
    o.special_tokens = {};
    o.full_alphabet = false;
    return o;
}
using merge_list = std::vector<std::pair<std::string, std::string>>;
const std::string G = "\xC4\xA0";  // Ġ, the byte-level space
}  // namespace

TEST_CASE("merges the most frequent pair, ties to the smallest (left id, right id)") {
    // Lines "aab aab\n", "ba\n", "ba" -> words aab 1, Ġaab 1, Ċ 2, ba 2 (GPT-2 pre-tokenizer).
    // Alphabet by code point: a=0 b=1 Ċ=2 Ġ=3. Pair counts: (a,a) 2, (a,b) 2, (b,a) 2, (Ġ,a) 1.
    // Tie at 2: (0,0) is smallest -> aa (id 4). Then (b,a) = (1,0) beats (aa,b) = (4,1), both 2:
    // ba (5); then aa b -> aab (6); then Ġ aab (count 1) -> Ġaab; no pair is left.
    bpe_trainer t(plain(100));
    t.add_text("aab aab\nba\nba");
    CHECK(t.word_counts().at("aab") == 1);
    CHECK(t.word_counts().at(G + "aab") == 1);
    CHECK(t.word_counts().at("ba") == 2);
    CHECK(t.word_counts().at("\xC4\x8A") == 2);  // Ċ, the byte-level newline
    const auto m = t.train();
    CHECK(m.merges == merge_list{{"a", "a"}, {"b", "a"}, {"aa", "b"}, {G, "aab"}});
    CHECK(m.tokens == std::vector<std::string>{"a", "b", "\xC4\x8A", G, "aa", "ba", "aab", G + "aab"});
}

TEST_CASE("min_frequency and vocab_size stop training; specials come first; every byte with full_alphabet") {
    bpe_trainer t(plain(100, 2));
    t.add_text("aab aab\nba\nba");
    CHECK(t.train().merges == merge_list{{"a", "a"}, {"b", "a"}, {"aa", "b"}});  // Ġ aab occurs once
    bpe_trainer small(plain(5));
    small.add_text("aab aab\nba\nba");
    CHECK(small.train().merges == merge_list{{"a", "a"}});  // 4 characters + 1 merge = 5 ids
    bpe_trainer_options o = plain(300);
    o.special_tokens = {"<|endoftext|>", "<s>", "</s>", "<unk>"};
    o.full_alphabet = true;
    bpe_trainer full(o);
    full.add_text("aab aab\nba\nba");
    const auto m = full.train();
    CHECK(m.special_count == 4);
    CHECK(m.tokens[0] == "<|endoftext|>");
    CHECK(m.tokens[3] == "<unk>");
    CHECK(m.tokens[4] == "!");              // the byte alphabet by code point: '!' (0x21) first
    CHECK(m.tokens.size() == 4 + 256 + 4);  // four merges
}

TEST_CASE("the saved tokenizer.json loads back and round-trips any text") {
    bpe_trainer_options o;
    o.vocab_size = 400;
    o.special_tokens = {"<|endoftext|>", "<s>", "</s>"};
    o.bos_token = "<s>";
    o.eos_token = "</s>";
    bpe_trainer t(o);
    t.add_text("the cat sat on the mat.\nthe dog sat on the log.\n\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA4\x97\n");
    const auto model = t.train();
    prune_test::temp_dir dir("bpe_trainer");
    const auto path = dir.path() / "tokenizer.json";
    t.save(model, path);
    const auto tok = bpe_tokenizer::from_file(path);
    CHECK(tok.vocab_size() == model.tokens.size());
    CHECK(tok.bos_id() == 1);
    CHECK(tok.eos_id() == 2);
    const auto ids = tok.encode("the cat<|endoftext|> \xE2\x82\xAC unseen \xCE\xA9");
    CHECK(ids.front() == 1);
    CHECK(ids.back() == 2);
    CHECK(tok.decode(ids, true) == "the cat \xE2\x82\xAC unseen \xCE\xA9");
    CHECK(tok.decode(ids) == "<s>the cat<|endoftext|> \xE2\x82\xAC unseen \xCE\xA9</s>");
    CHECK(tok.encode("the", false) == std::vector<std::int32_t>{*tok.token_to_id("the")});
    CHECK(std::filesystem::directory_iterator(dir.path()) != std::filesystem::directory_iterator());
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
    CHECK(files == 1);  // no staging file left behind
    CHECK_THROWS_AS(t.save(model, dir.path() / "missing" / "tokenizer.json"), prune::io_error);
}

TEST_CASE("trainer options that cannot work are value_errors") {
    bpe_trainer_options o;
    o.special_tokens = {"<s>", "<s>"};
    CHECK_THROWS_AS(bpe_trainer(o), prune::value_error);
    o.special_tokens = {""};
    CHECK_THROWS_AS(bpe_trainer(o), prune::value_error);
    o.special_tokens = {"<s>"};
    o.eos_token = "</s>";
    CHECK_THROWS_WITH(bpe_trainer(o), Catch::Contains("\"</s>\" is not one of the special tokens"));
}
