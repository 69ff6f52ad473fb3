// Synthetic text for the decoder tests that pre-train a small Llama with prune-pretrain: a small
// grammar, so the text has structure to learn.
#pragma once

#include "../support/files.hpp"

#include <cstddef>
#include <filesystem>
#include <random>
#include <string>

namespace prune_test {

/// Synthetic "glosses": sentences of a small grammar (so the text has structure to learn).
inline std::string synthetic_text(std::size_t lines, unsigned seed) {
    static const char* subjects[] = {"a small animal", "the large tree", "an old house", "a red flower", "the cold river"};
    static const char* verbs[] = {"that grows near", "that lives in", "found beside", "seen under", "made of"};
    static const char* objects[] = {"the water", "a forest", "the mountains", "old stone", "the city"};
    std::mt19937 rng(seed);
    std::string out;
    for (std::size_t i = 0; i < lines; ++i) {
        out += std::string(subjects[rng() % 5]) + " " + verbs[rng() % 5] + " " + objects[rng() % 5];
        if (rng() % 2) out += std::string(" and ") + objects[rng() % 5];
        out += "\n";
    }
    return out;
}

/// data/pretrain/train.txt and dev.txt of synthetic text in `dir`.
inline void write_pretrain_data(const std::filesystem::path& dir, std::size_t train_lines, std::size_t dev_lines) {
    std::filesystem::create_directories(dir / "data" / "pretrain");
    write_file(dir / "data" / "pretrain" / "train.txt", synthetic_text(train_lines, 1));
    write_file(dir / "data" / "pretrain" / "dev.txt", synthetic_text(dev_lines, 2));
}

}  // namespace prune_test
