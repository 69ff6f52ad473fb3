// prune/models/bert/candidates.hpp: the weights m-pruning considers by default, as Prasanna et al.
// (and Chen et al.) prune them: the Q, K, V, attention-output, intermediate and output dense
// weights and biases of every encoder layer; no embeddings, LayerNorms, pooler or classifier.
#pragma once

#include <regex>
#include <string>

namespace prune::bert {

/// ECMAScript pattern matching (std::regex_search) exactly the paper's candidate tensor names,
/// with or without the `bert.` prefix.
inline constexpr const char* paper_candidate_pattern =
    R"((^|\.)encoder\.layer\.[0-9]+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.(weight|bias)$)";

/// True when a parameter name is one of the paper's m-pruning candidates.
[[nodiscard]] inline bool is_paper_candidate(const std::string& name) {
    static const std::regex pattern(paper_candidate_pattern, std::regex::ECMAScript);
    return std::regex_search(name, pattern);
}

}  // namespace prune::bert
