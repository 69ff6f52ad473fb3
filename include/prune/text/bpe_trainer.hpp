// prune/text/bpe_trainer.hpp: trains a small byte-level BPE on local text and saves it as a
// Hugging Face tokenizer.json (GPT-2's ByteLevel pre-tokenizer and decoder).
//
// bpe_trainer::add_text / add_file count words: the text is read line by line, each line
// keeping its '\n' (as Hugging Face's train_from_files reads files), invalid UTF-8 becomes
// U+FFFD, and each line is split by GPT-2's pre-tokenizer into byte-level words.
// train() then builds the vocabulary: the special tokens (ids 0.., in the order given), the
// byte alphabet (all 256 byte characters, or only those in the text, by code point), then one
// token per merge. Each step merges the most frequent adjacent pair over all words (each word
// weighted by its count); ties go to the pair whose (left id, right id) is smallest, which
// is Hugging Face's BpeTrainer's rule. Training stops at `vocab_size` ids or when the best
// pair is seen fewer than `min_frequency` times (or no pair is left). A merge whose text is
// already a token adds no id (as Hugging Face's trainer). Every occurrence is merged left to
// right in each word, and a word's pair counts are recounted after each merge, so counts are
// exact. save() writes tokenizer.json atomically (prune/io/atomic.hpp).
#pragma once

#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/text/bpe.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prune::text {

/// Options of the BPE trainer.
struct bpe_trainer_options {
    std::size_t vocab_size = 8192;                            ///< the most ids (special tokens, alphabet, merges)
    std::uint64_t min_frequency = 2;                          ///< stop when the best pair occurs fewer times
    std::vector<std::string> special_tokens = {"<|endoftext|>"};  ///< special added tokens, ids 0.. in this order
    bool full_alphabet = true;                                ///< all 256 byte characters, not only those seen
    std::optional<std::string> bos_token;                     ///< a special token encode() puts first (TemplateProcessing)
    std::optional<std::string> eos_token;                     ///< a special token encode() puts last (TemplateProcessing)
};

/// What training produced: the vocabulary in id order and the merges in rank order.
struct bpe_model {
    std::vector<std::string> tokens;                            ///< id -> token (byte-level text)
    std::vector<std::pair<std::string, std::string>> merges;    ///< rank -> (left, right)
    std::size_t special_count = 0;                              ///< ids 0..special_count-1 are special tokens
};

/// Trains a byte-level BPE from word counts of local text.
class bpe_trainer {
public:
    /// A trainer; value_error for options that cannot make a vocabulary.
    explicit bpe_trainer(bpe_trainer_options options) : options_(std::move(options)) {
        for (std::size_t i = 0; i < options_.special_tokens.size(); ++i) {
            if (options_.special_tokens[i].empty()) throw value_error("bpe_trainer: special token " + std::to_string(i) + " is empty");
            for (std::size_t j = 0; j < i; ++j)
                if (options_.special_tokens[j] == options_.special_tokens[i])
                    throw value_error("bpe_trainer: special token \"" + options_.special_tokens[i] + "\" is given twice");
        }
        for (const auto* name : {&options_.bos_token, &options_.eos_token})
            if (*name && std::find(options_.special_tokens.begin(), options_.special_tokens.end(), **name) == options_.special_tokens.end())
                throw value_error("bpe_trainer: bos/eos token \"" + **name + "\" is not one of the special tokens");
        if (options_.vocab_size > static_cast<std::size_t>(INT32_MAX))
            throw value_error("bpe_trainer: vocab_size " + std::to_string(options_.vocab_size) + " exceeds 2^31 - 1");
    }

    /// Counts the words of `text` (line by line, each line with its '\n').
    void add_text(std::string_view text) {
        std::size_t pos = 0;
        while (pos < text.size()) {
            const std::size_t nl = text.find('\n', pos);
            const std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
            add_line(text.substr(pos, end - pos));
            pos = end;
        }
    }
    /// Counts the words of a UTF-8 text file (NUL bytes are text here, as for Hugging Face's
    /// trainer); io_error when it cannot be read or exceeds io::max_text_bytes.
    void add_file(const std::filesystem::path& path) {
        add_text(io::read_text_file(path, io::max_text_bytes, io::nul_bytes::keep));
    }

