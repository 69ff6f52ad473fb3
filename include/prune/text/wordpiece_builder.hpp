// prune/text/wordpiece_builder.hpp: builds a WordPiece vocabulary (vocab.txt) from a corpus,
// deterministically.
//
// The algorithm is the one Hugging Face's `tokenizers` WordPieceTrainer runs: byte-pair
// merges over words whose non-initial characters carry the "##" prefix.
//   1. Words: every text goes through BERT's BasicTokenizer (prune/text/wordpiece.hpp:
//      lower-case, strip accents, split punctuation); words are counted.
//   2. Alphabet: every code point seen, both as a word-initial piece "c" and as a
//      continuation "##c" (so any word over the alphabet has a segmentation).
//   3. Merges: repeatedly merge the adjacent pair of pieces with the highest count (summed
//      over words, weighted by word frequency); ties go to the pair whose left, then right,
//      piece entered the vocabulary first. "a" + "##b" -> "ab", "##a" + "##b" -> "##ab". A
//      merge that yields a string already in the vocabulary adds no token. Stop at
//      `vocab_size` tokens or when the best pair occurs fewer than `min_frequency` times.
//   4. vocab.txt order: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then the alphabet
//      (word-initial pieces by code point, then "##" pieces by code point), then the merged
//      tokens in merge order. Hugging Face reads the special ids from the file, so these
//      ids work with BertTokenizer (bert-base-uncased itself uses 0, 100, 101, 102, 103).
// Greedy longest-match WordPiece over the result reproduces the merged words.
#pragma once

#include <prune/text/wordpiece.hpp>
#include <prune/error.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prune::text {

/// Options of the vocabulary builder.
struct wordpiece_builder_options {
    std::size_t vocab_size = 8000;                    ///< total tokens, specials and alphabet included
    std::uint64_t min_frequency = 2;                  ///< a pair must occur this often to be merged
    basic_tokenizer_options basic{};            ///< how texts are split into words (BERT uncased)
};

/// Counts the words of texts as BERT's BasicTokenizer splits them (deterministic: ordered map).
class word_counter {
public:
    /// A counter splitting texts with `basic` options.
    explicit word_counter(basic_tokenizer_options basic = {}) : basic_(basic) {}

    /// Adds the words of one UTF-8 text.
    void add_text(std::string_view text) {
        for (auto& word : basic_tokenize(std::u32string_view(decode_utf8(text)), basic_)) ++counts_[word];
    }

    /// Word (as code points) -> count.
    const std::map<std::u32string, std::uint64_t>& counts() const { return counts_; }

private:
    basic_tokenizer_options basic_;
    std::map<std::u32string, std::uint64_t> counts_;
};

