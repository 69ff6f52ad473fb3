// prune/text/wordpiece.hpp: BERT's uncased tokenizer, as Hugging Face's (slow, Python)
// BertTokenizer builds it, from a vocab.txt.
//
// - UTF-8 in, robustly: every maximal invalid subsequence decodes to U+FFFD (never UB).
// - basic_tokenize: HF's BasicTokenizer: clean text (drop U+0000, U+FFFD and category C*
//   except \t \n \r; whitespace -> ' '), surround CJK ideographs with spaces, split on
//   Python whitespace, lower-case (Python's str.lower, final sigma included), strip
//   accents (NFD, then drop Mn), split off punctuation (ASCII 33-47, 58-64, 91-96,
//   123-126 and category P*). The Unicode properties come from unicode_tables.hpp,
//   generated from Python's unicodedata. HF's NFC step (added in transformers 4.3x)
//   is not applied: it cannot change the result once NFD and lower-casing follow.
// - wordpiece: greedy longest-match-first with "##" continuations; a word with no
//   segmentation, or longer than 100 code points, becomes [UNK].
// - tokenizer::encode(text [, text_pair], max_length): [CLS] A [SEP] (B [SEP]),
//   token_type_ids 0/1, attention_mask 1, longest-first truncation as HF's
//   truncate_sequences does (remove from A while it is longer than B, else from B).
//   The special tokens' own strings in the text ("[MASK]") stay single tokens, as
//   HF's no-split special tokens do.
// - vocabulary: vocab.txt (one token per line, id = line number), checked for the five
//   special tokens and duplicates.
#pragma once

#include <prune/text/unicode_tables.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prune::text {

// ---------------------------------------------------------------------------------------
// UTF-8

/// Decodes UTF-8; each maximal invalid subsequence (WHATWG / Unicode 3.9 practice) becomes U+FFFD.
inline std::u32string decode_utf8(std::string_view bytes) {
    std::u32string out;
    out.reserve(bytes.size());
    const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
    const std::size_t n = bytes.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char b0 = s[i];
        if (b0 < 0x80) {
            out.push_back(b0);
            ++i;
            continue;
        }
        std::size_t need = 0;
        char32_t cp = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            need = 1;
            cp = b0 & 0x1Fu;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            need = 2;
            cp = b0 & 0x0Fu;
            if (b0 == 0xE0) lo = 0xA0;        // no overlongs
            if (b0 == 0xED) hi = 0x9F;        // no surrogates
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            need = 3;
            cp = b0 & 0x07u;
            if (b0 == 0xF0) lo = 0x90;        // no overlongs
            if (b0 == 0xF4) hi = 0x8F;        // nothing above U+10FFFF
        } else {
            out.push_back(U'\uFFFD');
            ++i;
            continue;
        }
        std::size_t j = 1;
        bool ok = true;
        for (; j <= need; ++j) {
            if (i + j >= n) {
                ok = false;
                break;
            }
            const unsigned char b = s[i + j];
            const unsigned char min = j == 1 ? lo : 0x80, max = j == 1 ? hi : 0xBF;
            if (b < min || b > max) {
                ok = false;
                break;
            }
            cp = (cp << 6) | (b & 0x3Fu);
        }
        if (!ok) {
            out.push_back(U'\uFFFD');
            i += j;  // the lead byte and the valid continuation bytes seen so far
            continue;
        }
        out.push_back(cp);
        i += need + 1;
    }
    return out;
}

/// Appends the UTF-8 encoding of one code point (must be a scalar value) to `out`.
inline void append_utf8(std::string& out, char32_t cp) {
    PRUNE_ASSERT(cp < 0x110000 && (cp < 0xD800 || cp > 0xDFFF));
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

/// Encodes code points (scalar values) as UTF-8.
inline std::string encode_utf8(std::u32string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char32_t cp : text) append_utf8(out, cp);
    return out;
}

// ---------------------------------------------------------------------------------------
// Character classes (HF's _is_whitespace, _is_control, _is_punctuation, _is_chinese_char)

