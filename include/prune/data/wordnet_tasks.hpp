// prune/data/wordnet_tasks.hpp: WordNet-GLUE, a small GLUE-like suite built from Debian's
// WordNet (docs/wordnet-glue.md has the design and the measured learnability).
//
// Split: every synset is assigned to train or dev by a seeded hash of its definition (so
// synsets sharing a definition share a side); a dev synset any of whose texts (definition
// or example) is also a text of a train synset is dropped. A row shows the texts of its
// synsets only from its own side, so no synset, definition or example of dev is in train.
// The words a pair task shows as its second sequence (a hypernym's lemma) are labels-like
// vocabulary shared by both sides, as "person" must be.
//
// Tasks (label names are in the stats):
//   supersense       single: definition -> lexicographer file (45 classes)
//   pos              single: definition -> part of speech (4 classes, balanced)
//   concrete         single: definition of a noun -> physical entity or abstraction (WordNet's
//                            first split of the nouns; balanced)
//   hypernym         pair:   (definition of A, lemma L) -> L names a hypernym of A; the
//                            negative L is a hypernym lemma of another synset of A's part
//                            of speech, so L alone says nothing about the label
//   same_supersense  pair:   (definition of A, definition of B) -> same lexicographer file;
//                            B of A's part of speech either way
//   cohyponym        pair:   (definition of A, definition of B) -> A and B share a hypernym;
//                            the negative B is from A's lexicographer file with no shared hypernym
//   example_match    pair:   (definition of A, example E) -> E is an example of A; the
//                            negative E is an example of another synset of A's part of speech
//   same_pos         pair:   (definition of A, definition of B) -> same part of speech; A's and
//                            B's parts of speech uniform either way
// The defaults are the three tasks the default tiny BERT learns (docs/wordnet-glue.md has the
// measurements: it learns no pair task within the experiment's budget).
// Rows are sampled without replacement of A, shuffled, and balanced for the pair tasks.
// Everything is a function of the database and the seed (SplitMix64 streams; no std::
// distributions), so the same seed gives the same bytes.
//
// write_wordnet_glue writes DIR/<task>/{train,dev}.jsonl ({"text","text_pair"?,"label"}),
// optionally DIR/<task>/{train,dev}.ids.jsonl (input_ids, token_type_ids, attention_mask,
// label), DIR/vocab.txt (built on the train side, prune/text/wordpiece_builder.hpp),
// DIR/pretrain/{train,dev}.txt (definitions and examples, one per line) and DIR/stats.json,
// into a staging directory that is renamed into place (prune/io/atomic.hpp).
#pragma once

#include <prune/text/wordpiece.hpp>
#include <prune/data/wordnet.hpp>
#include <prune/text/wordpiece_builder.hpp>
#include <prune/detail/random.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace prune::data {

/// Names of the tasks the generator knows.
inline const std::vector<std::string>& wordnet_task_names() {
    static const std::vector<std::string> names = {"supersense", "hypernym", "same_supersense", "cohyponym",
                                                   "example_match", "same_pos", "pos", "concrete"};
    return names;
}

/// The default tasks: those the default pre-trained tiny BERT learns to >= 10 points over the
/// majority baseline in the lottery's fine-tuning budget (docs/wordnet-glue.md, "Learnability").
inline const std::vector<std::string>& wordnet_default_tasks() {
    static const std::vector<std::string> names = {"supersense", "pos", "concrete"};
    return names;
}

/// Options of the WordNet-GLUE generator.
struct wordnet_glue_options {
    std::uint64_t seed = 0;                                ///< everything random derives from it
    std::vector<std::string> tasks = wordnet_default_tasks();  ///< which tasks to build
    std::size_t train_rows = 6000;                         ///< rows per task in train (fewer if the pool is smaller)
    std::size_t dev_rows = 1000;                           ///< rows per task in dev
    double dev_fraction = 0.15;                            ///< share of synsets assigned to dev
    std::size_t max_words = 24;                            ///< longest definition / example used, in BasicTokenizer words
    std::size_t vocab_size = 8000;                         ///< WordPiece vocabulary size
    std::size_t max_length = 64;                           ///< truncation for the .ids.jsonl files
    bool write_ids = false;                                ///< also write tokenized {train,dev}.ids.jsonl
    std::size_t synset_stride = 1;                         ///< use every k-th synset only (1 = all; tests use a sample)
};

