// prune/text/bpe.hpp: byte-level BPE tokenizers (GPT-2, Llama-3, Qwen) read from Hugging
// Face's tokenizer.json, encoding and decoding as the `tokenizers` library does.
//
// encode(text): the text's UTF-8 (each maximal invalid subsequence becomes U+FFFD, as a
// lossy decode would hand it to Hugging Face) is split on the added tokens that are not
// normalized (leftmost-longest, honouring single_word / lstrip / rstrip); each remaining
// piece is normalized (nothing or NFC), split on the normalized added tokens, then
// pre-tokenized (a Sequence of Split with a regex or string and its behaviour, and
// ByteLevel with add_prefix_space / use_regex, which maps every byte to GPT-2's printable
// alphabet); each pre-token is merged by BPE exactly as Hugging Face does (a priority
// queue on (merge rank, position), the rank-map approach, so not quadratic per word;
// ignore_merges looks the whole pre-token up first); the post-processor adds BOS/EOS
// (TemplateProcessing; ByteLevel adds nothing).
// decode(ids): tokens -> bytes through the inverse byte map (an added token outside the
// alphabet stays as its text) -> UTF-8 with invalid sequences replaced by U+FFFD (as
// Hugging Face's String::from_utf8_lossy); special tokens kept or skipped.
// Refused with a format_error naming the JSON path and what was expected: model types
// other than BPE, byte_fallback (sentencepiece-style BPE such as Llama-2's), dropout,
// subword prefixes/suffixes, normalizers other than NFC, pre-tokenizers other than
// Split/ByteLevel/Sequence, no ByteLevel step, decoders other than ByteLevel,
// truncation/padding, merges naming unknown tokens, duplicate or missing ids.
// Ids: the model's vocab and the added tokens must together use every id 0..N-1 once.
#pragma once

#include <prune/error.hpp>
#include <prune/io/json.hpp>
#include <prune/text/bpe_regex.hpp>
#include <prune/text/unicode_tables.hpp>
#include <prune/text/wordpiece.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prune::text {

// ---------------------------------------------------------------------------------------
// NFC

namespace unicode {

/// The canonical composition of `first` + `second` (Hangul algorithmically), or 0.
inline char32_t compose(char32_t first, char32_t second) {
    if (first >= 0x1100 && first <= 0x1112 && second >= 0x1161 && second <= 0x1175)
        return 0xAC00 + ((first - 0x1100) * 21 + (second - 0x1161)) * 28;
    if (first >= 0xAC00 && first <= 0xD7A3 && (first - 0xAC00) % 28 == 0 && second >= 0x11A8 && second <= 0x11C2)
        return first + (second - 0x11A7);
    const std::span<const composition> table(canonical_compositions);
    auto it = std::lower_bound(table.begin(), table.end(), std::pair{first, second},
                               [](const composition& c, const std::pair<char32_t, char32_t>& key) {
                                   return c.first != key.first ? c.first < key.first : c.second < key.second;
                               });
    return it != table.end() && it->first == first && it->second == second ? it->composite : 0;
}

}  // namespace unicode