namespace unicode {

/// True when `cp` lies in one of the sorted, disjoint `ranges`.
inline bool in_ranges(char32_t cp, std::span<const code_range> ranges) {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                               [](char32_t c, const code_range& r) { return c < r.first; });
    return it != ranges.begin() && cp <= std::prev(it)->last;
}

/// The mapping entry of `cp` in a table sorted by source, or nullptr.
inline const code_mapping* find_mapping(char32_t cp, std::span<const code_mapping> table) {
    auto it = std::lower_bound(table.begin(), table.end(), cp,
                               [](const code_mapping& m, char32_t c) { return m.source < c; });
    return it != table.end() && it->source == cp ? &*it : nullptr;
}

}  // namespace unicode

/// HF's _is_whitespace: ' ', \t, \n, \r or category Zs.
inline bool is_bert_whitespace(char32_t cp) {
    return cp == U' ' || cp == U'\t' || cp == U'\n' || cp == U'\r' ||
           (cp >= 0x80 && unicode::in_ranges(cp, unicode::space_separator_ranges));
}

/// HF's _is_control: category C* except \t, \n, \r (code points past U+10FFFF count too).
inline bool is_bert_control(char32_t cp) {
    if (cp == U'\t' || cp == U'\n' || cp == U'\r') return false;
    if (cp >= 0x20 && cp < 0x7F) return false;  // printable ASCII (fast path)
    return cp >= 0x110000 || unicode::in_ranges(cp, unicode::other_ranges);
}

/// HF's _is_punctuation: ASCII 33-47, 58-64, 91-96, 123-126, or category P*.
inline bool is_bert_punctuation(char32_t cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
        (cp >= 123 && cp <= 126))
        return true;
    if (cp < 0x80) return false;  // fast path: the rest of ASCII
    return unicode::in_ranges(cp, unicode::punctuation_ranges);
}

/// HF's _is_chinese_char: the CJK Unified Ideographs blocks (not Hiragana, Katakana, Hangul).
inline bool is_cjk_ideograph(char32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/// Python's str.isspace(): what str.split() with no argument splits on.
inline bool is_python_space(char32_t cp) {
    if (cp < 0x80) return cp == U' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return unicode::in_ranges(cp, unicode::python_space_ranges);
}

/// Python's str.lower() of a whole string (full case mapping and, when `final_sigma`, the
/// final-sigma rule; without it, as lower-casing one character at a time, capital sigma is always σ).
inline std::u32string to_lower(std::u32string_view text, bool final_sigma_rule = true) {
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char32_t cp = text[i];
        if (cp < 0x80) {  // fast path: ASCII
            out.push_back(cp >= U'A' && cp <= U'Z' ? cp + 32 : cp);
            continue;
        }
        if (cp == 0x3A3 && !final_sigma_rule) {  // not in the table: it is contextual
            out.push_back(0x3C3);
            continue;
        }
        if (cp == 0x3A3) {  // CPython's handle_capital_sigma
            auto ignorable = [](char32_t c) { return unicode::in_ranges(c, unicode::case_ignorable_ranges); };
            auto cased = [](char32_t c) { return unicode::in_ranges(c, unicode::cased_ranges); };
            std::size_t j = i;
            while (j > 0 && ignorable(text[j - 1])) --j;
            bool final_sigma = j > 0 && cased(text[j - 1]);
            if (final_sigma) {
                std::size_t k = i + 1;
                while (k < text.size() && ignorable(text[k])) ++k;
                final_sigma = k == text.size() || !cased(text[k]);
            }
            out.push_back(final_sigma ? char32_t{0x3C2} : char32_t{0x3C3});
            continue;
        }
        if (const auto* m = unicode::find_mapping(cp, unicode::lowercase)) {
            out.append(unicode::lowercase_pool + m->offset, m->length);
        } else {
            out.push_back(cp);
        }
    }
    return out;
}