/// Builds the vocabulary tokens (in id order) from word counts; see the header comment for the algorithm.
inline std::vector<std::string> build_wordpiece_vocabulary(const std::map<std::u32string, std::uint64_t>& word_counts,
                                                           const wordpiece_builder_options& options = {}) {
    const std::size_t specials = special_tokens.size();
    if (options.vocab_size < specials)
        throw value_error("wordpiece builder: vocab_size " + std::to_string(options.vocab_size) +
                          " is smaller than the " + std::to_string(specials) + " special tokens");
    if (options.min_frequency == 0) throw value_error("wordpiece builder: min_frequency must be >= 1");

    std::vector<std::string> tokens;
    std::unordered_map<std::string, std::int32_t> id_of;
    auto add_token = [&](const std::string& t) -> std::int32_t {
        auto [it, inserted] = id_of.emplace(t, static_cast<std::int32_t>(tokens.size()));
        if (inserted) tokens.push_back(t);
        return it->second;
    };
    for (auto s : special_tokens) add_token(std::string(s));

    // Alphabet, sorted by code point; initial pieces first.
    std::set<char32_t> alphabet;
    for (const auto& [word, count] : word_counts)
        for (char32_t cp : word) alphabet.insert(cp);
    for (char32_t cp : alphabet) {
        std::string t;
        append_utf8(t, cp);
        add_token(t);
    }
    for (char32_t cp : alphabet) {
        std::string t = "##";
        append_utf8(t, cp);
        add_token(t);
    }

    // Words as piece-id sequences.
    struct word_entry {
        std::vector<std::int32_t> pieces;
        std::uint64_t count;
    };
    std::vector<word_entry> words;
    words.reserve(word_counts.size());
    for (const auto& [word, count] : word_counts) {
        word_entry w{{}, count};
        for (std::size_t i = 0; i < word.size(); ++i) {
            std::string t = i == 0 ? "" : "##";
            append_utf8(t, word[i]);
            w.pieces.push_back(id_of.at(t));
        }
        words.push_back(std::move(w));
    }

    // Pair statistics: count per pair, an ordered set for the best pair, and the words holding each pair.
    using pair_key = std::uint64_t;
    auto key_of = [](std::int32_t a, std::int32_t b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    };
    std::unordered_map<pair_key, std::uint64_t> pair_count;
    std::unordered_map<pair_key, std::vector<std::uint32_t>> pair_words;
    // Ordered by count descending, then left id, then right id ascending.
    using ranked = std::tuple<std::uint64_t, std::int32_t, std::int32_t>;  // (~count, left, right)
    std::set<ranked> ranking;
    auto rank_of = [](std::uint64_t count, pair_key k) {
        return ranked{~count, static_cast<std::int32_t>(k >> 32), static_cast<std::int32_t>(k & 0xFFFFFFFFu)};
    };
    for (std::uint32_t w = 0; w < words.size(); ++w) {
        const auto& p = words[w].pieces;
        for (std::size_t i = 0; i + 1 < p.size(); ++i) {
            const pair_key k = key_of(p[i], p[i + 1]);
            pair_count[k] += words[w].count;
            auto& list = pair_words[k];
            if (list.empty() || list.back() != w) list.push_back(w);
        }
    }
    for (const auto& [k, c] : pair_count) ranking.insert(rank_of(c, k));

    std::unordered_map<pair_key, std::int64_t> delta;
    while (tokens.size() < options.vocab_size && !ranking.empty()) {
        const auto [inverted, left, right] = *ranking.begin();
        const std::uint64_t best_count = ~inverted;
        if (best_count < options.min_frequency) break;
        const pair_key best = key_of(left, right);
        const std::string& right_text = tokens[static_cast<std::size_t>(right)];
        const std::string merged = tokens[static_cast<std::size_t>(left)] + right_text.substr(2);
        const std::int32_t merged_id = add_token(merged);

        delta.clear();
        std::vector<std::uint32_t> affected = std::move(pair_words[best]);
        pair_words.erase(best);
        for (std::uint32_t w : affected) {
            auto& p = words[w].pieces;
            const auto count = static_cast<std::int64_t>(words[w].count);
            bool present = false;
            for (std::size_t i = 0; i + 1 < p.size(); ++i)
                if (p[i] == left && p[i + 1] == right) present = true;
            if (!present) continue;
            for (std::size_t i = 0; i + 1 < p.size(); ++i) delta[key_of(p[i], p[i + 1])] -= count;
            std::vector<std::int32_t> q;
            q.reserve(p.size());
            for (std::size_t i = 0; i < p.size(); ++i) {
                if (i + 1 < p.size() && p[i] == left && p[i + 1] == right) {
                    q.push_back(merged_id);
                    ++i;
                } else {
                    q.push_back(p[i]);
                }
            }
            p = std::move(q);
            for (std::size_t i = 0; i + 1 < p.size(); ++i) {
                const pair_key k = key_of(p[i], p[i + 1]);
                delta[k] += count;
                if (k != best) {
                    auto& list = pair_words[k];
                    if (list.empty() || list.back() != w) list.push_back(w);
                }
            }
        }
        // Apply the net changes in a fixed order (the set's order does not depend on it, but be tidy).
        for (const auto& [k, d] : delta) {
            if (d == 0) continue;
            auto it = pair_count.find(k);
            const std::uint64_t old = it == pair_count.end() ? 0 : it->second;
            if (old > 0) ranking.erase(rank_of(old, k));
            const auto now = static_cast<std::uint64_t>(static_cast<std::int64_t>(old) + d);
            if (now == 0) {
                if (it != pair_count.end()) pair_count.erase(it);
            } else {
                pair_count[k] = now;
                ranking.insert(rank_of(now, k));
            }
        }
        // The merged pair must be gone now; guard against a stale entry.
        if (auto it = pair_count.find(best); it != pair_count.end()) {
            ranking.erase(rank_of(it->second, best));
            pair_count.erase(it);
        }
    }
    return tokens;
}

}  // namespace prune::text
