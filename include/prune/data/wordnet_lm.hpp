// prune/data/wordnet_lm.hpp: a dictionary text for a small causal LM and held-out multiple-choice
// probes of what it learnt, built from Debian's WordNet (docs/llm.md has the design).
//
// Entries: every synset whose first lemma is one lower-case word becomes one line
//
//     word : definition . word is a noun . word is a kind of hypernym .
//     word : definition . word is an adjective .
//
// (the part of speech is noun, verb, adjective or adverb; "is a kind of" only for a noun whose
// first hypernym's first lemma is one lower-case word). Synsets are split into train and dev by
// a seeded hash of the synset (its part of speech and byte offset), so no dev entry -- the fact
// a probe asks about -- is in the training text (a dev entry whose word and definition a training
// entry also has, as WordNet's duplicates do, is dropped). Lines are shuffled by the seed.
//
// Probes (dev entries only), each asked twice: with the context that holds or implies the answer
// and without it (the baseline: what the model's prior gives); every choice is a continuation
// scored by the model's likelihood, one of 4:
//   hypernym  "\nw : def . w is a noun . w is a kind of" -> the hypernym; baseline "\nw is a kind
//             of". Distractors: hypernyms of training entries with the nearest training-text
//             frequency (so frequency alone does not give the answer). `in_context` when the
//             answer is a word of the definition (a reading question).
//   pos       "\nw : def . w is" -> a noun / a verb / an adjective / an adverb (balanced
//             classes); baseline "\nw is".
//   copy      "\nw : def ." -> w, the entry's own word, which the context holds (copying it needs
//             attention); baseline "\ndef ." (the definition alone: which word it defines, a
//             knowledge question). Distractors: dev entry words of the nearest frequency.
// Everything is a function of the database and the seed (SplitMix64), so the same seed gives the
// same text and probes.
#pragma once

#include <prune/data/wordnet.hpp>
#include <prune/detail/random.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace prune::data {

/// What build_wordnet_lm makes.
struct wordnet_lm_options {
    std::uint64_t seed = 0;              ///< split, shuffle and distractors
    double dev_fraction = 0.08;          ///< share of entries held out
    std::size_t probes_per_kind = 200;   ///< questions per probe kind (at most; pos: a quarter per class)
    std::size_t choices = 4;             ///< choices per question (the answer + distractors)
};

/// One multiple-choice question.
struct wordnet_probe {
    std::string kind;                  ///< "hypernym", "pos" or "copy"
    std::string context;               ///< the prompt with its context
    std::string baseline;              ///< the same question without it
    std::vector<std::string> choices;  ///< continuations (each starts with a space)
    std::size_t answer = 0;            ///< index of the right choice
    bool in_context = false;           ///< the answer is a word of the context's definition
};

/// The text and the probes.
struct wordnet_lm {
    std::vector<std::string> train;        ///< training entries, one line each, shuffled
    std::vector<std::string> dev;          ///< held-out entries (perplexity)
    std::vector<wordnet_probe> probes;     ///< questions about dev entries
};

namespace detail {

/// A synset's entry: word, part of speech, definition, hypernym ("" when none).
struct lm_entry {
    std::string word, pos, definition, hypernym;
    bool dev = false;
};

/// True for one lower-case ASCII word (letters, inner hyphens).
inline bool plain_word(std::string_view w) {
    if (w.empty() || w.front() == '-' || w.back() == '-') return false;
    return std::all_of(w.begin(), w.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; });
}

/// "noun", "verb", "adjective" or "adverb".
inline const char* pos_name(char pos) {
    return pos == 'n' ? "noun" : pos == 'v' ? "verb" : pos == 'r' ? "adverb" : "adjective";
}

/// The definition as a line fragment: ';' and '"' dropped, whitespace single, no final '.'.
inline std::string clean_definition(std::string_view d) {
    std::string out;
    for (char c : d) {
        if (c == '"' || c == '\n' || c == '\r' || c == '\t') c = ' ';
        if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
        out += c;
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == '.' || out.back() == ';')) out.pop_back();
    return out;
}

/// "an" before adjective and adverb, "a" before noun and verb.
inline const char* article(const std::string& pos) { return pos[0] == 'a' ? "an" : "a"; }