/// Unicode Normalization Form C: canonical decomposition, canonical ordering, canonical composition.
inline std::u32string nfc(std::u32string_view text) {
    if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x300; }))
        return std::u32string(text);  // nothing below U+0300 decomposes, combines or composes
    std::u32string d;
    d.reserve(text.size());
    for (char32_t cp : text) {
        if (cp >= 0xAC00 && cp <= 0xD7A3) {
            const char32_t s = cp - 0xAC00;
            d.push_back(0x1100 + s / (21 * 28));
            d.push_back(0x1161 + (s % (21 * 28)) / 28);
            if (s % 28 != 0) d.push_back(0x11A7 + s % 28);
        } else if (const auto* m = unicode::find_mapping(cp, unicode::canonical_decomposition)) {
            d.append(unicode::canonical_decomposition_pool + m->offset, m->length);
        } else {
            d.push_back(cp);
        }
    }
    for (std::size_t i = 0; i < d.size();) {  // canonical ordering of each run of non-starters
        if (unicode::canonical_combining_class(d[i]) == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < d.size() && unicode::canonical_combining_class(d[j]) != 0) ++j;
        std::stable_sort(d.begin() + static_cast<std::ptrdiff_t>(i), d.begin() + static_cast<std::ptrdiff_t>(j),
                         [](char32_t a, char32_t b) { return unicode::canonical_combining_class(a) < unicode::canonical_combining_class(b); });
        i = j;
    }
    std::u32string out;
    out.reserve(d.size());
    std::size_t starter = std::u32string::npos;
    std::uint8_t last_class = 0;
    for (char32_t c : d) {
        const std::uint8_t cc = unicode::canonical_combining_class(c);
        if (starter != std::u32string::npos) {
            const bool adjacent = out.size() - 1 == starter;
            if (adjacent || (last_class != 0 && last_class < cc)) {
                if (const char32_t composite = unicode::compose(out[starter], c)) {
                    out[starter] = composite;
                    continue;
                }
            }
        }
        if (cc == 0) starter = out.size();
        last_class = cc;
        out.push_back(c);
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// The byte-level alphabet

/// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 + n.
inline const std::array<char32_t, 256>& byte_to_unicode() {
    static const std::array<char32_t, 256> table = [] {
        std::array<char32_t, 256> t{};
        char32_t n = 0;
        for (unsigned b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            t[b] = printable ? static_cast<char32_t>(b) : 0x100 + n++;
        }
        return t;
    }();
    return table;
}

/// The byte a byte-level character stands for, or -1 (the inverse of byte_to_unicode).
inline int unicode_to_byte(char32_t c) {
    static const std::array<std::int16_t, 0x144> table = [] {
        std::array<std::int16_t, 0x144> t{};
        t.fill(-1);
        for (unsigned b = 0; b < 256; ++b) t[byte_to_unicode()[b]] = static_cast<std::int16_t>(b);
        return t;
    }();
    return c < table.size() ? table[c] : -1;
}

namespace bpe_detail {

/// Heterogeneous hashing so maps keyed by std::string accept string_view lookups.
struct string_hash {
    using is_transparent = void;  ///< enables find(std::string_view)
    /// Hash of the bytes.
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// Token text -> id.
using token_map = std::unordered_map<std::string, std::int32_t, string_hash, std::equal_to<>>;

/// Unicode's \w as Rust's regex crate has it (Alphabetic, M, Nd, Pc, Join_Control); Alphabetic
/// is approximated by L, Nl and the enclosed Latin letters (its Other_Alphabetic marks are M).
inline bool is_word_char(char32_t c) {
    if (c < 0x80) return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || c == U'_';
    using unicode::category;
    const auto k = static_cast<unsigned>(unicode::general_category(c));
    if (k >= static_cast<unsigned>(category::Lu) && k <= static_cast<unsigned>(category::Nl)) return true;  // L M Nd Nl
    if (k == static_cast<unsigned>(category::Pc)) return true;
    return c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
           (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
}

/// How Split keeps what its pattern matched (Hugging Face's SplitDelimiterBehavior).
enum class split_behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

/// One pre-tokenizer step.
struct pre_tokenizer_step {
    bool byte_level = false;            ///< ByteLevel (else Split)
    bool add_prefix_space = false;      ///< ByteLevel: prepend ' ' to a piece that does not start with one
    bool use_regex = true;              ///< ByteLevel: split with GPT-2's pattern first
    split_behavior behavior = split_behavior::isolated;  ///< Split: what to do with matches
    bool invert = false;                ///< Split: the pattern matches the pieces, not the delimiters
    std::optional<split_regex> regex;   ///< Split's pattern (ByteLevel: GPT-2's when use_regex)
};

/// Splits `s` with `regex` as Hugging Face's NormalizedString::split(pattern, behavior), appending
/// the non-empty pieces to `out`.
inline void split_pieces(std::u32string_view s, const split_regex& regex, split_behavior behavior, bool invert,
                         std::vector<std::u32string>& out) {
    struct span_t {
        std::size_t begin, end;
        bool match;
    };
    std::vector<span_t> spans;  // covers s, in order
    std::size_t prev = 0;
    while (prev < s.size()) {
        const auto m = regex.find(s, prev);
        if (!m) break;
        if (m->first != prev) spans.push_back({prev, m->first, invert});
        spans.push_back({m->first, m->second, !invert});
        prev = m->second;
    }
    if (prev != s.size()) spans.push_back({prev, s.size(), invert});
    std::vector<span_t> kept;  // (offsets, remove) after the behaviour
    bool previous = false;
    switch (behavior) {
        case split_behavior::isolated:
            for (const auto& sp : spans) kept.push_back({sp.begin, sp.end, false});
            break;
        case split_behavior::removed: kept = spans; break;  // `match` marks what is removed
        case split_behavior::contiguous:
            for (const auto& sp : spans) {
                if (sp.match == previous && !kept.empty()) kept.back().end = sp.end;
                else kept.push_back({sp.begin, sp.end, false});
                previous = sp.match;
            }
            break;
        case split_behavior::merged_with_previous:
            for (const auto& sp : spans) {
                if (sp.match && !previous && !kept.empty()) kept.back().end = sp.end;
                else kept.push_back({sp.begin, sp.end, false});
                previous = sp.match;
            }
            break;
        case split_behavior::merged_with_next:
            for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
                if (it->match && !previous && !kept.empty()) kept.back().begin = it->begin;
                else kept.push_back({it->begin, it->end, false});
                previous = it->match;
            }
            std::reverse(kept.begin(), kept.end());
            break;
    }
    for (const auto& k : kept)
        if (!k.match && k.end > k.begin) out.emplace_back(s.substr(k.begin, k.end - k.begin));
}

/// The UTF-8 of `bytes` with each maximal invalid subsequence replaced by U+FFFD (a copy only when invalid).
inline std::string lossy_utf8(std::string_view bytes) {
    const std::u32string decoded = decode_utf8(bytes);
    return encode_utf8(decoded);
}

}  // namespace bpe_detail

/// An added token of tokenizer.json (special or not), as Hugging Face's AddedToken.
struct bpe_added_token {
    std::int32_t id = 0;         ///< its id
    std::string content;         ///< its text
    bool single_word = false;    ///< matches only between non-word characters
    bool lstrip = false;         ///< swallows the whitespace on its left
    bool rstrip = false;         ///< swallows the whitespace on its right
    bool normalized = false;     ///< matched in the normalized text (else in the raw text)
    bool special = false;        ///< skipped by decode(ids, true)
};

/// A byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json.
class bpe_tokenizer {
public:
    /// Loads tokenizer.json; io_error when unreadable, format_error (naming the JSON path) when malformed or unsupported.
    static bpe_tokenizer from_file(const std::filesystem::path& path) {
        return from_json(io::parse_json_as<io::sorted_json>(io::read_text_file(path), "'" + path.string() + "'"), path.string());
    }
    /// Parses tokenizer.json text; `origin` names it in errors.
    static bpe_tokenizer from_string(std::string_view text, const std::string& origin = "tokenizer.json") {
        return from_json(io::parse_json_as<io::sorted_json>(text, origin), origin);
    }
    /// Builds from parsed tokenizer.json; `origin` names it in errors.
    static bpe_tokenizer from_json(const io::sorted_json& root, const std::string& origin);

    /// Token ids of UTF-8 `text` (invalid sequences read as U+FFFD); with the post-processor's BOS/EOS when `add_special_tokens`.
    std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true) const {
        std::vector<std::int32_t> ids;
        if (add_special_tokens) ids = prefix_;
        const std::string valid = bpe_detail::lossy_utf8(text);
        for_each_added_split(valid, raw_tokens_, [&](std::string_view piece, std::int32_t id) {
            if (id >= 0) {
                ids.push_back(id);
                return;
            }
            std::u32string cps = decode_utf8(piece);
            if (nfc_) cps = nfc(cps);
            const std::string normalized = encode_utf8(cps);
            for_each_added_split(normalized, normalized_tokens_, [&](std::string_view sub, std::int32_t sub_id) {
                if (sub_id >= 0) {
                    ids.push_back(sub_id);
                } else {
                    for (const auto& word : pre_tokenize(decode_utf8(sub))) merge_word(word, ids);
                }
            });
        });
        if (add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
        return ids;
    }

    /// The bytes `ids` stand for (special tokens dropped when `skip_special_tokens`); value_error for an unknown id.
    std::string decode_bytes(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const {
        std::string bytes;
        for (std::int32_t id : ids) {
            const std::string& token = id_to_token(id);
            if (skip_special_tokens && special_[static_cast<std::size_t>(id)]) continue;
            const std::u32string cps = decode_utf8(token);
            const bool all_bytes = std::all_of(cps.begin(), cps.end(), [](char32_t c) { return unicode_to_byte(c) >= 0; });
            if (!all_bytes) {
                bytes += token;  // Hugging Face's ByteLevel decoder keeps such a token's own text
                continue;
            }
            for (char32_t c : cps) bytes.push_back(static_cast<char>(unicode_to_byte(c)));
        }
        return bytes;
    }

    /// The text of `ids` (invalid UTF-8 from partial tokens becomes U+FFFD, as Hugging Face's decode).
    std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const {
        return bpe_detail::lossy_utf8(decode_bytes(ids, skip_special_tokens));
    }

    /// The id of a token's text (model vocabulary or added token), or nothing.
    std::optional<std::int32_t> token_to_id(std::string_view token) const {
        auto it = vocab_.find(token);
        if (it == vocab_.end()) return std::nullopt;
        return it->second;
    }
    /// The text of `id` (byte-level form, e.g. "Ġthe"); value_error outside [0, vocab_size()).
    const std::string& id_to_token(std::int32_t id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size())
            throw value_error("prune::text: token id " + std::to_string(id) + " outside the vocabulary [0, " +
                              std::to_string(tokens_.size()) + ")");
        return tokens_[static_cast<std::size_t>(id)];
    }
    /// Number of ids (model vocabulary plus added tokens): ids are 0..vocab_size()-1.
    std::size_t vocab_size() const { return tokens_.size(); }
    /// True when `id` is a special added token.
    bool is_special(std::int32_t id) const { return id >= 0 && static_cast<std::size_t>(id) < special_.size() && special_[static_cast<std::size_t>(id)]; }
    /// The added tokens, in file order.
    const std::vector<bpe_added_token>& added_tokens() const { return added_; }
    /// Beginning of sequence: the post-processor's leading special token, else the first of
    /// <|begin_of_text|>, <s>, <|endoftext|> that is a special token (a model's config.json bos_token_id is authoritative).
    std::optional<std::int32_t> bos_id() const { return bos_; }
    /// End of sequence: the post-processor's trailing special token, else the first of
    /// <|end_of_text|>, </s>, <|endoftext|> that is a special token.
    std::optional<std::int32_t> eos_id() const { return eos_; }
    /// The ids encode() puts before the text's tokens when add_special_tokens.
    const std::vector<std::int32_t>& prefix_ids() const { return prefix_; }
    /// The ids encode() puts after the text's tokens when add_special_tokens.
    const std::vector<std::int32_t>& suffix_ids() const { return suffix_; }

    /// The pre-tokens of normalized text (byte-level form), as the model sees them; for the trainer and tests.
    std::vector<std::u32string> pre_tokenize(std::u32string_view text) const {
        std::vector<std::u32string> pieces;
        if (!text.empty()) pieces.emplace_back(text);
        std::vector<std::u32string> next;
        for (const auto& step : steps_) {
            next.clear();
            for (auto& piece : pieces) {
                if (!step.byte_level) {
                    bpe_detail::split_pieces(piece, *step.regex, step.behavior, step.invert, next);
                    continue;
                }
                if (step.add_prefix_space && piece.front() != U' ') piece.insert(piece.begin(), U' ');
                const std::size_t first = next.size();
                if (step.use_regex) bpe_detail::split_pieces(piece, *step.regex, step.behavior, false, next);
                else next.push_back(std::move(piece));
                for (std::size_t k = first; k < next.size(); ++k) next[k] = to_byte_level(next[k]);
            }
            pieces.swap(next);
        }
        return pieces;
    }

    /// A byte-level tokenizer built in memory (the trainer's output): GPT-2's ByteLevel pre-tokenizer.
    static bpe_tokenizer from_parts(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
                                    std::vector<bpe_added_token> added);

private:
    struct merge_value {
        std::uint32_t rank;
        std::int32_t id;
    };
    static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }

    static std::u32string to_byte_level(std::u32string_view piece) {
        std::string utf8 = encode_utf8(piece);
        std::u32string out;
        out.reserve(utf8.size());
        for (char ch : utf8) out.push_back(byte_to_unicode()[static_cast<unsigned char>(ch)]);
        return out;
    }

    // Hugging Face's AddedVocabulary::find_matches on `sentence`: calls f(piece, id) for each
    // added token found (id >= 0, its span widened by lstrip/rstrip) and each gap (id -1).
    template <class F>
    void for_each_added_split(std::string_view sentence, const std::vector<std::size_t>& tokens, F&& f) const;

    // BPE of one pre-token (byte-level characters), ids appended to `out`.
    void merge_word(std::u32string_view word, std::vector<std::int32_t>& out) const;

    friend class bpe_loader;

    bpe_detail::token_map vocab_;                 // every token's text -> id (model and added)
    std::vector<std::string> tokens_;             // id -> text (added tokens: their decode form)
    std::vector<bool> special_;                   // id -> special added token
    std::unordered_map<std::uint64_t, merge_value> merges_;
    std::vector<std::int32_t> char_ids_;          // id of each single character below U+0400, or -1
    std::vector<bpe_added_token> added_;
    std::vector<std::size_t> raw_tokens_, normalized_tokens_;  // indices into added_, longest first
    std::array<std::vector<std::size_t>, 256> by_first_byte_;  // indices into added_ by first byte of their pattern
    std::vector<std::string> patterns_;           // what each added token matches (NFC of content when normalized)
    std::vector<bpe_detail::pre_tokenizer_step> steps_;
    std::vector<std::int32_t> prefix_, suffix_;
    std::optional<std::int32_t> unk_, bos_, eos_;
    bool nfc_ = false, fuse_unk_ = false, ignore_merges_ = false;
};

template <class F>
void bpe_tokenizer::for_each_added_split(std::string_view sentence, const std::vector<std::size_t>& tokens, F&& f) const {
    if (tokens.empty()) {
        if (!sentence.empty()) f(sentence, -1);
        return;
    }
    std::vector<bool> in_set(added_.size(), false);
    for (std::size_t t : tokens) in_set[t] = true;
    // The code point ending at / starting at a byte offset of the (valid UTF-8) sentence, and its length.
    auto before = [&](std::size_t at) {
        std::size_t b = at - 1;
        while (b > 0 && (static_cast<unsigned char>(sentence[b]) & 0xC0) == 0x80) --b;
        return std::pair{decode_utf8(sentence.substr(b, at - b)).front(), at - b};
    };
    auto after = [&](std::size_t at) {
        std::size_t e = at + 1;
        while (e < sentence.size() && (static_cast<unsigned char>(sentence[e]) & 0xC0) == 0x80) ++e;
        return std::pair{decode_utf8(sentence.substr(at, e - at)).front(), e - at};
    };
    std::size_t start_offset = 0, pos = 0;
    while (pos < sentence.size()) {
        // Leftmost-longest: the first position where some token starts, the longest there.
        std::optional<std::size_t> hit;
        for (; pos < sentence.size(); ++pos) {
            for (std::size_t t : by_first_byte_[static_cast<unsigned char>(sentence[pos])]) {
                if (in_set[t] && sentence.compare(pos, patterns_[t].size(), patterns_[t]) == 0) {
                    hit = t;
                    break;
                }
            }
            if (hit) break;
        }
        if (!hit) break;
        std::size_t start = pos, stop = pos + patterns_[*hit].size();
        pos = stop;  // the search goes on after the match, whatever rstrip swallows
        const bpe_added_token& token = added_[*hit];
        if (token.single_word) {
            const bool start_space = start == 0 || !bpe_detail::is_word_char(before(start).first);
            const bool stop_space = stop == sentence.size() || !bpe_detail::is_word_char(after(stop).first);
            if (!start_space || !stop_space) continue;
        }
        if (token.lstrip)
            while (start > start_offset && unicode::is_white_space(before(start).first)) start -= before(start).second;
        if (token.rstrip)
            while (stop < sentence.size() && unicode::is_white_space(after(stop).first)) stop += after(stop).second;
        start = std::max(start, start_offset);
        if (start_offset < start) f(sentence.substr(start_offset, start - start_offset), -1);
        f(sentence.substr(start, stop - start), token.id);
        start_offset = stop;
    }
    if (start_offset < sentence.size()) f(sentence.substr(start_offset), -1);
}

inline void bpe_tokenizer::merge_word(std::u32string_view word, std::vector<std::int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        if (auto it = vocab_.find(encode_utf8(word)); it != vocab_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    struct symbol {
        std::int32_t id;
        std::int32_t prev, next;
        bool alive;
    };
    std::vector<symbol> symbols;
    symbols.reserve(word.size());
    std::int32_t pending_unk = -1;  // an unk not yet added (fuse_unk grows it)
    auto add = [&](std::int32_t id) {
        const auto n = static_cast<std::int32_t>(symbols.size());
        symbols.push_back({id, n - 1, n + 1, true});
    };
    for (char32_t c : word) {
        std::int32_t id = c < char_ids_.size() ? char_ids_[c] : -1;
        if (id < 0 && c >= char_ids_.size()) {
            std::string s;
            append_utf8(s, c);
            if (auto it = vocab_.find(s); it != vocab_.end()) id = it->second;
        }
        if (id >= 0) {
            if (pending_unk >= 0) add(pending_unk);
            pending_unk = -1;
            add(id);
        } else if (unk_) {  // Hugging Face: unknown characters become unk (fused when fuse_unk); without unk they vanish
            if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
            pending_unk = *unk_;
        }
    }
    if (pending_unk >= 0) add(pending_unk);
    if (symbols.empty()) return;
    symbols.back().next = -1;

    struct candidate {
        std::uint32_t rank;
        std::size_t pos;
        std::int32_t id;
        bool operator>(const candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<candidate, std::vector<candidate>, std::greater<>> queue;
    auto offer = [&](std::size_t pos, std::int32_t a, std::int32_t b) {
        if (auto it = merges_.find(pair_key(a, b)); it != merges_.end()) queue.push({it->second.rank, pos, it->second.id});
    };
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) offer(i, symbols[i].id, symbols[i + 1].id);
    while (!queue.empty()) {
        const candidate top = queue.top();
        queue.pop();
        symbol& left = symbols[top.pos];
        if (!left.alive || left.next < 0) continue;
        symbol& right = symbols[static_cast<std::size_t>(left.next)];
        auto it = merges_.find(pair_key(left.id, right.id));
        if (it == merges_.end() || it->second.id != top.id) continue;  // an expired entry
        left.id = top.id;
        right.alive = false;
        left.next = right.next;
        if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::int32_t>(top.pos);
        if (left.prev >= 0) offer(static_cast<std::size_t>(left.prev), symbols[static_cast<std::size_t>(left.prev)].id, left.id);
        if (left.next >= 0) offer(top.pos, left.id, symbols[static_cast<std::size_t>(left.next)].id);
    }
    for (const auto& s : symbols)
        if (s.alive) out.push_back(s.id);
}

/// Reads tokenizer.json into a bpe_tokenizer (the parts of from_json, one per section).
class bpe_loader {
public:
    /// A loader for the file named `origin`.
    explicit bpe_loader(std::string origin) : origin_(std::move(origin)) {}

    /// The whole tokenizer.
    bpe_tokenizer load(const io::sorted_json& root) const {
        if (!root.is_object()) fail("the top level", "is " + io::describe_json(root) + " (expected a JSON object)");
        bpe_tokenizer t;
        if (auto it = root.find("version"); it != root.end() && (!it->is_string() || *it != "1.0"))
            fail("version", "is " + io::describe_json(*it) + " (expected \"1.0\")");
        for (const char* key : {"truncation", "padding"})
            if (auto it = root.find(key); it != root.end() && !it->is_null())
                fail(key, "is set (expected null: prune's encode neither truncates nor pads)");
        if (!root.contains("model")) fail("model", "is missing (expected the BPE model)");
        read_model(root["model"], t);
        read_normalizer(member_or_null(root, "normalizer"), "normalizer", t);
        read_pre_tokenizer(member_or_null(root, "pre_tokenizer"), "pre_tokenizer", t);
        if (std::none_of(t.steps_.begin(), t.steps_.end(), [](const auto& s) { return s.byte_level; }))
            fail("pre_tokenizer", "has no ByteLevel step (expected a byte-level BPE: ByteLevel alone or in a Sequence)");
        read_decoder(member_or_null(root, "decoder"), t);
        read_added_tokens(member_or_null(root, "added_tokens"), t);
        finish_ids(t);
        read_post_processor(member_or_null(root, "post_processor"), "post_processor", t);
        finish_specials(t);
        return t;
    }

    /// The tables derived from tokens_/added_ (char_ids_, added-token matching, specials).
    static void index(bpe_tokenizer& t) {
        t.char_ids_.assign(0x400, -1);
        for (char32_t c = 0; c < 0x400; ++c) {
            std::string s;
            if (c >= 0xD800 && c <= 0xDFFF) continue;
            append_utf8(s, c);
            if (auto it = t.vocab_.find(s); it != t.vocab_.end()) t.char_ids_[c] = it->second;
        }
        t.special_.assign(t.tokens_.size(), false);
        t.patterns_.clear();
        t.raw_tokens_.clear();
        t.normalized_tokens_.clear();
        for (auto& v : t.by_first_byte_) v.clear();
        for (std::size_t k = 0; k < t.added_.size(); ++k) {
            const auto& a = t.added_[k];
            t.special_[static_cast<std::size_t>(a.id)] = a.special;
            std::string pattern = a.normalized && t.nfc_ ? encode_utf8(nfc(decode_utf8(a.content))) : a.content;
            (a.normalized ? t.normalized_tokens_ : t.raw_tokens_).push_back(k);
            t.by_first_byte_[static_cast<unsigned char>(pattern[0])].push_back(k);
            t.patterns_.push_back(std::move(pattern));
        }
        for (auto& v : t.by_first_byte_)  // longest first: the leftmost-longest match
            std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t b) { return t.patterns_[a].size() > t.patterns_[b].size(); });
    }

    /// BOS/EOS: the post-processor's special tokens, else well-known special added tokens.
    static void finish_specials(bpe_tokenizer& t) {
        auto special_named = [&](std::initializer_list<std::string_view> names) -> std::optional<std::int32_t> {
            for (auto name : names)
                for (const auto& a : t.added_)
                    if (a.special && a.content == name) return a.id;
            return std::nullopt;
        };
        t.bos_ = !t.prefix_.empty() ? std::optional(t.prefix_.front()) : special_named({"<|begin_of_text|>", "<s>", "<|endoftext|>"});
        t.eos_ = !t.suffix_.empty() ? std::optional(t.suffix_.back()) : special_named({"<|end_of_text|>", "</s>", "<|endoftext|>"});
    }

private:
    [[noreturn]] void fail(const std::string& path, const std::string& what) const {
        throw format_error("prune::text: " + origin_ + ": " + path + " " + what);
    }
    static const io::sorted_json& member_or_null(const io::sorted_json& object, const char* key) {
        static const io::sorted_json null_value;
        auto it = object.find(key);
        return it == object.end() ? null_value : *it;
    }
    std::string type_of(const io::sorted_json& node, const std::string& path) const {
        if (!node.is_object()) fail(path, "is " + io::describe_json(node) + " (expected an object with a \"type\")");
        auto it = node.find("type");
        if (it == node.end() || !it->is_string()) fail(path + ".type", "is missing or not a string");
        return it->get<std::string>();
    }
    bool flag(const io::sorted_json& node, const char* key, const std::string& path, std::optional<bool> fallback) const {
        auto it = node.find(key);
        if (it == node.end() || (it->is_null() && fallback)) {
            if (!fallback) fail(path + "." + key, "is missing (expected true or false)");
            return *fallback;
        }
        if (!it->is_boolean()) fail(path + "." + key, "is " + io::describe_json(*it) + " (expected true or false)");
        return it->get<bool>();
    }

    void read_model(const io::sorted_json& model, bpe_tokenizer& t) const;
    void read_merges(const io::sorted_json& merges, bpe_tokenizer& t) const;
    void read_normalizer(const io::sorted_json& node, const std::string& path, bpe_tokenizer& t) const {
        if (node.is_null()) return;
        const std::string type = type_of(node, path);
        if (type == "NFC") {
            t.nfc_ = true;
        } else if (type == "Sequence") {
            const auto& list = member_or_null(node, "normalizers");
            if (!list.is_array()) fail(path + ".normalizers", "is missing or not an array");
            for (std::size_t k = 0; k < list.size(); ++k) read_normalizer(list[k], path + ".normalizers[" + std::to_string(k) + "]", t);
        } else {
            fail(path + ".type", "is \"" + type + "\" (expected null, \"NFC\" or a \"Sequence\" of them)");
        }
    }
    void read_pre_tokenizer(const io::sorted_json& node, const std::string& path, bpe_tokenizer& t) const;
    void read_decoder(const io::sorted_json& node, bpe_tokenizer&) const {
        if (node.is_null()) fail("decoder", "is null (expected {\"type\": \"ByteLevel\"}: a byte-level BPE decodes bytes)");
        const std::string type = type_of(node, "decoder");
        if (type != "ByteLevel") fail("decoder.type", "is \"" + type + "\" (expected \"ByteLevel\")");
    }
    void read_added_tokens(const io::sorted_json& list, bpe_tokenizer& t) const;
    void finish_ids(bpe_tokenizer& t) const;
    void read_post_processor(const io::sorted_json& node, const std::string& path, bpe_tokenizer& t) const;
    void read_template(const io::sorted_json& node, const std::string& path, bpe_tokenizer& t) const;

    std::string origin_;
};

inline void bpe_loader::read_model(const io::sorted_json& model, bpe_tokenizer& t) const {
    const std::string type = type_of(model, "model");
    if (type != "BPE")
        fail("model.type", "is \"" + type + "\" (expected \"BPE\": prune reads byte-level BPE tokenizer.json files; "
                           "BERT's WordPiece is read from vocab.txt by prune/text/wordpiece.hpp)");
    if (auto it = model.find("dropout"); it != model.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0))
        fail("model.dropout", "is " + io::describe_json(*it) + " (expected null or 0: BPE dropout is random)");
    if (flag(model, "byte_fallback", "model", false))
        fail("model.byte_fallback", "is true (expected false: sentencepiece-style BPE with byte fallback, "
                                    "as Llama-2's, is not supported)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (auto it = model.find(key); it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
            fail(std::string("model.") + key, "is " + io::describe_json(*it) + " (expected null or \"\")");
    t.fuse_unk_ = flag(model, "fuse_unk", "model", false);
    t.ignore_merges_ = flag(model, "ignore_merges", "model", false);
    const auto& vocab = member_or_null(model, "vocab");
    if (!vocab.is_object()) fail("model.vocab", "is missing or not an object (expected {token: id, ...})");
    if (vocab.size() >= static_cast<std::size_t>(INT32_MAX)) fail("model.vocab", "has too many entries");
    t.tokens_.assign(vocab.size(), std::string());
    std::vector<bool> seen(vocab.size(), false);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const std::string path = "model.vocab[\"" + it.key() + "\"]";
        if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() >= static_cast<std::int64_t>(vocab.size()))
            fail(path, "is " + io::describe_json(*it) + " (expected an id in [0, " + std::to_string(vocab.size()) +
                           "): the " + std::to_string(vocab.size()) + " entries must use each id 0.." +
                           std::to_string(vocab.size() - 1) + " once)");
        const auto id = static_cast<std::size_t>(it->get<std::int64_t>());
        if (seen[id]) fail(path, "has id " + std::to_string(id) + ", already the id of \"" + t.tokens_[id] + "\" (expected unique ids)");
        seen[id] = true;
        t.tokens_[id] = it.key();
        t.vocab_.emplace(it.key(), static_cast<std::int32_t>(id));
    }
    if (auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
        if (!it->is_string()) fail("model.unk_token", "is " + io::describe_json(*it) + " (expected a string or null)");
        auto id = t.vocab_.find(it->get<std::string>());
        if (id == t.vocab_.end()) fail("model.unk_token", "\"" + it->get<std::string>() + "\" is not in model.vocab");
        t.unk_ = id->second;
    }
    if (!model.contains("merges")) fail("model.merges", "is missing (expected an array of merges)");
    read_merges(model["merges"], t);
}