/// HF's _run_strip_accents: NFD (canonical decomposition and reordering), then drop category Mn.
inline std::u32string strip_accents(std::u32string_view text) {
    if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; }))
        return std::u32string(text);  // fast path: ASCII has no decomposition and no marks
    // 1. Full canonical decomposition (Hangul syllables algorithmically).
    std::u32string decomposed;
    decomposed.reserve(text.size());
    for (char32_t cp : text) {
        if (cp >= 0xAC00 && cp <= 0xD7A3) {
            const char32_t s = cp - 0xAC00;
            decomposed.push_back(0x1100 + s / (21 * 28));
            decomposed.push_back(0x1161 + (s % (21 * 28)) / 28);
            if (s % 28 != 0) decomposed.push_back(0x11A7 + s % 28);
        } else if (const auto* m = unicode::find_mapping(cp, unicode::canonical_decomposition)) {
            decomposed.append(unicode::canonical_decomposition_pool + m->offset, m->length);
        } else {
            decomposed.push_back(cp);
        }
    }
    // 2. Drop Mn; within each run of non-zero combining class, the surviving (non-Mn) marks
    //    are stably sorted by class, which is what canonical reordering leaves of them.
    auto combining = [](char32_t cp) -> int {
        if (!unicode::in_ranges(cp, unicode::nonzero_combining_ranges)) return 0;
        for (const auto& c : unicode::spacing_combining_classes)
            if (c.code == cp) return c.value;
        return 255;  // an Mn mark: removed below, its class no longer matters
    };
    std::u32string out;
    out.reserve(decomposed.size());
    std::size_t i = 0;
    while (i < decomposed.size()) {
        if (combining(decomposed[i]) == 0) {
            if (!unicode::in_ranges(decomposed[i], unicode::nonspacing_mark_ranges)) out.push_back(decomposed[i]);
            ++i;
            continue;
        }
        std::vector<std::pair<int, char32_t>> run;
        for (; i < decomposed.size(); ++i) {
            const int ccc = combining(decomposed[i]);
            if (ccc == 0) break;
            if (!unicode::in_ranges(decomposed[i], unicode::nonspacing_mark_ranges)) run.emplace_back(ccc, decomposed[i]);
        }
        std::stable_sort(run.begin(), run.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (const auto& r : run) out.push_back(r.second);
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// BasicTokenizer

/// Options of the basic tokenizer (HF's BasicTokenizer arguments; the defaults are BERT uncased).
struct basic_tokenizer_options {
    bool lower_case = true;     ///< do_lower_case
    bool strip_accents = true;  ///< strip_accents (HF's None follows do_lower_case; applied only when lower-casing or set)
    bool split_cjk = true;      ///< tokenize_chinese_chars
    bool final_sigma = true;    ///< lower-case with Python's final-sigma rule (BasicTokenizer alone does; see tokenizer)
};

/// Splits on Python whitespace (str.split() with no argument).
inline std::vector<std::u32string> split_python_whitespace(std::u32string_view text) {
    std::vector<std::u32string> out;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_python_space(text[i])) ++i;
        std::size_t j = i;
        while (j < text.size() && !is_python_space(text[j])) ++j;
        if (j > i) out.emplace_back(text.substr(i, j - i));
        i = j;
    }
    return out;
}

/// HF's BasicTokenizer.tokenize on decoded text: clean, CJK split, whitespace split, lower-case,
/// strip accents, punctuation split.
inline std::vector<std::u32string> basic_tokenize(std::u32string_view text, const basic_tokenizer_options& options = {}) {
    std::u32string cleaned;
    cleaned.reserve(text.size());
    for (char32_t cp : text) {
        if (cp == 0 || cp == 0xFFFD || is_bert_control(cp)) continue;
        if (is_bert_whitespace(cp)) {
            cleaned.push_back(U' ');
        } else if (options.split_cjk && is_cjk_ideograph(cp)) {
            cleaned.push_back(U' ');
            cleaned.push_back(cp);
            cleaned.push_back(U' ');
        } else {
            cleaned.push_back(cp);
        }
    }
    std::u32string joined;  // HF: whitespace_tokenize(" ".join(split_tokens))
    for (auto& token : split_python_whitespace(cleaned)) {
        if (options.lower_case) {
            token = to_lower(token, options.final_sigma);
            if (options.strip_accents) token = strip_accents(token);
        } else if (options.strip_accents) {
            token = strip_accents(token);
        }
        bool start_new_word = true;
        for (char32_t cp : token) {
            if (is_bert_punctuation(cp)) {
                joined.push_back(U' ');
                joined.push_back(cp);
                joined.push_back(U' ');
                start_new_word = true;
            } else {
                if (start_new_word) joined.push_back(U' ');
                joined.push_back(cp);
                start_new_word = false;
            }
        }
        joined.push_back(U' ');
    }
    return split_python_whitespace(joined);
}

