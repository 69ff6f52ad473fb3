// prune/data/wordnet.hpp: reads the WordNet 3.0 database as Debian's wordnet-base installs it
// (/usr/share/wordnet/data.{noun,verb,adj,adv}).
//
// A data line is
//   offset lex_filenum ss_type w_cnt(2 hex) [word lex_id(1 hex)]... p_cnt(3 dec)
//   [pointer_symbol offset pos source/target(4 hex)]... [verb frames] | gloss
// Lines starting with two spaces are the licence header. The gloss holds the definition
// (possibly several "; "-separated parts) followed by quoted examples: `def; "ex 1"; "ex 2"`.
// lex_filenum names one of the 45 lexicographer files (the supersenses: noun.person,
// verb.motion, adj.all, ...). Hypernym pointers are `@` (class) and `@i` (instance).
// Adjective words may carry a syntactic marker "(a)", "(p)" or "(ip)", which is dropped;
// underscores in words become spaces.
#pragma once

#include <prune/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prune::data {

/// The 45 WordNet lexicographer files (supersenses), indexed by lex_filenum.
inline constexpr std::array<std::string_view, 45> wordnet_lexicographer_files = {
    "adj.all",           "adj.pert",          "adv.all",           "noun.Tops",       "noun.act",
    "noun.animal",       "noun.artifact",     "noun.attribute",    "noun.body",       "noun.cognition",
    "noun.communication", "noun.event",       "noun.feeling",      "noun.food",       "noun.group",
    "noun.location",     "noun.motive",       "noun.object",       "noun.person",     "noun.phenomenon",
    "noun.plant",        "noun.possession",   "noun.process",      "noun.quantity",   "noun.relation",
    "noun.shape",        "noun.state",        "noun.substance",    "noun.time",       "verb.body",
    "verb.change",       "verb.cognition",    "verb.communication", "verb.competition", "verb.consumption",
    "verb.contact",      "verb.creation",     "verb.emotion",      "verb.motion",     "verb.perception",
    "verb.possession",   "verb.social",       "verb.stative",      "verb.weather",    "adj.ppl"};

/// One synset of the database.
struct wordnet_synset {
    char pos = 'n';                      ///< data file: 'n', 'v', 'a' (adjectives and satellites), 'r'
    char type = 'n';                     ///< ss_type: 'n', 'v', 'a', 's' (satellite adjective), 'r'
    std::uint32_t offset = 0;            ///< byte offset in its data file (the synset's id there)
    int lexicographer_file = 0;          ///< lex_filenum, index into wordnet_lexicographer_files
    std::vector<std::string> lemmas;     ///< words, '_' replaced by ' ', adjective markers dropped
    std::string definition;              ///< the gloss before its quoted examples
    std::vector<std::string> examples;   ///< the quoted example sentences of the gloss
    std::vector<std::size_t> hypernyms;  ///< indices (into wordnet_database::synsets) of '@' and '@i' targets
};

/// The whole database: synsets of the four data files in file order (noun, verb, adj, adv).
struct wordnet_database {
    std::vector<wordnet_synset> synsets;  ///< every synset
};

namespace detail {

/// Splits a gloss into its definition and its quoted examples.
inline std::pair<std::string, std::vector<std::string>> split_gloss(std::string_view gloss) {
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == ';')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == ';')) s.remove_suffix(1);
        return s;
    };
    std::size_t cut = gloss.find("; \"");
    if (!gloss.empty() && gloss.front() == '"') cut = 0;
    std::string definition(trim(gloss.substr(0, cut)));
    std::vector<std::string> examples;
    if (cut != std::string_view::npos) {
        std::string_view rest = gloss.substr(cut);
        std::size_t pos = 0;
        while ((pos = rest.find('"', pos)) != std::string_view::npos) {
            const std::size_t end = rest.find('"', pos + 1);
            if (end == std::string_view::npos) break;
            std::string_view example = trim(rest.substr(pos + 1, end - pos - 1));
            if (!example.empty()) examples.emplace_back(example);
            pos = end + 1;
        }
    }
    return {std::move(definition), std::move(examples)};
}

/// A lemma as displayed: '_' -> ' ', trailing "(a)", "(p)", "(ip)" dropped.
inline std::string clean_lemma(std::string_view word) {
    if (const auto open = word.rfind('('); open != std::string_view::npos && !word.empty() && word.back() == ')')
        word = word.substr(0, open);
    std::string out(word);
    for (char& c : out)
        if (c == '_') c = ' ';
    return out;
}

}  // namespace detail