inline void bpe_loader::read_merges(const io::sorted_json& merges, bpe_tokenizer& t) const {
    if (!merges.is_array()) fail("model.merges", "is " + io::describe_json(merges) + " (expected an array)");
    std::uint32_t rank = 0;
    for (std::size_t k = 0; k < merges.size(); ++k) {
        const std::string path = "model.merges[" + std::to_string(k) + "]";
        const auto& m = merges[k];
        std::string a, b;
        if (m.is_string()) {  // "a b" (Hugging Face splits on ' ' and wants exactly two parts)
            const std::string line = m.get<std::string>();
            if (line.rfind("#version", 0) == 0) continue;
            const auto space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
                fail(path, "is " + io::describe_json(m) + " (expected \"left right\": two tokens separated by one space)");
            a = line.substr(0, space);
            b = line.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            a = m[0].get<std::string>();
            b = m[1].get<std::string>();
        } else {
            fail(path, "is " + io::describe_json(m) + " (expected \"left right\" or [\"left\", \"right\"])");
        }
        const std::string merged = a + b;
        std::int32_t ids[3];
        const std::string* parts[3] = {&a, &b, &merged};
        for (int p = 0; p < 3; ++p) {
            auto it = t.vocab_.find(*parts[p]);
            if (it == t.vocab_.end())
                fail(path, "names \"" + *parts[p] + "\", which is not in model.vocab (expected both tokens and their concatenation in the vocabulary)");
            ids[p] = it->second;
        }
        // As Hugging Face's map, a repeated pair keeps its last rank.
        t.merges_[bpe_tokenizer::pair_key(ids[0], ids[1])] = {rank++, ids[2]};
    }
}

