// prune/models/decoder/choices.hpp: the log-likelihood of continuations under a causal LM --
// how a multiple-choice question is answered by the model's own likelihood (zero-shot probes).
//
//   log p(c | prompt) = sum over the continuation's tokens c_i of log p(c_i | prompt, c_<i)
//
// Each (prompt, continuation) runs as its own sequence (rows never attend to each other),
// packed into batches of at most `batch_tokens` tokens, logits never kept whole. A prompt longer
// than max_position_embeddings minus the continuation is cut from its start.
#pragma once

#include <prune/models/decoder/forward.hpp>
#include <prune/error.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace prune::decoder {

/// A prompt and a continuation of it, as token ids.
struct continuation {
    std::vector<std::int32_t> prompt;  ///< at least one token
    std::vector<std::int32_t> tokens;  ///< the continuation scored (at least one token)
};

/// The index of the largest value (the first on ties).
[[nodiscard]] inline std::size_t argmax(std::span<const double> values) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < values.size(); ++i)
        if (values[i] > values[best]) best = i;
    return best;
}

namespace detail {

/// The ids run for item `c`: the prompt's last tokens that fit, then the continuation. Also the
/// number of prompt tokens kept.
inline std::size_t pack_continuation(const config& cfg, const continuation& c, sequences& seq, std::size_t at) {
    if (c.prompt.empty() || c.tokens.empty())
        throw value_error("prune::decoder::log_likelihoods: item " + std::to_string(at) + " has an empty " +
                          (c.prompt.empty() ? "prompt" : "continuation") + " (expected >= 1 token)");
    const auto limit = static_cast<std::size_t>(cfg.max_position_embeddings);
    if (c.tokens.size() >= limit)
        throw value_error("prune::decoder::log_likelihoods: item " + std::to_string(at) + "'s continuation has " +
                          std::to_string(c.tokens.size()) + " tokens (expected < max_position_embeddings " +
                          std::to_string(limit) + ")");
    const std::size_t keep = std::min(c.prompt.size(), limit - c.tokens.size());
    std::vector<std::int32_t> ids(c.prompt.end() - static_cast<std::ptrdiff_t>(keep), c.prompt.end());
    ids.insert(ids.end(), c.tokens.begin(), c.tokens.end());
    seq.add(ids);
    return keep;
}

}  // namespace detail

/// log p(continuation | prompt) of every item (natural log), under the gates `g` (null: none).
/// value_error naming the item for an empty prompt or continuation, a continuation as long as
/// the context, or a token outside the vocabulary.
[[nodiscard]] inline std::vector<double> log_likelihoods(const weights& w, std::span<const continuation> items, workspace& ws,
                                                         const gates* g = nullptr, std::size_t batch_tokens = 8192) {
    std::vector<double> out(items.size(), 0.0);
    forward_options fo;
    fo.gate = g;
    fo.keep_logits = false;
    for (std::size_t begin = 0; begin < items.size();) {
        sequences seq;
        std::vector<std::size_t> prompt_kept;
        std::size_t end = begin;
        while (end < items.size() && (end == begin || static_cast<std::size_t>(seq.total()) + items[end].prompt.size() +
                                                                 items[end].tokens.size() <= batch_tokens)) {
            prompt_kept.push_back(detail::pack_continuation(w.cfg, items[end], seq, end));
            ++end;
        }
        (void)forward(w, seq, ws, fo);
        for (std::size_t i = begin; i < end; ++i) {
            const auto b = i - begin;
            const auto first = static_cast<std::size_t>(seq.offsets[b]) + prompt_kept[b] - 1;  // row predicting c_0
            double s = 0.0;
            for (std::size_t k = 0; k < items[i].tokens.size(); ++k) s -= ws.row_loss[first + k];
            out[i] = s;
        }
        begin = end;
    }
    return out;
}

}  // namespace prune::decoder