    /// The distinct words seen so far (byte-level text) with their counts.
    const std::unordered_map<std::string, std::uint64_t>& word_counts() const { return counts_; }

    /// Trains on the words counted so far.
    bpe_model train() const;

    /// The tokenizer.json text of `model` (pretty-printed, 2-space indent).
    std::string to_json(const bpe_model& model) const;

    /// Writes `model` as tokenizer.json at `path`, atomically; io_error when it cannot.
    void save(const bpe_model& model, const std::filesystem::path& path) const {
        io::write_file_atomically(path, to_json(model));
    }

    /// The trained tokenizer, in memory, as bpe_tokenizer::from_file(save(...)) would load it.
    bpe_tokenizer tokenizer(const bpe_model& model) const { return bpe_tokenizer::from_string(to_json(model), "trained tokenizer"); }

private:
    void add_line(std::string_view line) {
        static const bpe_tokenizer pre = bpe_tokenizer::from_parts({}, {}, {});  // GPT-2's ByteLevel pre-tokenizer only
        for (const auto& word : pre.pre_tokenize(decode_utf8(line))) ++counts_[encode_utf8(word)];
    }

    bpe_trainer_options options_;
    std::unordered_map<std::string, std::uint64_t> counts_;
};

namespace bpe_detail {

/// The words being merged: symbol ids per word, counts, and pair statistics.
struct merge_state {
    std::vector<std::vector<std::int32_t>> words;                         ///< symbol ids of each distinct word
    std::vector<std::uint64_t> counts;                                    ///< occurrences of each word
    std::unordered_map<std::uint64_t, std::uint64_t> pair_counts;         ///< (left, right) -> weighted count
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> where;  ///< (left, right) -> words that may hold it

    /// The key of a pair: left id in the high half, so key order is (left, right) order.
    static std::uint64_t key(std::int32_t a, std::int32_t b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }
    /// Adds (sign +1) or removes (-1) the pairs of word w to the counts.
    void count_word(std::size_t w, int sign) {
        const auto& s = words[w];
        for (std::size_t i = 0; i + 1 < s.size(); ++i) {
            auto& c = pair_counts[key(s[i], s[i + 1])];
            c = sign > 0 ? c + counts[w] : c - counts[w];
        }
    }
};

}  // namespace bpe_detail