inline void bpe_loader::read_pre_tokenizer(const io::sorted_json& node, const std::string& path, bpe_tokenizer& t) const {
    if (node.is_null()) fail(path, "is null (expected a byte-level BPE: ByteLevel alone or in a Sequence)");
    const std::string type = type_of(node, path);
    bpe_detail::pre_tokenizer_step step;
    if (type == "Sequence") {
        const auto& list = member_or_null(node, "pretokenizers");
        if (!list.is_array()) fail(path + ".pretokenizers", "is missing or not an array");
        for (std::size_t k = 0; k < list.size(); ++k) read_pre_tokenizer(list[k], path + ".pretokenizers[" + std::to_string(k) + "]", t);
        return;
    }
    if (type == "ByteLevel") {
        step.byte_level = true;
        step.add_prefix_space = flag(node, "add_prefix_space", path, std::nullopt);
        step.use_regex = flag(node, "use_regex", path, true);
        if (step.use_regex) step.regex = split_regex::parse(gpt2_pattern, "prune::text: " + origin_ + ": " + path);
        t.steps_.push_back(std::move(step));
        return;
    }
    if (type != "Split")
        fail(path + ".type", "is \"" + type + "\" (expected \"ByteLevel\", \"Split\" or \"Sequence\")");
    const auto& pattern = member_or_null(node, "pattern");
    if (pattern.is_object() && pattern.size() == 1 && pattern.contains("Regex") && pattern["Regex"].is_string()) {
        step.regex = split_regex::parse(decode_utf8(pattern["Regex"].get<std::string>()), "prune::text: " + origin_ + ": " + path + ".pattern.Regex");
    } else if (pattern.is_object() && pattern.size() == 1 && pattern.contains("String") && pattern["String"].is_string()) {
        step.regex = split_regex::literal(decode_utf8(pattern["String"].get<std::string>()));
    } else {
        fail(path + ".pattern", "is " + io::describe_json(pattern) + " (expected {\"Regex\": \"...\"} or {\"String\": \"...\"})");
    }
    const auto& behavior = member_or_null(node, "behavior");
    static const std::pair<const char*, bpe_detail::split_behavior> behaviors[] = {
        {"Removed", bpe_detail::split_behavior::removed}, {"Isolated", bpe_detail::split_behavior::isolated},
        {"MergedWithPrevious", bpe_detail::split_behavior::merged_with_previous},
        {"MergedWithNext", bpe_detail::split_behavior::merged_with_next}, {"Contiguous", bpe_detail::split_behavior::contiguous}};
    bool known = false;
    for (const auto& [name, value] : behaviors)
        if (behavior.is_string() && behavior.get<std::string>() == name) {
            step.behavior = value;
            known = true;
        }
    if (!known) fail(path + ".behavior", "is " + io::describe_json(behavior) + " (expected \"Removed\", \"Isolated\", \"MergedWithPrevious\", \"MergedWithNext\" or \"Contiguous\")");
    step.invert = flag(node, "invert", path, std::nullopt);
    t.steps_.push_back(std::move(step));
}