/// One row of a task.
struct wordnet_row {
    std::string text;                      ///< first sequence
    std::optional<std::string> text_pair;  ///< second sequence of a pair task
    int label = 0;                         ///< class index
    std::vector<std::size_t> synsets;      ///< synsets whose texts the row shows (for the leakage checks)
};

/// One generated task.
struct wordnet_task {
    std::string name;                      ///< e.g. "hypernym"
    bool pair = false;                     ///< true when rows have text_pair
    std::vector<std::string> label_names;  ///< name of each class index
    std::vector<wordnet_row> train;        ///< training rows
    std::vector<wordnet_row> dev;          ///< development rows
};

/// The generated suite.
struct wordnet_glue {
    std::uint64_t seed = 0;                    ///< the seed used
    std::vector<int> split;                    ///< per synset: 0 train, 1 dev, -1 unused
    std::vector<wordnet_task> tasks;           ///< the tasks, in the order asked for
    std::vector<std::string> vocabulary;       ///< vocab.txt tokens in id order
    std::vector<std::string> pretrain_train;   ///< definitions and examples of train synsets
    std::vector<std::string> pretrain_dev;     ///< definitions and examples of dev synsets
};

namespace detail {

using prune::detail::splitmix64;  // the library's one generator (<prune/detail/random.hpp>)

/// FNV-1a 64 of a string, mixed with a seed.
inline std::uint64_t hash_text(std::string_view text, std::uint64_t seed) {
    std::uint64_t h = 0xCBF29CE484222325ull ^ (seed * 0x9E3779B97F4A7C15ull);
    for (const char ch : text) {
        h ^= static_cast<unsigned char>(ch);
        h *= 0x100000001B3ull;
    }
    return splitmix64::from_state(h).next();
}

/// Number of BasicTokenizer words of a text.
inline std::size_t word_count(std::string_view text) {
    return prune::text::basic_tokenize(std::u32string_view(prune::text::decode_utf8(text))).size();
}

/// Lower-cased ASCII copy (for comparing lemmas).
inline std::string lower_ascii(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

/// Every synset's ancestors through hypernym pointers (itself excluded), sorted.
inline std::vector<std::vector<std::size_t>> ancestor_sets(const wordnet_database& db) {
    const std::size_t n = db.synsets.size();
    std::vector<std::vector<std::size_t>> out(n);
    std::vector<char> state(n, 0);  // 0 new, 1 in progress, 2 done
    auto visit = [&](auto&& self, std::size_t s) -> void {
        if (state[s] != 0) return;  // done, or a cycle (none in WordNet 3.0): cut it
        state[s] = 1;
        std::vector<std::size_t> all;
        for (std::size_t h : db.synsets[s].hypernyms) {
            self(self, h);
            all.push_back(h);
            all.insert(all.end(), out[h].begin(), out[h].end());
        }
        std::sort(all.begin(), all.end());
        all.erase(std::unique(all.begin(), all.end()), all.end());
        out[s] = std::move(all);
        state[s] = 2;
    };
    for (std::size_t s = 0; s < n; ++s) visit(visit, s);
    return out;
}

/// Rows of a single-sentence task balanced to the row: each class's synsets shuffled, then
/// the classes (label = index) in turn until `want` rows or a class runs out.
inline void take_in_turn(const std::vector<wordnet_synset>& syn, std::vector<std::vector<std::size_t>> classes,
                         splitmix64& rng, std::size_t want, std::vector<wordnet_row>& rows) {
    for (auto& c : classes) rng.shuffle(c);
    for (std::size_t k = 0; rows.size() < want; ++k) {
        const std::size_t c = k % classes.size();
        if (k / classes.size() >= classes[c].size()) break;
        const std::size_t a = classes[c][k / classes.size()];
        rows.push_back({syn[a].definition, std::nullopt, static_cast<int>(c), {a}});
    }
}

/// The row pools of one side of the split.
struct side_pools {
    std::vector<std::size_t> usable;         ///< synsets with a short definition
    std::vector<std::size_t> with_examples;  ///< usable synsets with >= 1 short example
};

}  // namespace detail

/// Builds the suite from a database; value_error on an unknown task or bad option.
inline wordnet_glue build_wordnet_glue(const wordnet_database& db, const wordnet_glue_options& options = {}) {
    for (const auto& t : options.tasks)
        if (std::find(wordnet_task_names().begin(), wordnet_task_names().end(), t) == wordnet_task_names().end())
            throw value_error("unknown WordNet-GLUE task '" + t +
                              "' (expected supersense, pos, concrete, hypernym, same_supersense, cohyponym, example_match or same_pos)");
    if (!(options.dev_fraction > 0.0 && options.dev_fraction < 1.0))
        throw value_error("dev_fraction must be in (0, 1), got " + number_text(options.dev_fraction));
    if (options.synset_stride == 0) throw value_error("synset_stride must be >= 1");
    const std::size_t n = db.synsets.size();
    const auto& syn = db.synsets;

    wordnet_glue out;
    out.seed = options.seed;
    out.split.assign(n, 0);

    // 1. Split by a seeded hash of the definition; drop dev synsets sharing a text with train.
    const auto threshold = static_cast<std::uint64_t>(options.dev_fraction * 18446744073709551616.0);
    for (std::size_t i = 0; i < n; ++i)
        out.split[i] = i % options.synset_stride != 0                                                ? -1
                       : detail::hash_text(syn[i].definition, options.seed ^ 0x5350'4C49'54ull) < threshold ? 1
                                                                                                    : 0;
    std::unordered_set<std::string> train_texts;
    for (std::size_t i = 0; i < n; ++i) {
        if (out.split[i] != 0) continue;
        train_texts.insert(syn[i].definition);
        for (const auto& e : syn[i].examples) train_texts.insert(e);
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (out.split[i] != 1) continue;
        bool shared = train_texts.count(syn[i].definition) != 0;
        for (const auto& e : syn[i].examples) shared = shared || train_texts.count(e) != 0;
        if (shared) out.split[i] = -1;
    }

    // 2. Pools per side: short definitions; short examples.
    std::vector<std::vector<std::string>> short_examples(n);
    std::array<detail::side_pools, 2> pools;
    for (std::size_t i = 0; i < n; ++i) {
        if (out.split[i] < 0 || syn[i].definition.empty()) continue;
        if (detail::word_count(syn[i].definition) > options.max_words) continue;
        auto& pool = pools[static_cast<std::size_t>(out.split[i])];
        pool.usable.push_back(i);
        for (const auto& e : syn[i].examples)
            if (detail::word_count(e) <= options.max_words) short_examples[i].push_back(e);
        if (!short_examples[i].empty()) pool.with_examples.push_back(i);
    }

    // 3. Tasks.
    const auto ancestors = detail::ancestor_sets(db);
    for (const auto& name : options.tasks) {
        wordnet_task task;
        task.name = name;
        for (int side = 0; side < 2; ++side) {
            const auto& pool = pools[static_cast<std::size_t>(side)];
            const std::size_t want = side == 0 ? options.train_rows : options.dev_rows;
            const std::uint64_t state = detail::hash_text(name, options.seed) ^ static_cast<std::uint64_t>(side + 1);
            auto rng = detail::splitmix64::from_state(state);
            std::vector<wordnet_row> rows;
            // Pools by part of speech (data file) and by lexicographer file.
            std::unordered_map<char, std::vector<std::size_t>> by_pos;
            std::unordered_map<int, std::vector<std::size_t>> by_lexfile;
            for (std::size_t s : pool.usable) {
                by_pos[syn[s].pos].push_back(s);
                by_lexfile[syn[s].lexicographer_file].push_back(s);
            }
            if (name == "supersense") {
                task.pair = false;
                auto order = pool.usable;
                rng.shuffle(order);
                for (std::size_t k = 0; k < order.size() && rows.size() < want; ++k) {
                    const std::size_t a = order[k];
                    rows.push_back({syn[a].definition, std::nullopt, syn[a].lexicographer_file, {a}});
                }
            } else if (name == "hypernym") {
                task.pair = true;
                std::vector<std::size_t> candidates;
                for (std::size_t s : pool.usable)
                    if (!syn[s].hypernyms.empty()) candidates.push_back(s);
                std::unordered_map<char, std::vector<std::size_t>> candidates_by_pos;
                for (std::size_t s : candidates) candidates_by_pos[syn[s].pos].push_back(s);
                auto order = candidates;
                rng.shuffle(order);
                for (std::size_t k = 0; k < order.size() && rows.size() < want; ++k) {
                    const std::size_t a = order[k];
                    const int label = static_cast<int>(rows.size() % 2 == 0);
                    std::unordered_set<std::string> own;  // lemmas of A's hypernyms
                    for (std::size_t h : syn[a].hypernyms)
                        for (const auto& l : syn[h].lemmas) own.insert(detail::lower_ascii(l));
                    std::string lemma;
                    if (label == 1) {
                        const std::size_t h = syn[a].hypernyms[rng.below(syn[a].hypernyms.size())];
                        lemma = syn[h].lemmas.front();
                    } else {
                        const auto& same_pos = candidates_by_pos[syn[a].pos];
                        for (int attempt = 0; attempt < 64 && lemma.empty(); ++attempt) {
                            const std::size_t b = same_pos[rng.below(same_pos.size())];
                            const std::size_t h = syn[b].hypernyms[rng.below(syn[b].hypernyms.size())];
                            if (own.count(detail::lower_ascii(syn[h].lemmas.front())) == 0) lemma = syn[h].lemmas.front();
                        }
                        if (lemma.empty()) continue;
                    }
                    rows.push_back({syn[a].definition, lemma, label, {a}});
                }
            } else if (name == "same_supersense") {
                task.pair = true;
                auto order = pool.usable;
                rng.shuffle(order);
                for (std::size_t k = 0; k < order.size() && rows.size() < want; ++k) {
                    const std::size_t a = order[k];
                    const int label = static_cast<int>(rows.size() % 2 == 0);
                    std::optional<std::size_t> b;
                    if (label == 1) {
                        const auto& same = by_lexfile[syn[a].lexicographer_file];
                        if (same.size() < 2) continue;
                        for (int attempt = 0; attempt < 64 && !b; ++attempt) {
                            const std::size_t c = same[rng.below(same.size())];
                            if (c != a && syn[c].definition != syn[a].definition) b = c;
                        }
                    } else {
                        const auto& same_pos = by_pos[syn[a].pos];
                        for (int attempt = 0; attempt < 64 && !b; ++attempt) {
                            const std::size_t c = same_pos[rng.below(same_pos.size())];
                            if (syn[c].lexicographer_file != syn[a].lexicographer_file) b = c;
                        }
                    }
                    if (!b) continue;
                    rows.push_back({syn[a].definition, syn[*b].definition, label, {a, *b}});
                }
            } else if (name == "cohyponym") {
                task.pair = true;
                std::vector<std::size_t> candidates;
                std::unordered_map<std::size_t, std::vector<std::size_t>> by_hypernym;
                std::unordered_map<int, std::vector<std::size_t>> candidates_by_lexfile;
                for (std::size_t s : pool.usable) {
                    if (syn[s].hypernyms.empty()) continue;
                    candidates.push_back(s);
                    candidates_by_lexfile[syn[s].lexicographer_file].push_back(s);
                    for (std::size_t h : syn[s].hypernyms) by_hypernym[h].push_back(s);
                }
                auto order = candidates;
                rng.shuffle(order);
                for (std::size_t k = 0; k < order.size() && rows.size() < want; ++k) {
                    const std::size_t a = order[k];
                    const int label = static_cast<int>(rows.size() % 2 == 0);
                    auto shares_hypernym = [&](std::size_t c) {
                        for (std::size_t h : syn[c].hypernyms)
                            if (std::find(syn[a].hypernyms.begin(), syn[a].hypernyms.end(), h) != syn[a].hypernyms.end())
                                return true;
                        return false;
                    };
                    std::optional<std::size_t> b;
                    if (label == 1) {
                        const auto& siblings = by_hypernym[syn[a].hypernyms[rng.below(syn[a].hypernyms.size())]];
                        if (siblings.size() < 2) continue;
                        for (int attempt = 0; attempt < 64 && !b; ++attempt) {
                            const std::size_t c = siblings[rng.below(siblings.size())];
                            if (c != a && syn[c].definition != syn[a].definition) b = c;
                        }
                    } else {
                        const auto& same_file = candidates_by_lexfile[syn[a].lexicographer_file];
                        for (int attempt = 0; attempt < 64 && !b; ++attempt) {
                            const std::size_t c = same_file[rng.below(same_file.size())];
                            if (c != a && !shares_hypernym(c)) b = c;
                        }
                    }
                    if (!b) continue;
                    rows.push_back({syn[a].definition, syn[*b].definition, label, {a, *b}});
                }
            } else if (name == "concrete") {
                task.pair = false;
                // WordNet's first split of the nouns: physical entity (1) or abstraction (0)
                std::optional<std::size_t> physical, abstraction;
                for (std::size_t s = 0; s < n; ++s) {
                    if (syn[s].pos != 'n' || syn[s].hypernyms.size() != 1) continue;
                    const auto& parent = syn[syn[s].hypernyms.front()];
                    if (parent.lemmas.empty() || parent.lemmas.front() != "entity" || !parent.hypernyms.empty()) continue;
                    if (syn[s].lemmas.front() == "physical entity") physical = s;
                    if (syn[s].lemmas.front() == "abstraction") abstraction = s;
                }
                if (!physical || !abstraction)
                    throw format_error("WordNet has no 'physical entity' / 'abstraction' under 'entity' (task concrete)");
                std::array<std::vector<std::size_t>, 2> classes;
                for (std::size_t s : by_pos['n']) {
                    const auto& up = ancestors[s];
                    const bool is_physical = std::binary_search(up.begin(), up.end(), *physical);
                    const bool is_abstract = std::binary_search(up.begin(), up.end(), *abstraction);
                    if (is_physical != is_abstract) classes[is_physical ? 1 : 0].push_back(s);
                }
                detail::take_in_turn(syn, {classes.begin(), classes.end()}, rng, want, rows);
            } else if (name == "pos") {
                task.pair = false;
                detail::take_in_turn(syn, {by_pos['n'], by_pos['v'], by_pos['a'], by_pos['r']}, rng, want, rows);
            } else if (name == "same_pos") {
                task.pair = true;
                // A's part of speech uniform over the four, B's too (either label): neither
                // sequence alone says anything about the label.
                const std::array<char, 4> parts = {'n', 'v', 'a', 'r'};
                std::array<std::size_t, 4> next{};
                std::array<std::vector<std::size_t>, 4> orders;
                for (std::size_t p = 0; p < 4; ++p) {
                    orders[p] = by_pos[parts[p]];
                    rng.shuffle(orders[p]);
                }
                for (std::size_t attempt = 0; rows.size() < want && attempt < 8 * want; ++attempt) {
                    const int label = static_cast<int>(rows.size() % 2 == 0);
                    const std::size_t pa = rng.below(4);
                    const std::size_t pb = label == 1 ? pa : (pa + 1 + rng.below(3)) % 4;
                    if (next[pa] >= orders[pa].size() || orders[pb].size() < 2) break;
                    const std::size_t a = orders[pa][next[pa]++];
                    std::size_t b = orders[pb][rng.below(orders[pb].size())];
                    if (b == a || syn[b].definition == syn[a].definition) continue;
                    rows.push_back({syn[a].definition, syn[b].definition, label, {a, b}});
                }
            } else if (name == "example_match") {
                task.pair = true;
                auto order = pool.with_examples;
                rng.shuffle(order);
                std::unordered_map<char, std::vector<std::size_t>> examples_by_pos;
                for (std::size_t s : pool.with_examples) examples_by_pos[syn[s].pos].push_back(s);
                for (std::size_t k = 0; k < order.size() && rows.size() < want; ++k) {
                    const std::size_t a = order[k];
                    const int label = static_cast<int>(rows.size() % 2 == 0);
                    std::size_t source = a;
                    if (label == 0) {
                        const auto& same_pos = examples_by_pos[syn[a].pos];
                        std::optional<std::size_t> b;
                        for (int attempt = 0; attempt < 64 && !b; ++attempt) {
                            const std::size_t c = same_pos[rng.below(same_pos.size())];
                            if (c != a) b = c;
                        }
                        if (!b) continue;
                        source = *b;
                    }
                    const auto& list = short_examples[source];
                    const std::string& example = list[rng.below(list.size())];
                    if (label == 0 && std::find(syn[a].examples.begin(), syn[a].examples.end(), example) != syn[a].examples.end())
                        continue;
                    std::vector<std::size_t> used = {a};
                    if (source != a) used.push_back(source);
                    rows.push_back({syn[a].definition, example, label, used});
                }
            }
            rng.shuffle(rows);
            (side == 0 ? task.train : task.dev) = std::move(rows);
        }
        if (name == "supersense") {
            task.label_names.assign(wordnet_lexicographer_files.begin(), wordnet_lexicographer_files.end());
        } else if (name == "hypernym") {
            task.label_names = {"not_hypernym", "hypernym"};
        } else if (name == "same_supersense") {
            task.label_names = {"different", "same"};
        } else if (name == "same_pos") {
            task.label_names = {"different", "same"};
        } else if (name == "concrete") {
            task.label_names = {"abstraction", "physical_entity"};
        } else if (name == "pos") {
            task.label_names = {"noun", "verb", "adjective", "adverb"};
        } else if (name == "cohyponym") {
            task.label_names = {"no_shared_hypernym", "shared_hypernym"};
        } else {
            task.label_names = {"other_synset", "same_synset"};
        }
        out.tasks.push_back(std::move(task));
    }

    // 4. Pre-training corpus and vocabulary: texts of the train side only (lemmas too, for the vocabulary).
    text::word_counter counter;
    for (std::size_t i = 0; i < n; ++i) {
        if (out.split[i] < 0) continue;
        auto& corpus = out.split[i] == 0 ? out.pretrain_train : out.pretrain_dev;
        if (!syn[i].definition.empty()) corpus.push_back(syn[i].definition);
        for (const auto& e : syn[i].examples) corpus.push_back(e);
        if (out.split[i] == 0) {
            counter.add_text(syn[i].definition);
            for (const auto& e : syn[i].examples) counter.add_text(e);
            for (const auto& l : syn[i].lemmas) counter.add_text(l);
        }
    }
    text::wordpiece_builder_options vocab_options;
    vocab_options.vocab_size = options.vocab_size;
    out.vocabulary = text::build_wordpiece_vocabulary(counter.counts(), vocab_options);
    return out;
}

namespace detail {

/// Class counts of rows.
inline std::vector<std::size_t> class_counts(const std::vector<wordnet_row>& rows, std::size_t classes) {
    std::vector<std::size_t> counts(classes, 0);
    for (const auto& r : rows) ++counts.at(static_cast<std::size_t>(r.label));
    return counts;
}

}  // namespace detail

/// stats.json content: per task rows, class counts, train-majority label and its dev accuracy.
inline nlohmann::ordered_json wordnet_glue_stats(const wordnet_glue& suite) {
    nlohmann::ordered_json stats;
    stats["seed"] = suite.seed;
    stats["vocab_size"] = suite.vocabulary.size();
    std::size_t train_synsets = 0, dev_synsets = 0, unused = 0;
    for (int s : suite.split) (s == 0 ? train_synsets : s == 1 ? dev_synsets : unused)++;
    stats["synsets"] = {{"train", train_synsets}, {"dev", dev_synsets}, {"unused", unused}};
    stats["pretrain_lines"] = {{"train", suite.pretrain_train.size()}, {"dev", suite.pretrain_dev.size()}};
    nlohmann::ordered_json tasks = nlohmann::ordered_json::object();
    for (const auto& t : suite.tasks) {
        const auto train = detail::class_counts(t.train, t.label_names.size());
        const auto dev = detail::class_counts(t.dev, t.label_names.size());
        const auto majority = static_cast<std::size_t>(std::max_element(train.begin(), train.end()) - train.begin());
        nlohmann::ordered_json j;
        j["kind"] = t.pair ? "pair" : "single";
        j["num_labels"] = t.label_names.size();
        j["labels"] = t.label_names;
        j["train"] = {{"rows", t.train.size()}, {"class_counts", train}};
        j["dev"] = {{"rows", t.dev.size()}, {"class_counts", dev}};
        j["majority_label"] = majority;
        j["majority_baseline"] = t.dev.empty() ? 0.0 : static_cast<double>(dev[majority]) / static_cast<double>(t.dev.size());
        tasks[t.name] = std::move(j);
    }
    stats["tasks"] = std::move(tasks);
    return stats;
}

/// Writes the suite's files into an existing (staging) directory `out`; write_wordnet_glue is the atomic form.
inline void write_wordnet_glue_files(const wordnet_glue& suite, const std::filesystem::path& out,
                                     const wordnet_glue_options& options = {}) {
    auto write = [](const std::filesystem::path& path, const std::string& text) {
        std::ofstream f(path, std::ios::binary);
        if (!f) throw io_error("cannot write " + path.string());
        f.write(text.data(), static_cast<std::streamsize>(text.size()));
        f.close();
        if (!f) throw io_error("error while writing " + path.string());
    };
    std::string vocab_text;
    for (const auto& t : suite.vocabulary) vocab_text += t + "\n";
    write(out / "vocab.txt", vocab_text);
    const text::tokenizer tok(text::vocabulary::from_tokens(suite.vocabulary, "generated vocabulary"));
    for (const auto& task : suite.tasks) {
        std::filesystem::create_directories(out / task.name);
        for (int side = 0; side < 2; ++side) {
            const auto& rows = side == 0 ? task.train : task.dev;
            const std::string stem = side == 0 ? "train" : "dev";
            std::string text, ids;
            for (const auto& r : rows) {
                nlohmann::ordered_json j;
                j["text"] = r.text;
                if (r.text_pair) j["text_pair"] = *r.text_pair;
                j["label"] = r.label;
                text += j.dump() + "\n";
                if (options.write_ids) {
                    const auto e = r.text_pair ? tok.encode(r.text, *r.text_pair, options.max_length)
                                               : tok.encode(r.text, options.max_length);
                    nlohmann::ordered_json k;
                    k["input_ids"] = e.input_ids;
                    k["token_type_ids"] = e.token_type_ids;
                    k["attention_mask"] = e.attention_mask;
                    k["label"] = r.label;
                    ids += k.dump() + "\n";
                }
            }
            write(out / task.name / (stem + ".jsonl"), text);
            if (options.write_ids) write(out / task.name / (stem + ".ids.jsonl"), ids);
        }
    }
    std::filesystem::create_directories(out / "pretrain");
    for (int side = 0; side < 2; ++side) {
        std::string text;
        for (const auto& line : side == 0 ? suite.pretrain_train : suite.pretrain_dev) text += line + "\n";
        write(out / "pretrain" / (side == 0 ? "train.txt" : "dev.txt"), text);
    }
    write(out / "stats.json", wordnet_glue_stats(suite).dump(2) + "\n");
}

/// Writes the suite into `out_dir` atomically (staged in a hidden sibling, then renamed into place).
inline void write_wordnet_glue(const wordnet_glue& suite, const std::filesystem::path& out_dir,
                               const wordnet_glue_options& options = {}) {
    io::output_directory out(out_dir);
    write_wordnet_glue_files(suite, out.path(), options);
    out.commit();
}

}  // namespace prune::data
