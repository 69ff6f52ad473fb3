// prune/text/bpe_regex.hpp: the regular expressions of byte-level BPE pre-tokenizers
// (GPT-2's, Llama-3's, Qwen's), matched as Oniguruma (Hugging Face's `tokenizers`) does,
// without std::regex (whose recursion grows with the input and which lacks \p{..}).
//
// `split_regex::parse` reads a pattern in a small subset of Oniguruma's syntax and refuses
// the rest with a format_error naming what it met:
//   - alternation `|`; groups `(...)`, `(?:...)`, `(?i:...)` (ASCII case-insensitive, with
//     Unicode's simple folds of s and k: U+017F and U+212A); lookaheads `(?=...)`, `(?!...)`;
//   - atoms: literal characters, `.`, bracket classes `[...]` / `[^...]` with ranges,
//     `\p{X}` / `\P{X}` for a general category or category group X (L, Lu, N, Nd, ...),
//     `\s` / `\S` (Unicode White_Space), `\d` (Nd), `\r \n \t \f \v`, `\xHH`, `\x{H..}`,
//     `\uHHHH` and escaped punctuation;
//   - quantifiers `? * + {n} {n,} {n,m}` on characters and classes, greedy, lazy (`??`,
//     `*?`, `+?`) or possessive (`?+ *+ ++`); `?` on a group.
// Matching is backtracking with Oniguruma's leftmost-first alternation. A quantified class
// counts its run once and then tries the continuation at each length, so recursion depth
// depends on the pattern only, never on the text. Patterns whose alternatives can match
// the empty string are refused (they never occur in tokenizer.json files).
// Unicode properties come from unicode_tables.hpp (Python's unicodedata).
#pragma once

#include <prune/error.hpp>
#include <prune/text/unicode_tables.hpp>
#include <prune/text/wordpiece.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prune::text {

namespace unicode {

/// The general category of `cp` (Cn for unassigned code points and anything past U+10FFFF).
inline category general_category(char32_t cp) {
    // A direct table for the BMP (built once), a binary search above it.
    static const std::vector<std::uint8_t> bmp = [] {
        std::vector<std::uint8_t> t(0x10000, 0);
        for (const auto& r : general_categories) {
            if (r.first >= 0x10000) break;
            for (char32_t c = r.first; c <= r.last && c < 0x10000; ++c) t[c] = r.value;
        }
        return t;
    }();
    if (cp < 0x10000) return static_cast<category>(bmp[cp]);
    const std::span<const valued_range> table(general_categories);
    auto it = std::upper_bound(table.begin(), table.end(), cp,
                               [](char32_t c, const valued_range& r) { return c < r.first; });
    if (it == table.begin() || cp > std::prev(it)->last) return category::Cn;
    return static_cast<category>(std::prev(it)->value);
}

/// True when `cp` has Unicode's White_Space property (Oniguruma's \s).
inline bool is_white_space(char32_t cp) {
    if (cp < 0x80) return cp == U' ' || (cp >= 0x09 && cp <= 0x0D);
    return in_ranges(cp, white_space_ranges);
}

/// The canonical combining class of `cp` (0 for starters).
inline std::uint8_t canonical_combining_class(char32_t cp) {
    if (cp < 0x300) return 0;
    const std::span<const valued_range> table(combining_class_ranges);
    auto it = std::upper_bound(table.begin(), table.end(), cp,
                               [](char32_t c, const valued_range& r) { return c < r.first; });
    if (it == table.begin() || cp > std::prev(it)->last) return 0;
    return std::prev(it)->value;
}

}  // namespace unicode

namespace bpe_detail {

/// A set of code points: literal ranges, general categories, White_Space, negation.
struct char_set {
    std::vector<unicode::code_range> ranges;  ///< literal characters and ranges
    std::uint32_t categories = 0;             ///< bit k: general category k (unicode::category)
    bool white_space = false;                 ///< includes \s
    bool non_white_space = false;             ///< includes \S
    bool not_newline = false;                 ///< includes everything but \n ('.')
    bool negated = false;                     ///< [^...] or \P{..}
    std::array<std::uint64_t, 2> ascii{};     ///< membership of U+0000..U+007F (filled by finish())