inline void bpe_loader::read_added_tokens(const io::sorted_json& list, bpe_tokenizer& t) const {
    if (list.is_null()) return;
    if (!list.is_array()) fail("added_tokens", "is " + io::describe_json(list) + " (expected an array)");
    // Hugging Face ignores the file's ids: a token in the model's vocabulary keeps that id, the
    // others get vocab size, vocab size + 1, ... in file order. A file saying otherwise is refused.
    auto next_id = static_cast<std::int64_t>(t.tokens_.size());
    const std::size_t model_size = t.tokens_.size();
    for (std::size_t k = 0; k < list.size(); ++k) {
        const std::string path = "added_tokens[" + std::to_string(k) + "]";
        const auto& node = list[k];
        if (!node.is_object()) fail(path, "is " + io::describe_json(node) + " (expected an object)");
        bpe_added_token a;
        const auto& content = member_or_null(node, "content");
        if (!content.is_string() || content.get<std::string>().empty()) fail(path + ".content", "is missing or not a non-empty string");
        a.content = content.get<std::string>();
        const auto& id = member_or_null(node, "id");
        if (!id.is_number_integer()) fail(path + ".id", "is " + io::describe_json(id) + " (expected an integer id)");
        a.single_word = flag(node, "single_word", path, false);
        a.lstrip = flag(node, "lstrip", path, false);
        a.rstrip = flag(node, "rstrip", path, false);
        a.normalized = flag(node, "normalized", path, false);
        a.special = flag(node, "special", path, false);
        std::int64_t expected = 0;
        if (auto it = t.vocab_.find(a.content); it != t.vocab_.end()) {
            if (static_cast<std::size_t>(it->second) >= model_size)
                fail(path + ".content", "\"" + a.content + "\" is already an added token (expected each added token once)");
            expected = it->second;
        } else {
            expected = next_id++;
        }
        if (id.get<std::int64_t>() != expected)
            fail(path + ".id", "is " + io::describe_json(id) + " but \"" + a.content + "\" gets id " + std::to_string(expected) +
                                   " (expected the model's id of the token, else the vocabulary size plus its rank among the new added tokens, as Hugging Face assigns them)");
        a.id = static_cast<std::int32_t>(expected);
        if (static_cast<std::size_t>(expected) >= t.tokens_.size()) {
            t.tokens_.push_back(a.content);
            t.vocab_.emplace(a.content, a.id);
        }
        t.added_.push_back(std::move(a));
    }
}