inline bpe_model bpe_trainer::train() const {
    bpe_model model;
    std::unordered_map<std::string, std::int32_t> ids;
    auto add_token = [&](const std::string& t) {
        auto [it, inserted] = ids.emplace(t, static_cast<std::int32_t>(model.tokens.size()));
        if (inserted) model.tokens.push_back(t);
        return it->second;
    };
    for (const auto& s : options_.special_tokens) add_token(s);
    model.special_count = model.tokens.size();
    std::vector<char32_t> alphabet;
    if (options_.full_alphabet) alphabet.assign(byte_to_unicode().begin(), byte_to_unicode().end());
    for (const auto& [word, count] : counts_)
        for (char32_t c : decode_utf8(word)) alphabet.push_back(c);
    std::sort(alphabet.begin(), alphabet.end());
    alphabet.erase(std::unique(alphabet.begin(), alphabet.end()), alphabet.end());
    for (char32_t c : alphabet) add_token(encode_utf8(std::u32string(1, c)));

    // Words in a fixed order (sorted), so nothing depends on hash order.
    std::vector<std::pair<std::string, std::uint64_t>> sorted(counts_.begin(), counts_.end());
    std::sort(sorted.begin(), sorted.end());
    bpe_detail::merge_state st;
    for (const auto& [word, count] : sorted) {
        std::vector<std::int32_t> symbols;
        for (char32_t c : decode_utf8(word)) symbols.push_back(ids.at(encode_utf8(std::u32string(1, c))));
        st.words.push_back(std::move(symbols));
        st.counts.push_back(count);
    }
    for (std::size_t w = 0; w < st.words.size(); ++w) {
        st.count_word(w, +1);
        for (std::size_t i = 0; i + 1 < st.words[w].size(); ++i)
            st.where[st.key(st.words[w][i], st.words[w][i + 1])].push_back(static_cast<std::uint32_t>(w));
    }
    using entry = std::pair<std::uint64_t, std::uint64_t>;  // (count, ~key): larger count, then smaller key first
    std::priority_queue<entry> queue;
    for (const auto& [k, c] : st.pair_counts)
        if (c > 0) queue.push({c, ~k});
    std::vector<std::uint32_t> seen(st.words.size(), 0);
    std::uint32_t step = 0;
    while (model.tokens.size() < options_.vocab_size && !queue.empty()) {
        const auto [count, inverted] = queue.top();
        queue.pop();
        const std::uint64_t k = ~inverted;
        const std::uint64_t current = st.pair_counts[k];
        if (current != count) {  // stale: requeue with the true count
            if (current > 0) queue.push({current, inverted});
            continue;
        }
        if (count == 0 || count < options_.min_frequency) break;
        const auto a = static_cast<std::int32_t>(k >> 32), b = static_cast<std::int32_t>(k & 0xFFFFFFFFu);
        model.merges.emplace_back(model.tokens[static_cast<std::size_t>(a)], model.tokens[static_cast<std::size_t>(b)]);
        const std::int32_t merged = add_token(model.tokens[static_cast<std::size_t>(a)] + model.tokens[static_cast<std::size_t>(b)]);
        ++step;
        std::vector<std::uint64_t> grown;  // pairs that gained occurrences
        for (std::uint32_t w : st.where[k]) {
            if (seen[w] == step) continue;
            seen[w] = step;
            auto& s = st.words[w];
            bool found = false;
            for (std::size_t i = 0; i + 1 < s.size() && !found; ++i) found = s[i] == a && s[i + 1] == b;
            if (!found) continue;
            st.count_word(w, -1);
            std::vector<std::int32_t> out;
            out.reserve(s.size());
            for (std::size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
                    out.push_back(merged);
                    ++i;
                } else {
                    out.push_back(s[i]);
                }
            }
            s = std::move(out);
            st.count_word(w, +1);
            for (std::size_t i = 0; i + 1 < s.size(); ++i) {
                if (s[i] != merged && s[i + 1] != merged) continue;
                const auto nk = st.key(s[i], s[i + 1]);
                st.where[nk].push_back(w);
                grown.push_back(nk);
            }
        }
        st.where.erase(k);
        std::sort(grown.begin(), grown.end());
        grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
        for (auto nk : grown)
            if (st.pair_counts[nk] > 0) queue.push({st.pair_counts[nk], ~nk});
    }
    return model;
}

inline std::string bpe_trainer::to_json(const bpe_model& model) const {
    using io::json;
    json root;
    root["version"] = "1.0";
    root["truncation"] = nullptr;
    root["padding"] = nullptr;
    json added = json::array();
    for (std::size_t i = 0; i < model.special_count; ++i)
        added.push_back({{"id", i}, {"content", model.tokens[i]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}});
    root["added_tokens"] = added;
    root["normalizer"] = nullptr;
    root["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    if (options_.bos_token || options_.eos_token) {
        json single = json::array(), pair = json::array(), specials = json::object();
        auto special = [&](const std::string& name, int type_id) {
            const auto id = std::find(model.tokens.begin(), model.tokens.end(), name) - model.tokens.begin();
            specials[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
            return json{{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
        };
        if (options_.bos_token) single.push_back(special(*options_.bos_token, 0));
        single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
        if (options_.eos_token) single.push_back(special(*options_.eos_token, 0));
        pair = single;
        pair.push_back({{"Sequence", {{"id", "B"}, {"type_id", 1}}}});
        if (options_.eos_token) pair.push_back(special(*options_.eos_token, 1));
        root["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
    } else {
        root["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
    }
    root["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    json vocab = json::object();
    for (std::size_t i = 0; i < model.tokens.size(); ++i) vocab[model.tokens[i]] = i;
    json merges = json::array();
    for (const auto& [l, r] : model.merges) merges.push_back({l, r});
    root["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                     {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}};
    return root.dump(2) + "\n";
}

}  // namespace prune::text