    /// Membership before negation, from the definition.
    bool raw_contains(char32_t c) const {
        if ((categories >> static_cast<unsigned>(unicode::general_category(c))) & 1u) return true;
        if (white_space || non_white_space) {
            const bool ws = unicode::is_white_space(c);
            if ((white_space && ws) || (non_white_space && !ws)) return true;
        }
        if (not_newline && c != U'\n') return true;
        for (const auto& r : ranges)
            if (c >= r.first && c <= r.last) return true;
        return false;
    }
    /// Precomputes the ASCII membership table; call once the set is complete.
    void finish() {
        ascii = {};
        for (char32_t c = 0; c < 128; ++c)
            if (raw_contains(c) != negated) ascii[c >> 6] |= std::uint64_t{1} << (c & 63);
    }
    /// True when `c` is in the set.
    bool contains(char32_t c) const {
        if (c < 128) return ((ascii[c >> 6] >> (c & 63)) & 1u) != 0;
        return raw_contains(c) != negated;
    }
};

/// One element of a sequence: a quantified set, a group or a lookahead.
struct regex_item {
    enum class kind : std::uint8_t { set, group, ahead, not_ahead };
    kind what = kind::set;       ///< what the item is
    std::uint32_t index = 0;     ///< index into the sets or the groups
    std::size_t min = 1;         ///< fewest repetitions
    std::size_t max = 1;         ///< most repetitions (SIZE_MAX: unbounded)
    bool possessive = false;     ///< never gives back (?+ *+ ++)
    bool lazy = false;           ///< tries fewer first (?? *? +?)
};

/// A group: alternatives tried in order (leftmost-first).
struct regex_group {
    std::vector<std::vector<regex_item>> alternatives;  ///< each a sequence of items
};

}  // namespace bpe_detail

/// A pre-tokenizer regex (the subset of Oniguruma described above), matched without std::regex.
class split_regex {
public:
    /// Parses `pattern`; format_error naming `where` for what the matcher does not support.
    static split_regex parse(std::u32string_view pattern, const std::string& where);

    /// A regex matching `literal` exactly (Split's {"String": ...} pattern); nothing for "".
    static split_regex literal(std::u32string_view literal) {
        split_regex r;
        r.groups_.emplace_back();
        if (literal.empty()) return r;  // no alternative: never matches
        std::vector<bpe_detail::regex_item> seq;
        for (char32_t c : literal) {
            bpe_detail::char_set s;
            s.ranges.push_back({c, c});
            s.finish();
            seq.push_back({bpe_detail::regex_item::kind::set, static_cast<std::uint32_t>(r.sets_.size())});
            r.sets_.push_back(std::move(s));
        }
        r.groups_[0].alternatives.push_back(std::move(seq));
        return r;
    }

    /// Backtracking steps one find() may take, plus 64 per character searched, before it gives up
    /// with a value_error (Oniguruma stops a match after 10,000,000 retries; GPT-2's and
    /// Llama-3's patterns take a few steps per character).
    static constexpr std::size_t step_limit = 10'000'000;

    /// The first match at or after `from` as [begin, end) in code points, or nothing.
    std::optional<std::pair<std::size_t, std::size_t>> find(std::u32string_view text, std::size_t from) const {
        const std::size_t limit = step_limit + 64 * (text.size() - std::min(from, text.size()));
        std::size_t steps = 0;
        for (std::size_t p = from; p < text.size(); ++p) {
            for (const auto& alt : groups_[0].alternatives) {
                std::size_t end = 0;
                if (match(text, alt, 0, p, nullptr, end, steps, limit)) return std::pair{p, end};
            }
        }
        return std::nullopt;
    }

private:
    friend class regex_parser;
    struct continuation {
        const std::vector<bpe_detail::regex_item>* seq;
        std::size_t index;
        const continuation* next;
    };