inline void bpe_loader::finish_ids(bpe_tokenizer& t) const {
    if (t.tokens_.size() > static_cast<std::size_t>(INT32_MAX)) fail("model.vocab", "has too many entries");
    index(t);
    for (const auto& a : t.added_)  // what decoding a normalized added token sees is its normalized form
        if (a.normalized && t.nfc_) t.tokens_[static_cast<std::size_t>(a.id)] = encode_utf8(nfc(decode_utf8(a.content)));
}

inline void bpe_loader::read_post_processor(const io::sorted_json& node, const std::string& path, bpe_tokenizer& t) const {
    if (node.is_null()) return;
    const std::string type = type_of(node, path);
    if (type == "ByteLevel") return;  // offsets only
    if (type == "TemplateProcessing") {
        read_template(node, path, t);
        return;
    }
    if (type == "Sequence") {
        const auto& list = member_or_null(node, "processors");
        if (!list.is_array()) fail(path + ".processors", "is missing or not an array");
        for (std::size_t k = 0; k < list.size(); ++k) read_post_processor(list[k], path + ".processors[" + std::to_string(k) + "]", t);
        return;
    }
    fail(path + ".type", "is \"" + type + "\" (expected null, \"ByteLevel\", \"TemplateProcessing\" or a \"Sequence\" of them)");
}