/// HF's BasicTokenizer.tokenize on UTF-8 text (invalid bytes become U+FFFD, which cleaning drops).
inline std::vector<std::string> basic_tokenize(std::string_view utf8, const basic_tokenizer_options& options = {}) {
    std::vector<std::string> out;
    for (const auto& token : basic_tokenize(std::u32string_view(decode_utf8(utf8)), options))
        out.push_back(encode_utf8(token));
    return out;
}

// ---------------------------------------------------------------------------------------
// Vocabulary

/// The special tokens of BERT's vocabulary, in the order prune's vocabulary builder writes them.
inline constexpr std::array<std::string_view, 5> special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

/// A WordPiece vocabulary: token strings and their ids (id = position = line number in vocab.txt).
class vocabulary {
public:
    /// Builds from tokens in id order; throws format_error on a duplicate, an empty token or a missing special token.
    static vocabulary from_tokens(std::vector<std::string> tokens, const std::string& origin = "vocabulary") {
        vocabulary v;
        v.tokens_ = std::move(tokens);
        v.ids_.reserve(v.tokens_.size());
        for (std::size_t i = 0; i < v.tokens_.size(); ++i) {
            const auto& t = v.tokens_[i];
            if (t.empty())
                throw format_error(origin + ": line " + std::to_string(i + 1) + " is an empty token (expected one token per line)");
            auto [it, inserted] = v.ids_.emplace(t, static_cast<std::int32_t>(i));
            if (!inserted)
                throw format_error(origin + ": duplicate token '" + t + "' on lines " + std::to_string(it->second + 1) +
                                   " and " + std::to_string(i + 1));
        }
        if (v.tokens_.size() > static_cast<std::size_t>(INT32_MAX))
            throw format_error(origin + ": too many tokens");
        std::array<std::int32_t*, 5> slots = {&v.pad_, &v.unk_, &v.cls_, &v.sep_, &v.mask_};
        for (std::size_t k = 0; k < special_tokens.size(); ++k) {
            auto it = v.ids_.find(std::string(special_tokens[k]));
            if (it == v.ids_.end())
                throw format_error(origin + ": missing special token " + std::string(special_tokens[k]) +
                                   " (a BERT vocabulary needs [PAD], [UNK], [CLS], [SEP] and [MASK])");
            *slots[k] = it->second;
        }
        return v;
    }

    /// Loads vocab.txt (UTF-8, one token per line, id = line number - 1; a trailing '\r' is dropped).
    static vocabulary load(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw io_error("cannot open vocabulary " + path.string() + " (expected a vocab.txt, one token per line)");
        std::vector<std::string> tokens;
        std::string line;
        while (std::getline(in, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            tokens.push_back(line);
        }
        if (in.bad()) throw io_error("error while reading vocabulary " + path.string());
        return from_tokens(std::move(tokens), path.string());
    }

    /// The token text of every id, one per line ('\n'), as vocab.txt holds it.
    std::string to_text() const {
        std::string out;
        for (const auto& t : tokens_) {
            out += t;
            out += '\n';
        }
        return out;
    }

    /// The id of `token`, or nothing.
    std::optional<std::int32_t> find(const std::string& token) const {
        auto it = ids_.find(token);
        if (it == ids_.end()) return std::nullopt;
        return it->second;
    }
    /// True when `token` is in the vocabulary.
    bool contains(const std::string& token) const { return ids_.count(token) != 0; }
    /// The token of `id`; throws value_error when out of range.
    const std::string& token(std::int32_t id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size())
            throw value_error("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                              std::to_string(tokens_.size()) + ")");
        return tokens_[static_cast<std::size_t>(id)];
    }
    /// Number of tokens.
    std::size_t size() const { return tokens_.size(); }
    /// All tokens in id order.
    const std::vector<std::string>& tokens() const { return tokens_; }
    /// Id of [PAD].
    std::int32_t pad_id() const { return pad_; }
    /// Id of [UNK].
    std::int32_t unk_id() const { return unk_; }
    /// Id of [CLS].
    std::int32_t cls_id() const { return cls_; }
    /// Id of [SEP].
    std::int32_t sep_id() const { return sep_; }
    /// Id of [MASK].
    std::int32_t mask_id() const { return mask_; }

private:
    std::vector<std::string> tokens_;
    std::unordered_map<std::string, std::int32_t> ids_;
    std::int32_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
};