    // Matches seq[i..] then the continuations at `pos`; `end` receives where the whole match ends.
    bool match(std::u32string_view text, const std::vector<bpe_detail::regex_item>& seq, std::size_t i,
               std::size_t pos, const continuation* next, std::size_t& end, std::size_t& steps, std::size_t limit) const {
        using kind = bpe_detail::regex_item::kind;
        if (++steps > limit)
            throw value_error("prune::text: a pre-tokenizer regex took more than " + std::to_string(limit) +
                              " backtracking steps on one search (expected a pattern that does not backtrack exponentially)");
        for (;;) {
            if (i == seq.size()) {
                if (next == nullptr) {
                    end = pos;
                    return true;
                }
                return match(text, *next->seq, next->index, pos, next->next, end, steps, limit);
            }
            const auto& item = seq[i];
            if (item.what == kind::set) {
                const auto& set = sets_[item.index];
                std::size_t run = 0;
                while (run < item.max && pos + run < text.size() && set.contains(text[pos + run])) ++run;
                if (run < item.min) return false;
                if (run == item.min || item.possessive) {
                    pos += run;
                    ++i;
                    continue;
                }
                if (item.lazy) {
                    for (std::size_t k = item.min; k <= run; ++k)
                        if (match(text, seq, i + 1, pos + k, next, end, steps, limit)) return true;
                    return false;
                }
                for (std::size_t k = run;; --k) {
                    if (match(text, seq, i + 1, pos + k, next, end, steps, limit)) return true;
                    if (k == item.min) return false;
                }
            }
            const auto& group = groups_[item.index];
            if (item.what == kind::group) {
                const continuation after{&seq, i + 1, next};
                for (const auto& alt : group.alternatives)
                    if (match(text, alt, 0, pos, &after, end, steps, limit)) return true;
                if (item.min != 0) return false;
                ++i;  // an optional group, skipped
                continue;
            }
            bool found = false;
            for (const auto& alt : group.alternatives) {
                std::size_t ignored = 0;
                if (match(text, alt, 0, pos, nullptr, ignored, steps, limit)) {
                    found = true;
                    break;
                }
            }
            if (found != (item.what == kind::ahead)) return false;
            ++i;
        }
    }

    std::vector<bpe_detail::char_set> sets_;
    std::vector<bpe_detail::regex_group> groups_;  // groups_[0]: the whole pattern
};

/// Recursive-descent parser of split_regex patterns (depth bounded by the pattern's nesting).
class regex_parser {
public:
    /// A parser of `pattern` into `out`; `where` names the pattern in errors.
    regex_parser(std::u32string_view pattern, const std::string& where, split_regex& out)
        : p_(pattern), where_(where), out_(out) {}

    /// Parses the whole pattern into out.groups_[0].
    void run() {
        out_.groups_.emplace_back();
        parse_alternatives(0, false, 0);
        if (i_ != p_.size()) fail("unbalanced ')'");
        for (const auto& alt : out_.groups_[0].alternatives)
            if (min_length(alt) == 0) fail("an alternative can match the empty string");
        if (out_.groups_[0].alternatives.empty()) fail("empty pattern");
    }

private:
    using item = bpe_detail::regex_item;

    [[noreturn]] void fail(const std::string& what) const {
        throw format_error(where_ + ": regex \"" + encode_utf8(p_) + "\": " + what + " at offset " +
                           std::to_string(i_) +
                           " (expected the subset of Oniguruma used by byte-level BPE pre-tokenizers: "
                           "literals, classes with \\p{..} \\s \\d, groups (?: (?i: (?= (?!, quantifiers)");
    }
    bool at(char32_t c) const { return i_ < p_.size() && p_[i_] == c; }
    bool ahead(std::u32string_view s) const { return p_.substr(i_, s.size()) == s; }

    void parse_alternatives(std::uint32_t group, bool ci, int depth) {
        if (depth > 32) fail("groups nested deeper than 32");
        for (;;) {
            auto seq = parse_sequence(ci, depth);
            out_.groups_[group].alternatives.push_back(std::move(seq));
            if (!at(U'|')) return;
            ++i_;
        }
    }

    std::vector<item> parse_sequence(bool ci, int depth) {
        std::vector<item> seq;
        while (i_ < p_.size() && !at(U'|') && !at(U')')) {
            item it = parse_atom(ci, depth);
            parse_quantifier(it);
            seq.push_back(it);
        }
        if (ci) check_multi_char_folds(seq);
        return seq;
    }