inline void bpe_loader::read_template(const io::sorted_json& node, const std::string& path, bpe_tokenizer& t) const {
    if (!t.prefix_.empty() || !t.suffix_.empty()) fail(path, "is a second TemplateProcessing (expected at most one)");
    const auto& single = member_or_null(node, "single");
    const auto& specials = member_or_null(node, "special_tokens");
    if (!single.is_array()) fail(path + ".single", "is missing or not an array");
    if (!specials.is_object()) fail(path + ".special_tokens", "is missing or not an object");
    bool seen_sequence = false;
    for (std::size_t k = 0; k < single.size(); ++k) {
        const std::string p = path + ".single[" + std::to_string(k) + "]";
        const auto& piece = single[k];
        if (piece.is_object() && piece.size() == 1 && piece.contains("Sequence")) {
            const auto& seq = piece["Sequence"];
            if (!seq.is_object() || !seq.contains("id") || seq["id"] != "A" || seen_sequence)
                fail(p, "is " + io::describe_json(piece) + " (expected the sequence A once)");
            seen_sequence = true;
            continue;
        }
        if (!piece.is_object() || piece.size() != 1 || !piece.contains("SpecialToken") || !piece["SpecialToken"].is_object() ||
            !piece["SpecialToken"].contains("id") || !piece["SpecialToken"]["id"].is_string())
            fail(p, "is " + io::describe_json(piece) + " (expected {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": {\"id\": \"A\"}})");
        const std::string name = piece["SpecialToken"]["id"].get<std::string>();
        if (!specials.contains(name)) fail(p, "names \"" + name + "\", which is not in " + path + ".special_tokens");
        const auto& ids = member_or_null(specials[name], "ids");
        if (!ids.is_array()) fail(path + ".special_tokens[\"" + name + "\"].ids", "is missing or not an array");
        for (const auto& id : ids) {
            if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= static_cast<std::int64_t>(t.tokens_.size()))
                fail(path + ".special_tokens[\"" + name + "\"].ids", "holds " + io::describe_json(id) + " (expected ids in [0, " + std::to_string(t.tokens_.size()) + "))");
            (seen_sequence ? t.suffix_ : t.prefix_).push_back(static_cast<std::int32_t>(id.get<std::int64_t>()));
        }
    }
    if (!seen_sequence) fail(path + ".single", "has no {\"Sequence\": {\"id\": \"A\"}} (expected the text's place)");
}

