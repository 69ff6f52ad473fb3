// libFuzzer target: a vocab.txt and text through BERT's tokenizer (prune/text/wordpiece.hpp).
// Input: the vocab.txt bytes, the separator "\n--TEXT--\n", then the text bytes (any
// bytes, invalid UTF-8 included). Byte 0 of the text picks the options: lower-casing,
// accent stripping, CJK splitting, max_input_chars_per_word and the max_length of the
// encodings. The vocabulary is read with vocabulary::load from a private temporary file;
// when it is rejected (a prune::error), a fixed vocabulary is used so the text is still
// tokenized. Without the separator the whole input is text for the fixed vocabulary.
// Properties: decode -> encode -> decode of UTF-8 is stable; basic_tokenize never yields
// an empty word; every word piece is in the vocabulary; encode() of a single text and of
// a pair (split in the middle) starts with [CLS], ends with [SEP], has matching
// token_type_ids / attention_mask, ids inside the vocabulary and respects max_length;
// an accepted vocabulary written back with to_text() loads to the same tokens.
// (Replaces the stand-alone harness that was tests/text/fuzz_tokenizer.cpp.)
#include <prune/text/wordpiece.hpp>

#include "common.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include <unistd.h>

namespace {
const std::filesystem::path& directory() {
    static const std::filesystem::path dir = prune_fuzz::make_private_directory("prune-fuzz-vocab-");
    return dir;
}

using prune_fuzz::write;

const prune::text::vocabulary& fixed_vocabulary() {
    static const prune::text::vocabulary vocab = prune::text::vocabulary::from_tokens(
        {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##a", "##b", "ab", "##ab", "\xC3\xA9", "##\xC3\xA9",
         "the", "##s", "un", "##want", "##ed", ",", ".", "\xE4\xB8\xAD", "\xCF\x83"});
    return vocab;
}

void check_encoding(const prune::text::encoding& e, const prune::text::vocabulary& vocab, std::size_t max_length) {
    const std::size_t n = e.input_ids.size();
    if (n < 2 || e.token_type_ids.size() != n || e.attention_mask.size() != n) std::abort();
    if (max_length != 0 && n > max_length) std::abort();
    if (e.input_ids.front() != vocab.cls_id() || e.input_ids.back() != vocab.sep_id()) std::abort();
    for (std::size_t i = 0; i < n; ++i) {
        if (e.input_ids[i] < 0 || static_cast<std::size_t>(e.input_ids[i]) >= vocab.size()) std::abort();
        if (e.attention_mask[i] != 1 || (e.token_type_ids[i] != 0 && e.token_type_ids[i] != 1)) std::abort();
        if (i > 0 && e.token_type_ids[i] < e.token_type_ids[i - 1]) std::abort();
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::text;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string_view separator = "\n--TEXT--\n";
    const std::size_t split = input.find(separator);
    std::string_view text = split == std::string_view::npos ? input : input.substr(split + separator.size());

    std::optional<vocabulary> loaded;
    if (split != std::string_view::npos) {
        const auto path = directory() / "vocab.txt";
        write(path, input.substr(0, split));
        try {
            loaded = vocabulary::load(path);
        } catch (const prune::error&) {
        }
        if (loaded) {
            bool carriage_return = false;  // load() drops one trailing '\r', so "x\r\r" cannot round-trip
            for (const auto& t : loaded->tokens()) carriage_return = carriage_return || t.back() == '\r';
            if (!carriage_return) {
                write(path, loaded->to_text());
                if (vocabulary::load(path).tokens() != loaded->tokens()) std::abort();
            }
        }
    }
    const vocabulary& vocab = loaded ? *loaded : fixed_vocabulary();

    tokenizer_options options;
    std::size_t max_length = 0;
    if (!text.empty()) {
        const auto flags = static_cast<unsigned char>(text[0]);
        options.basic.lower_case = (flags & 1) == 0;
        options.basic.strip_accents = (flags & 2) == 0;
        options.basic.split_cjk = (flags & 4) == 0;
        options.max_input_chars_per_word = (flags & 8) ? 3 : 100;
        max_length = (flags >> 4) * 3;  // 0 (no limit), 3, 6, ..., 45
        text.remove_prefix(1);
    }

    const std::u32string decoded = decode_utf8(text);
    const std::string utf8 = encode_utf8(decoded);
    if (decode_utf8(utf8) != decoded) std::abort();
    for (const auto& word : basic_tokenize(text, options.basic))
        if (word.empty()) std::abort();

    const tokenizer tok(vocab, options);
    const auto pieces = tok.tokenize(text);
    const auto ids = tok.token_ids(text);
    if (ids.size() != pieces.size()) std::abort();
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        if (!vocab.contains(pieces[i]) || vocab.token(ids[i]) != pieces[i]) std::abort();
    }
    try {
        check_encoding(tok.encode(text, max_length), vocab, max_length);
    } catch (const prune::error&) {
        if (max_length >= 2) std::abort();  // only a max_length below the 2 special tokens may throw
    }
    try {
        check_encoding(tok.encode(text.substr(0, text.size() / 2), text.substr(text.size() / 2), max_length), vocab,
                       max_length);
    } catch (const prune::error&) {
        if (max_length >= 3) std::abort();
    }
    return 0;
}