    item parse_atom(bool ci, int depth) {
        const char32_t c = p_[i_];
        if (c == U'(') return parse_group(ci, depth);
        if (c == U'[') return add_set(parse_class(ci));
        if (c == U'.') {
            ++i_;
            bpe_detail::char_set s;
            s.not_newline = true;
            return add_set(std::move(s));
        }
        if (c == U'^' || c == U'$') fail("anchors are not supported");
        if (c == U'*' || c == U'+' || c == U'?' || c == U'{') fail("a quantifier without an operand");
        if (c == U'\\') {
            bpe_detail::char_set s;
            if (auto literal = parse_escape(s, false)) return add_set(literal_set(*literal, ci));
            if (ci) check_case_free(s);
            return add_set(std::move(s));
        }
        ++i_;
        return add_set(literal_set(c, ci));
    }

    item parse_group(bool ci, int depth) {
        ++i_;  // '('
        item it;
        it.what = item::kind::group;
        if (ahead(U"?:")) {
            i_ += 2;
        } else if (ahead(U"?i:")) {
            i_ += 3;
            ci = true;
        } else if (ahead(U"?=")) {
            i_ += 2;
            it.what = item::kind::ahead;
        } else if (ahead(U"?!")) {
            i_ += 2;
            it.what = item::kind::not_ahead;
        } else if (at(U'?')) {
            fail("this group kind is not supported (only (?: (?i: (?= (?!)");
        }
        it.index = static_cast<std::uint32_t>(out_.groups_.size());
        out_.groups_.emplace_back();
        parse_alternatives(it.index, ci, depth + 1);
        if (!at(U')')) fail("missing ')'");
        ++i_;
        return it;
    }

    // '[' ... ']' with ranges, escapes and negation.
    bpe_detail::char_set parse_class(bool ci) {
        ++i_;  // '['
        bpe_detail::char_set s;
        if (at(U'^')) {
            s.negated = true;
            ++i_;
        }
        bool first = true;
        while (!at(U']') || first) {
            if (i_ >= p_.size()) fail("missing ']'");
            if (at(U'[')) fail("nested classes are not supported");
            if (ahead(U"&&")) fail("class intersection is not supported");
            char32_t lo = 0;
            if (at(U'\\')) {
                auto literal = parse_escape(s, true);
                first = false;
                if (!literal) continue;
                lo = *literal;
            } else {
                lo = p_[i_++];
            }
            first = false;
            char32_t hi = lo;
            if (at(U'-') && i_ + 1 < p_.size() && p_[i_ + 1] != U']') {
                ++i_;
                if (at(U'\\')) {
                    bpe_detail::char_set ignored;
                    auto end = parse_escape(ignored, true);
                    if (!end) fail("a range ending in a class escape");
                    hi = *end;
                } else {
                    hi = p_[i_++];
                }
                if (hi < lo) fail("an empty range");
            }
            s.ranges.push_back({lo, hi});
        }
        ++i_;  // ']'
        if (ci) check_case_free(s);
        return s;
    }