inline bpe_tokenizer bpe_tokenizer::from_json(const io::sorted_json& root, const std::string& origin) {
    return bpe_loader(origin).load(root);
}

inline bpe_tokenizer bpe_tokenizer::from_parts(std::vector<std::string> tokens,
                                               const std::vector<std::pair<std::string, std::string>>& merges,
                                               std::vector<bpe_added_token> added) {
    bpe_tokenizer t;
    t.tokens_ = std::move(tokens);
    for (std::size_t i = 0; i < t.tokens_.size(); ++i) {
        const bool inserted = t.vocab_.emplace(t.tokens_[i], static_cast<std::int32_t>(i)).second;
        PRUNE_ASSERT(inserted);
    }
    std::uint32_t rank = 0;
    for (const auto& [a, b] : merges)
        t.merges_[pair_key(t.vocab_.at(a), t.vocab_.at(b))] = {rank++, t.vocab_.at(a + b)};
    t.added_ = std::move(added);
    bpe_detail::pre_tokenizer_step step;
    step.byte_level = true;
    step.regex = split_regex::parse(gpt2_pattern, "gpt2_pattern");
    t.steps_.push_back(std::move(step));
    bpe_loader::index(t);
    bpe_loader::finish_specials(t);
    return t;
}

}  // namespace prune::text