/// The entries of the database, with the seeded split.
inline std::vector<lm_entry> lm_entries(const wordnet_database& db, const wordnet_lm_options& o) {
    std::vector<lm_entry> out;
    const auto threshold = static_cast<std::uint64_t>(o.dev_fraction * 18446744073709551615.0);
    for (const auto& s : db.synsets) {
        if (s.lemmas.empty() || !plain_word(s.lemmas.front()) || s.definition.empty()) continue;
        lm_entry e{s.lemmas.front(), pos_name(s.pos), clean_definition(s.definition), "", false};
        if (e.definition.empty()) continue;
        if (s.pos == 'n' && !s.hypernyms.empty()) {
            const auto& h = db.synsets[s.hypernyms.front()];
            if (!h.lemmas.empty() && plain_word(h.lemmas.front()) && h.lemmas.front() != e.word) e.hypernym = h.lemmas.front();
        }
        const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<unsigned char>(s.pos)) << 32) | s.offset;
        e.dev = prune::detail::splitmix64::from_state(key ^ (o.seed * 0x9E3779B97F4A7C15ull)).next() < threshold;
        out.push_back(std::move(e));
    }
    return out;
}

/// The entry's line.
inline std::string entry_line(const lm_entry& e) {
    std::string line = e.word + " : " + e.definition + " . " + e.word + " is " + article(e.pos) + " " + e.pos + " .";
    if (!e.hypernym.empty()) line += " " + e.word + " is a kind of " + e.hypernym + " .";
    return line;
}

/// Occurrences of each space-separated word in `lines`.
inline std::unordered_map<std::string, std::size_t> word_counts(const std::vector<std::string>& lines) {
    std::unordered_map<std::string, std::size_t> counts;
    for (const auto& line : lines) {
        std::istringstream in(line);
        std::string w;
        while (in >> w) ++counts[w];
    }
    return counts;
}

/// `want` distractors for `answer` from `pool` (sorted by frequency, then word): drawn from the
/// 4 x want pool words nearest the answer in frequency rank, never in `exclude`.
inline std::vector<std::string> distractors(const std::vector<std::pair<std::size_t, std::string>>& pool, const std::string& answer,
                                            const std::set<std::string>& exclude, std::size_t want, prune::detail::splitmix64& rng) {
    std::size_t at = 0;
    while (at < pool.size() && pool[at].second != answer) ++at;
    std::vector<std::pair<std::size_t, std::string>> near;  // (rank distance, word)
    for (std::size_t i = 0; i < pool.size(); ++i) {
        if (pool[i].second == answer || exclude.count(pool[i].second) > 0) continue;
        near.emplace_back(i > at ? i - at : at - i, pool[i].second);
    }
    std::sort(near.begin(), near.end());
    near.resize(std::min(near.size(), 4 * want));
    std::vector<std::string> out;
    for (const auto& [d, w] : near) out.push_back(w);
    rng.shuffle(out);
    out.resize(std::min(out.size(), want));
    return out;
}

/// A pool of words sorted by their count in the training text (then alphabetically).
inline std::vector<std::pair<std::size_t, std::string>> frequency_pool(const std::set<std::string>& words,
                                                                       const std::unordered_map<std::string, std::size_t>& counts) {
    std::vector<std::pair<std::size_t, std::string>> pool;
    for (const auto& w : words) {
        const auto it = counts.find(w);
        pool.emplace_back(it == counts.end() ? 0 : it->second, w);
    }
    std::sort(pool.begin(), pool.end());
    return pool;
}

/// The question with `answer` at a seeded position among its distractors (" " before each).
inline void place_choices(wordnet_probe& p, const std::string& answer, std::vector<std::string> others, prune::detail::splitmix64& rng) {
    p.answer = static_cast<std::size_t>(rng.below(others.size() + 1));
    others.insert(others.begin() + static_cast<std::ptrdiff_t>(p.answer), answer);
    for (auto& c : others) p.choices.push_back(" " + c);
}

/// True when `word` is a space-separated word of `text`.
inline bool has_word(const std::string& text, const std::string& word) {
    std::istringstream in(text);
    std::string w;
    while (in >> w) {
        if (w == word) return true;
    }
    return false;
}

/// Hypernym questions (dev nouns with a hypernym a training entry also has).
inline void hypernym_probes(const std::vector<const lm_entry*>& dev, const std::vector<lm_entry>& all,
                            const std::unordered_map<std::string, std::size_t>& counts, const wordnet_lm_options& o,
                            std::vector<wordnet_probe>& out) {
    std::set<std::string> known;
    for (const auto& e : all)
        if (!e.dev && !e.hypernym.empty()) known.insert(e.hypernym);
    const auto pool = frequency_pool(known, counts);
    prune::detail::splitmix64 rng(o.seed, 11);
    std::size_t made = 0;
    for (const lm_entry* e : dev) {
        if (made == o.probes_per_kind) break;
        if (e->hypernym.empty() || known.count(e->hypernym) == 0) continue;
        wordnet_probe p;
        p.kind = "hypernym";
        p.context = "\n" + e->word + " : " + e->definition + " . " + e->word + " is a noun . " + e->word + " is a kind of";
        p.baseline = "\n" + e->word + " is a kind of";
        p.in_context = has_word(e->definition, e->hypernym);
        place_choices(p, e->hypernym, distractors(pool, e->hypernym, {e->word}, o.choices - 1, rng), rng);
        if (p.choices.size() != o.choices) continue;
        out.push_back(std::move(p));
        ++made;
    }
}