// ---------------------------------------------------------------------------------------
// WordPiece and the full tokenizer

/// HF's WordpieceTokenizer on one word (no whitespace): greedy longest-match-first pieces,
/// "##" before continuations; [UNK] alone when some position has no piece or the word is
/// longer than `max_chars` code points.
inline std::vector<std::string> wordpiece(std::u32string_view word, const vocabulary& vocab, std::size_t max_chars = 100) {
    if (word.size() > max_chars) return {vocab.token(vocab.unk_id())};
    std::vector<std::size_t> offsets;  // byte offset of each code point in the UTF-8 word
    std::string bytes;
    for (char32_t cp : word) {
        offsets.push_back(bytes.size());
        append_utf8(bytes, cp);
    }
    offsets.push_back(bytes.size());
    std::vector<std::string> pieces;
    std::string key;
    std::size_t start = 0;
    while (start < word.size()) {
        std::size_t end = word.size();
        bool found = false;
        while (start < end) {
            key.clear();
            if (start > 0) key = "##";
            key.append(bytes, offsets[start], offsets[end] - offsets[start]);
            if (vocab.contains(key)) {
                found = true;
                break;
            }
            --end;
        }
        if (!found) return {vocab.token(vocab.unk_id())};
        pieces.push_back(key);
        start = end;
    }
    return pieces;
}

/// Options of the full tokenizer.
struct tokenizer_options {
    basic_tokenizer_options basic;           ///< the BasicTokenizer options
    std::size_t max_input_chars_per_word = 100;  ///< longer words become [UNK]
};

/// One encoded example, as HF's tokenizer(text, text_pair) returns it (no padding).
struct encoding {
    std::vector<std::int32_t> input_ids;       ///< [CLS] A [SEP] (B [SEP])
    std::vector<std::int32_t> token_type_ids;  ///< 0 for [CLS] A [SEP], 1 for B [SEP]
    std::vector<std::int32_t> attention_mask;  ///< 1 for every real token (0 only after pad())
};

/// Pads `e` with [PAD] (token type 0, attention 0) to `length` tokens; throws value_error if it is longer.
inline void pad(encoding& e, std::size_t length, std::int32_t pad_id) {
    if (e.input_ids.size() > length)
        throw value_error("cannot pad " + std::to_string(e.input_ids.size()) + " tokens to " + std::to_string(length));
    e.input_ids.resize(length, pad_id);
    e.token_type_ids.resize(length, 0);
    e.attention_mask.resize(length, 0);
}

/// BERT's tokenizer: BasicTokenizer + WordPiece over a vocabulary, with [CLS]/[SEP] pair encoding.
class tokenizer {
public:
    /// A tokenizer over `vocab`. HF's PreTrainedTokenizer.tokenize lower-cases the text one
    /// character at a time (a regex over the non-special text) before BasicTokenizer runs, so a
    /// capital sigma always becomes σ there: the tokenizer therefore turns `final_sigma` off.
    explicit tokenizer(vocabulary vocab, tokenizer_options options = {})
        : vocab_(std::move(vocab)), options_(options) {
        options_.basic.final_sigma = false;
    }

    /// A tokenizer over a vocab.txt file.
    static tokenizer from_file(const std::filesystem::path& vocab_txt, tokenizer_options options = {}) {
        return tokenizer(vocabulary::load(vocab_txt), options);
    }