/// Reads data.{noun,verb,adj,adv} from `directory`; io_error when a file is missing, format_error
/// (file:line and what was expected) on a malformed line or a dangling hypernym pointer.
inline wordnet_database load_wordnet(const std::filesystem::path& directory) {
    struct pending_pointer {
        std::size_t from;
        char pos;
        std::uint32_t offset;
        std::size_t line;
        std::string file;
    };
    wordnet_database db;
    std::unordered_map<std::uint64_t, std::size_t> index;  // (pos << 32 | offset) -> synset index
    std::vector<pending_pointer> pending;
    const std::array<std::pair<const char*, char>, 4> files = {
        {{"data.noun", 'n'}, {"data.verb", 'v'}, {"data.adj", 'a'}, {"data.adv", 'r'}}};
    for (const auto& [name, pos] : files) {
        const auto path = directory / name;
        std::ifstream in(path, std::ios::binary);
        if (!in)
            throw io_error("cannot open WordNet file " + path.string() +
                           " (expected Debian's wordnet-base under " + directory.string() + ")");
        std::string line;
        std::size_t line_number = 0;
        while (std::getline(in, line)) {
            ++line_number;
            if (line.empty() || line[0] == ' ') continue;  // licence header
            const std::string where = path.string() + ":" + std::to_string(line_number);
            auto bad = [&](const std::string& what) {
                return format_error(where + ": " + what + " (expected a WordNet 3.0 data line)");
            };
            const std::size_t bar = line.find(" | ");
            if (bar == std::string::npos) throw bad("no ' | ' before the gloss");
            std::vector<std::string_view> fields;
            {
                std::string_view head(line.data(), bar);
                std::size_t i = 0;
                while (i < head.size()) {
                    while (i < head.size() && head[i] == ' ') ++i;
                    std::size_t j = i;
                    while (j < head.size() && head[j] != ' ') ++j;
                    if (j > i) fields.push_back(head.substr(i, j - i));
                    i = j;
                }
            }
            auto number = [&](std::string_view field, int base, const char* what) -> std::uint64_t {
                if (field.empty()) throw bad(std::string("empty ") + what);
                std::uint64_t v = 0;
                for (char c : field) {
                    int d = -1;
                    if (c >= '0' && c <= '9') d = c - '0';
                    else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
                    else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
                    if (d < 0 || d >= base) throw bad(std::string("bad ") + what + " '" + std::string(field) + "'");
                    v = v * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d);
                    if (v > 0xFFFFFFFFu) throw bad(std::string(what) + " out of range");
                }
                return v;
            };
            if (fields.size() < 6) throw bad("too few fields");
            wordnet_synset s;
            s.pos = pos;
            s.offset = static_cast<std::uint32_t>(number(fields[0], 10, "offset"));
            const auto lexfile = number(fields[1], 10, "lex_filenum");
            if (lexfile >= wordnet_lexicographer_files.size()) throw bad("lex_filenum " + std::to_string(lexfile) + " outside 0..44");
            s.lexicographer_file = static_cast<int>(lexfile);
            if (fields[2].size() != 1 || std::string_view("nvasr").find(fields[2][0]) == std::string_view::npos)
                throw bad("bad ss_type '" + std::string(fields[2]) + "'");
            s.type = fields[2][0];
            const auto words = number(fields[3], 16, "w_cnt");
            std::size_t f = 4;
            if (words == 0 || fields.size() < f + 2 * words + 1) throw bad("w_cnt does not match the words");
            for (std::uint64_t w = 0; w < words; ++w, f += 2) s.lemmas.push_back(detail::clean_lemma(fields[f]));
            const auto pointers = number(fields[f], 10, "p_cnt");
            ++f;
            if (fields.size() < f + 4 * pointers) throw bad("p_cnt does not match the pointers");
            const std::size_t self = db.synsets.size();
            for (std::uint64_t p = 0; p < pointers; ++p, f += 4) {
                if (fields[f] == "@" || fields[f] == "@i") {
                    const char target_pos = fields[f + 2].size() == 1 ? fields[f + 2][0] : '?';
                    if (std::string_view("nvasr").find(target_pos) == std::string_view::npos)
                        throw bad("bad pointer part of speech '" + std::string(fields[f + 2]) + "'");
                    pending.push_back({self, target_pos == 's' ? 'a' : target_pos,
                                       static_cast<std::uint32_t>(number(fields[f + 1], 10, "pointer offset")),
                                       line_number, path.string()});
                }
            }
            std::string_view gloss(line);
            gloss.remove_prefix(bar + 3);
            while (!gloss.empty() && (gloss.back() == ' ' || gloss.back() == '\r')) gloss.remove_suffix(1);
            auto [definition, examples] = detail::split_gloss(gloss);
            s.definition = std::move(definition);
            s.examples = std::move(examples);
            index[(static_cast<std::uint64_t>(static_cast<unsigned char>(pos)) << 32) | s.offset] = self;
            db.synsets.push_back(std::move(s));
        }
        if (in.bad()) throw io_error("error while reading " + path.string());
    }
    for (const auto& p : pending) {
        auto it = index.find((static_cast<std::uint64_t>(static_cast<unsigned char>(p.pos)) << 32) | p.offset);
        if (it == index.end())
            throw format_error(p.file + ":" + std::to_string(p.line) + ": hypernym pointer to " + p.pos + " " +
                               std::to_string(p.offset) + " names no synset");
        db.synsets[p.from].hypernyms.push_back(it->second);
    }
    if (db.synsets.empty()) throw format_error("no synsets found in " + directory.string());
    return db;
}

}  // namespace prune::data