/// Part-of-speech questions, a quarter per class.
inline void pos_probes(const std::vector<const lm_entry*>& dev, const wordnet_lm_options& o, std::vector<wordnet_probe>& out) {
    static constexpr std::array<const char*, 4> classes = {"noun", "verb", "adjective", "adverb"};
    std::map<std::string, std::size_t> made;
    for (const lm_entry* e : dev) {
        if (made[e->pos] == o.probes_per_kind / classes.size()) continue;
        wordnet_probe p;
        p.kind = "pos";
        p.context = "\n" + e->word + " : " + e->definition + " . " + e->word + " is";
        p.baseline = "\n" + e->word + " is";
        for (const char* c : classes) p.choices.push_back(std::string(" ") + article(c) + " " + c);
        p.answer = static_cast<std::size_t>(std::find(classes.begin(), classes.end(), e->pos) - classes.begin());
        out.push_back(std::move(p));
        ++made[e->pos];
    }
}

/// Copy questions: the entry's own word after its definition.
inline void copy_probes(const std::vector<const lm_entry*>& dev, const std::unordered_map<std::string, std::size_t>& counts,
                        const wordnet_lm_options& o, std::vector<wordnet_probe>& out) {
    std::set<std::string> words;
    for (const lm_entry* e : dev) words.insert(e->word);
    const auto pool = frequency_pool(words, counts);
    prune::detail::splitmix64 rng(o.seed, 13);
    std::size_t made = 0;
    for (const lm_entry* e : dev) {
        if (made == o.probes_per_kind) break;
        wordnet_probe p;
        p.kind = "copy";
        p.context = "\n" + e->word + " : " + e->definition + " .";
        p.baseline = "\n" + e->definition + " .";
        std::set<std::string> exclude;
        std::istringstream in(e->definition);
        for (std::string w; in >> w;) exclude.insert(w);
        place_choices(p, e->word, distractors(pool, e->word, exclude, o.choices - 1, rng), rng);
        if (p.choices.size() != o.choices) continue;
        out.push_back(std::move(p));
        ++made;
    }
}

}  // namespace detail

/// The dictionary text and its probes (see the top of this header). value_error for options
/// outside their ranges or a database too small to give any probe.
[[nodiscard]] inline wordnet_lm build_wordnet_lm(const wordnet_database& db, const wordnet_lm_options& o = {}) {
    if (!(o.dev_fraction > 0.0 && o.dev_fraction < 1.0))
        throw value_error("prune::data::build_wordnet_lm: dev_fraction " + std::to_string(o.dev_fraction) + " (expected 0 < f < 1)");
    if (o.choices < 2) throw value_error("prune::data::build_wordnet_lm: choices " + std::to_string(o.choices) + " (expected >= 2)");
    const std::vector<detail::lm_entry> entries = detail::lm_entries(db, o);
    wordnet_lm out;
    std::set<std::string> trained;  // "word : definition" of every training entry
    for (const auto& e : entries) {
        if (e.dev) continue;
        out.train.push_back(detail::entry_line(e));
        trained.insert(e.word + " : " + e.definition);
    }
    std::vector<const detail::lm_entry*> dev;  // a held-out entry whose word and definition a training entry has is dropped
    for (const auto& e : entries)
        if (e.dev && trained.count(e.word + " : " + e.definition) == 0) dev.push_back(&e);
    prune::detail::splitmix64 rng(o.seed, 10);
    rng.shuffle(out.train);
    rng.shuffle(dev);
    for (const auto* e : dev) out.dev.push_back(detail::entry_line(*e));
    const auto counts = detail::word_counts(out.train);
    detail::hypernym_probes(dev, entries, counts, o, out.probes);
    detail::pos_probes(dev, o, out.probes);
    detail::copy_probes(dev, counts, o, out.probes);
    if (out.train.empty() || out.probes.empty())
        throw value_error("prune::data::build_wordnet_lm: the database gives " + std::to_string(out.train.size()) + " training entries and " +
                          std::to_string(out.probes.size()) + " probes (expected some of each)");
    return out;
}

}  // namespace prune::data