    /// The vocabulary.
    const vocabulary& vocab() const { return vocab_; }

    /// Word pieces of UTF-8 `text` (no [CLS]/[SEP]); special-token strings in the text stay whole.
    std::vector<std::string> tokenize(std::string_view text) const {
        std::vector<std::string> out;
        std::size_t pos = 0;
        // next[k]: the first occurrence of special token k at or after pos, searched again only
        // once pos has passed it (searching every token after every match was quadratic: 13000
        // "[PAD]" took minutes; found running fuzz/fuzz_tokenizer on a crafted input).
        std::array<std::size_t, special_tokens.size()> next{};
        for (std::size_t k = 0; k < special_tokens.size(); ++k) next[k] = text.find(special_tokens[k]);
        while (pos <= text.size()) {
            // The earliest special token at or after pos (the longest one on a tie).
            std::size_t best = std::string_view::npos, best_len = 0;
            for (std::size_t k = 0; k < special_tokens.size(); ++k) {
                const std::string_view s = special_tokens[k];
                if (next[k] != std::string_view::npos && next[k] < pos) next[k] = text.find(s, pos);
                const std::size_t at = next[k];
                if (at < best || (at == best && at != std::string_view::npos && s.size() > best_len)) {
                    best = at;
                    best_len = s.size();
                }
            }
            const std::size_t stop = best == std::string_view::npos ? text.size() : best;
            for (const auto& word : basic_tokenize(std::u32string_view(decode_utf8(text.substr(pos, stop - pos))), options_.basic))
                for (auto& piece : wordpiece(word, vocab_, options_.max_input_chars_per_word)) out.push_back(std::move(piece));
            if (best == std::string_view::npos) break;
            out.emplace_back(text.substr(best, best_len));
            pos = best + best_len;
        }
        return out;
    }

    /// Ids of tokenize(text).
    std::vector<std::int32_t> token_ids(std::string_view text) const {
        std::vector<std::int32_t> ids;
        for (const auto& t : tokenize(text)) ids.push_back(*vocab_.find(t));
        return ids;
    }

    /// [CLS] text [SEP], truncated to `max_length` tokens in all (0 = no limit).
    encoding encode(std::string_view text, std::size_t max_length = 0) const {
        auto a = token_ids(text);
        truncate(a, nullptr, max_length, 2);
        return assemble(a, nullptr);
    }

    /// [CLS] text [SEP] text_pair [SEP], longest-first truncated to `max_length` tokens in all (0 = no limit).
    encoding encode(std::string_view text, std::string_view text_pair, std::size_t max_length = 0) const {
        auto a = token_ids(text);
        auto b = token_ids(text_pair);
        truncate(a, &b, max_length, 3);
        return assemble(a, &b);
    }

private:
    // HF's truncate_sequences(strategy="longest_first"): one token at a time from the end of
    // the first sequence while it is longer than the second, else from the second.
    static void truncate(std::vector<std::int32_t>& a, std::vector<std::int32_t>* b, std::size_t max_length,
                         std::size_t specials) {
        if (max_length == 0) return;
        if (max_length < specials)
            throw value_error("max_length " + std::to_string(max_length) + " leaves no room for the " +
                              std::to_string(specials) + " special tokens");
        const std::size_t budget = max_length - specials;
        while (a.size() + (b ? b->size() : 0) > budget) {
            if (b == nullptr || a.size() > b->size()) {
                a.pop_back();
            } else {
                b->pop_back();
            }
        }
    }

    encoding assemble(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>* b) const {
        encoding e;
        e.input_ids.push_back(vocab_.cls_id());
        e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
        e.input_ids.push_back(vocab_.sep_id());
        e.token_type_ids.assign(e.input_ids.size(), 0);
        if (b != nullptr) {
            e.input_ids.insert(e.input_ids.end(), b->begin(), b->end());
            e.input_ids.push_back(vocab_.sep_id());
            e.token_type_ids.resize(e.input_ids.size(), 1);
        }
        e.attention_mask.assign(e.input_ids.size(), 1);
        return e;
    }

    vocabulary vocab_;
    tokenizer_options options_;
};

}  // namespace prune::text
