// libFuzzer target: byte-level BPE (prune/text/bpe.hpp) — tokenizer.json parsing, the
// pre-tokenizer regex parser and matcher, encoding and decoding.
// Input: a tokenizer.json, the separator "\n--TEXT--\n", then the text (any bytes). Without
// the separator the whole input is text for a fixed tokenizer built in memory: the 256 byte
// characters, merges of a few common pairs, Llama-3's Split regex before ByteLevel, added
// tokens (special and not, single_word) and a BOS/EOS template.
// Properties: loading either succeeds or throws a prune::error (never a crash, a hang or an
// allocation sized by an unchecked number: ids are checked against the entries' count before
// any table is sized); every id encode() returns is in [0, vocab_size()); decode() returns
// valid UTF-8; with the fixed tokenizer (no normalizer, no lstrip/rstrip, the full byte
// alphabet) decode(encode(text, false)) is exactly the text after invalid UTF-8 became U+FFFD,
// and with special tokens skipped decode(encode(text)) drops only the special tokens' text.
// A loaded tokenizer's text is cut to 4 KB so that a pathological pattern stops at the regex's
// step limit (a value_error) within the run's timeout.
#include <prune/text/bpe.hpp>

#include "common.hpp"

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

std::string fixed_json() {
    using prune::io::sorted_json;
    sorted_json vocab = sorted_json::object();
    for (unsigned b = 0; b < 256; ++b) {
        std::string s;
        prune::text::append_utf8(s, prune::text::byte_to_unicode()[b]);
        vocab[s] = b;
    }
    const std::string G = "\xC4\xA0";
    const std::vector<std::pair<std::string, std::string>> merges = {
        {G, "t"}, {"h", "e"}, {G + "t", "he"}, {"i", "n"}, {G, "a"}, {"e", "r"}, {G, G}, {"\xC4\x8A", "\xC4\x8A"}};
    sorted_json merge_list = sorted_json::array();
    for (const auto& [a, b] : merges) {
        if (!vocab.contains(a + b)) vocab[a + b] = vocab.size();
        merge_list.push_back({a, b});
    }
    const auto n = vocab.size();
    sorted_json t;
    t["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}, {"ignore_merges", true}};
    t["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers",
                           {{{"type", "Split"},
                             {"pattern", {{"Regex", prune::text::encode_utf8(prune::text::llama3_pattern)}}},
                             {"behavior", "Isolated"},
                             {"invert", false}},
                            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    t["decoder"] = {{"type", "ByteLevel"}};
    t["added_tokens"] = {{{"id", n}, {"content", "<s>"}, {"special", true}},
                         {{"id", n + 1}, {"content", "</s>"}, {"special", true}},
                         {{"id", n + 2}, {"content", "<|x|>"}, {"special", false}, {"single_word", true}}};
    t["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}, {{"SpecialToken", {{"id", "</s>"}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {n}}}}, {"</s>", {{"id", "</s>"}, {"ids", {n + 1}}}}}}};
    return t.dump();
}

const prune::text::bpe_tokenizer& fixed_tokenizer() {
    static const auto tok = prune::text::bpe_tokenizer::from_string(fixed_json(), "fixed");
    return tok;
}

void check_ids(const prune::text::bpe_tokenizer& tok, const std::vector<std::int32_t>& ids) {
    for (auto id : ids)
        if (id < 0 || static_cast<std::size_t>(id) >= tok.vocab_size()) std::abort();
}

// The text with the special tokens' contents removed, scanning as the tokenizer does (left to
// right, the longest added token at the first position where one starts): what decode(ids,
// true) gives back.
std::string without_specials(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        if (text.compare(i, 4, "</s>") == 0) {
            i += 4;
        } else if (text.compare(i, 3, "<s>") == 0) {
            i += 3;
        } else if (text.compare(i, 5, "<|x|>") == 0) {
            out += text.substr(i, 5);
            i += 5;
        } else {
            out += text[i++];
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::text;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string_view separator = "\n--TEXT--\n";
    const std::size_t split = input.find(separator);
    if (split != std::string_view::npos) {
        std::optional<bpe_tokenizer> loaded;
        try {
            loaded = bpe_tokenizer::from_string(input.substr(0, split), "fuzz.json");
        } catch (const prune::error&) {
            return 0;
        }
        const std::string_view text = input.substr(split + separator.size()).substr(0, 4096);
        try {
            const auto ids = loaded->encode(text);
            check_ids(*loaded, ids);
            const std::string decoded = loaded->decode(ids);
            if (encode_utf8(decode_utf8(decoded)) != decoded) std::abort();
            (void)loaded->decode(ids, true);
        } catch (const prune::value_error&) {  // the regex step limit
        }
        return 0;
    }
    const auto& tok = fixed_tokenizer();
    const std::string valid = encode_utf8(decode_utf8(input));
    const auto plain = tok.encode(input, false);
    check_ids(tok, plain);
    if (tok.decode(plain) != valid) std::abort();
    const auto ids = tok.encode(input);
    check_ids(tok, ids);
    if (ids.size() != plain.size() + 2 || ids.front() != *tok.bos_id() || ids.back() != *tok.eos_id()) std::abort();
    if (tok.decode(ids, true) != without_specials(valid)) std::abort();
    return 0;
}