    // After '\\': a literal character (returned) or a class merged into `s`.
    std::optional<char32_t> parse_escape(bpe_detail::char_set& s, bool in_class) {
        ++i_;
        if (i_ >= p_.size()) fail("a trailing backslash");
        const char32_t c = p_[i_++];
        switch (c) {
            case U'r': return U'\r';
            case U'n': return U'\n';
            case U't': return U'\t';
            case U'f': return U'\f';
            case U'v': return U'\v';
            case U's': s.white_space = true; return std::nullopt;
            case U'S': s.non_white_space = true; return std::nullopt;
            case U'd': s.categories |= 1u << static_cast<unsigned>(unicode::category::Nd); return std::nullopt;
            case U'p':
            case U'P': {
                if (c == U'P' && in_class) fail("\\P{..} inside a class is not supported");
                if (c == U'P' && (s.negated || s.categories != 0)) fail("\\P{..} here is not supported");
                s.categories |= parse_property();
                if (c == U'P') s.negated = true;
                return std::nullopt;
            }
            case U'x': return parse_hex(at(U'{') ? 0 : 2);
            case U'u': return parse_hex(4);
            default: break;
        }
        if (c < 0x80 && !((c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z')))
            return c;  // escaped punctuation
        --i_;
        fail(std::string("the escape \\") + static_cast<char>(c < 0x80 ? c : U'?') + " is not supported");
    }

    std::uint32_t parse_property() {
        if (!at(U'{')) fail("expected '{' after \\p");
        const std::size_t close = p_.find(U'}', i_);
        if (close == std::u32string_view::npos) fail("missing '}'");
        const std::string name = encode_utf8(p_.substr(i_ + 1, close - i_ - 1));
        i_ = close + 1;
        std::uint32_t bits = 0;
        const auto count = std::size(unicode::category_names);
        for (std::size_t k = 1; k < count; ++k) {
            const std::string_view cat = unicode::category_names[k];
            if (name == cat || (name.size() == 1 && cat[0] == name[0])) bits |= 1u << k;
        }
        if (name == "C" || name == "Cn") bits |= 1u;  // unassigned code points are Cn
        if (bits == 0 || name.size() > 2) fail("unknown property \\p{" + name + "} (expected a general category such as L, Lu, N, Nd)");
        return bits;
    }

    char32_t parse_hex(std::size_t digits) {
        const bool braced = digits == 0;
        if (braced) ++i_;
        char32_t value = 0;
        std::size_t n = 0;
        while (i_ < p_.size() && (braced || n < digits)) {
            const char32_t h = p_[i_];
            int d = -1;
            if (h >= U'0' && h <= U'9') d = static_cast<int>(h - U'0');
            if (h >= U'a' && h <= U'f') d = static_cast<int>(h - U'a') + 10;
            if (h >= U'A' && h <= U'F') d = static_cast<int>(h - U'A') + 10;
            if (d < 0) break;
            value = value * 16 + static_cast<char32_t>(d);
            ++i_;
            if (++n > 6) fail("a hexadecimal escape too long");
        }
        if (braced) {
            if (!at(U'}')) fail("missing '}' in \\x{..}");
            ++i_;
        }
        if (n == 0 || (!braced && n != digits) || value >= 0x110000) fail("a bad hexadecimal escape");
        return value;
    }

    void parse_quantifier(item& it) {
        if (i_ >= p_.size()) return;
        std::size_t min = 1, max = 1;
        const char32_t c = p_[i_];
        bool braces = false;
        if (c == U'?') {
            min = 0;
        } else if (c == U'*') {
            min = 0;
            max = std::numeric_limits<std::size_t>::max();
        } else if (c == U'+') {
            max = std::numeric_limits<std::size_t>::max();
        } else if (c == U'{') {
            braces = true;
            parse_braces(min, max);
        } else {
            return;
        }
        if (!braces) ++i_;
        if (it.what == item::kind::ahead || it.what == item::kind::not_ahead) fail("a quantified lookahead");
        if (it.what == item::kind::group && !(min == 0 && max == 1)) fail("only '?' may follow a group");
        it.min = min;
        it.max = max;
        if (at(U'+') || at(U'?')) {
            // Oniguruma's Ruby syntax: {n,m}+ is a repeated quantifier and {n,m}? varies: refuse both.
            if (braces) fail("a quantifier after {n,m}");
            if (it.what == item::kind::group) fail("a lazy or possessive group");
            (at(U'+') ? it.possessive : it.lazy) = true;
            ++i_;
        }
        if (at(U'*') || at(U'+') || at(U'?') || at(U'{')) fail("a repeated quantifier");
    }

    void parse_braces(std::size_t& min, std::size_t& max) {
        ++i_;
        auto number = [&]() -> std::optional<std::size_t> {
            std::size_t v = 0, n = 0;
            while (i_ < p_.size() && p_[i_] >= U'0' && p_[i_] <= U'9') {
                v = v * 10 + (p_[i_] - U'0');
                ++i_;
                if (++n > 6) fail("a repetition count above 999999");
            }
            return n == 0 ? std::nullopt : std::optional<std::size_t>(v);
        };
        const auto lo = number();
        if (!lo) fail("expected a number after '{'");
        min = max = *lo;
        if (at(U',')) {
            ++i_;
            const auto hi = number();
            max = hi ? *hi : std::numeric_limits<std::size_t>::max();
        }
        if (!at(U'}')) fail("missing '}'");
        ++i_;
        if (max < min) fail("{n,m} with m < n");
        if (max == 0) fail("{0}");
    }

    // A literal; under (?i) an ASCII letter matches both cases (and ſ for s, K for k, their
    // simple case folds); a non-ASCII cased letter is refused.
    bpe_detail::char_set literal_set(char32_t c, bool ci) {
        bpe_detail::char_set s;
        s.ranges.push_back({c, c});
        if (ci) {
            const char32_t lower = (c >= U'A' && c <= U'Z') ? c + 32 : c;
            if (lower >= U'a' && lower <= U'z') {
                s.ranges = {{lower, lower}, {lower - 32, lower - 32}};
                if (lower == U's') s.ranges.push_back({0x17F, 0x17F});
                if (lower == U'k') s.ranges.push_back({0x212A, 0x212A});
            } else if (c >= 0x80) {
                const auto cat = unicode::general_category(c);
                if (cat == unicode::category::Lu || cat == unicode::category::Ll || cat == unicode::category::Lt)
                    fail("a non-ASCII cased letter under (?i)");
            }
        }
        return s;
    }

    // Under (?i), classes must not depend on case.
    void check_case_free(const bpe_detail::char_set& s) {
        constexpr std::uint32_t cased = (1u << static_cast<unsigned>(unicode::category::Lu)) |
                                        (1u << static_cast<unsigned>(unicode::category::Ll)) |
                                        (1u << static_cast<unsigned>(unicode::category::Lt));
        bool letters = (s.categories & cased) != 0 && (s.categories & cased) != cased;
        for (const auto& r : s.ranges)
            if (r.first <= U'z' && r.last >= U'A') letters = true;
        if (letters) fail("a class with cased letters under (?i)");
    }

    // Oniguruma matches some letter pairs against one character under (?i) (ß for ss, ﬁ for fi):
    // not implemented, so refused.
    void check_multi_char_folds(const std::vector<item>& seq) {
        auto letter = [&](const item& it) -> char32_t {
            if (it.what != item::kind::set || it.min != 1 || it.max != 1) return 0;
            const auto& s = out_.sets_[it.index];
            return s.ranges.empty() || s.negated ? 0 : s.ranges.front().first;
        };
        static constexpr std::array<std::u32string_view, 5> folds = {U"ss", U"st", U"ff", U"fi", U"fl"};
        for (std::size_t k = 0; k + 1 < seq.size(); ++k) {
            const std::u32string pair{letter(seq[k]), letter(seq[k + 1])};
            for (auto f : folds)
                if (pair == f) fail("letter pairs with a multi-character case fold (ss, st, ff, fi, fl) under (?i)");
        }
    }

    std::size_t min_length(const std::vector<item>& seq) const {
        std::size_t n = 0;
        for (const auto& it : seq) {
            if (it.what == item::kind::set) n += it.min;
            if (it.what != item::kind::group || it.min == 0) continue;
            std::size_t best = std::numeric_limits<std::size_t>::max();
            for (const auto& alt : out_.groups_[it.index].alternatives) best = std::min(best, min_length(alt));
            n += best;
        }
        return n;
    }

    item add_set(bpe_detail::char_set s) {
        s.finish();
        item it;
        it.index = static_cast<std::uint32_t>(out_.sets_.size());
        out_.sets_.push_back(std::move(s));
        return it;
    }

    std::u32string_view p_;
    std::size_t i_ = 0;
    const std::string& where_;
    split_regex& out_;
};

inline split_regex split_regex::parse(std::u32string_view pattern, const std::string& where) {
    split_regex r;
    regex_parser(pattern, where, r).run();
    return r;
}

/// GPT-2's pre-tokenizer pattern, which Hugging Face's ByteLevel pre-tokenizer applies when use_regex is true.
inline constexpr std::u32string_view gpt2_pattern =
    U"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/// Llama-3's (and GPT-4's cl100k) pre-tokenizer pattern.
inline constexpr std::u32string_view llama3_pattern =
    U"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    U"\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

}  // namespace prune::text
