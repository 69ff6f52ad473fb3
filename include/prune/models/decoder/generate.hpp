// prune/models/decoder/generate.hpp: incremental decoding of one sequence with a KV cache, and
// text generation (greedy or sampled) on it.
//
//   make_kv_cache(w, n)     room for n positions (at most max_position_embeddings)
//   decode(w, ids, cache)   runs the new tokens `ids` at positions cache.length.. : every
//                           layer appends their rotated keys and values to its cache and
//                           attends to the cached rows (forward.hpp's layer, attention
//                           against the cache); their logits [n, vocab] are left in
//                           ws.logits(). A prompt is one call (prefill), then one token a call.
//   generate(w, prompt, o)  prefill, then pick a token from the last row's logits (argmax at
//                           temperature 0, first index on ties; else a draw from
//                           softmax(logits / temperature)), feed it, repeat: max_tokens
//                           tokens, fewer at the end-of-sequence id or when the positions
//                           run out.
//
// decode gives the logits forward() gives for the same rows of the whole sequence, to
// rounding (tests/decoder/test_generate.cpp: 1e-5). Sampling is portable: u = 53 random bits
// of std::mt19937_64(seed) per token, the first index whose cumulative probability exceeds
// u * total (no std::*_distribution, whose algorithms are the library's choice).
#pragma once

#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/weights.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace prune::decoder {

/// An empty cache with room for `capacity` positions (value_error outside 1..max_position_embeddings).
[[nodiscard]] inline kv_cache make_kv_cache(const weights& w, int capacity) {
    if (capacity < 1 || capacity > w.cfg.max_position_embeddings) {
        throw value_error("make_kv_cache: capacity " + std::to_string(capacity) + " (expected 1.." +
                          std::to_string(w.cfg.max_position_embeddings) + ", max_position_embeddings)");
    }
    kv_cache c;
    c.capacity = capacity;
    for (const auto& L : w.layers) {
        const auto n = static_cast<std::size_t>(capacity) * static_cast<std::size_t>(L.kv_heads) * static_cast<std::size_t>(L.head_dim);
        c.keys.emplace_back(n, 0.0f);
        c.values.emplace_back(n, 0.0f);
    }
    return c;
}

/// Runs the tokens `ids` at positions cache.length.. of the cached sequence (see the header
/// comment); their logits [ids.size(), vocab] are in ws.logits() afterwards. value_error when
/// ids is empty, holds a token outside the vocabulary or does not fit in the cache.
inline void decode(const weights& w, std::span<const std::int32_t> ids, kv_cache& cache, workspace& ws, const gates* g = nullptr) {
    sequences seq;
    seq.add(ids);
    sequences::check(ids, w.cfg, "decode: the new tokens");
    if (cache.keys.size() != w.layers.size()) throw shape_error("decode: the cache was not made for this model (make_kv_cache)");
    if (static_cast<std::size_t>(cache.length) + ids.size() > static_cast<std::size_t>(cache.capacity)) {
        throw value_error("decode: " + std::to_string(ids.size()) + " new tokens after " + std::to_string(cache.length) +
                          " do not fit in a cache of " + std::to_string(cache.capacity) + " positions");
    }
    if (g != nullptr) g->check(w);
    const detail::pass p{ws.pool_, w.cfg, seq, seq.total(), w.cfg.hidden_size};
    const auto T = static_cast<std::size_t>(p.T), H = static_cast<std::size_t>(p.H);
    ws.positions.resize(T);
    ws.targets.assign(T, -1);
    for (std::size_t r = 0; r < T; ++r) ws.positions[r] = cache.length + static_cast<int>(r);
    detail::ensure_rope(w.cfg, ws, cache.length + static_cast<int>(T));
    float* h = detail::grow(ws.h, T * H);
    detail::embed(p, w, ws, h);
    const detail::cached_step step{&cache, cache.length};
    for (std::size_t l = 0; l < w.layers.size(); ++l) detail::layer_forward(p, w.layers[l], l, g, h, ws, nullptr, &step);
    float* xf = detail::grow(ws.x, T * H);
    detail::norm(p, w.final_norm, w.final_norm_bias, h, xf, detail::grow(ws.xhat, T * H), detail::grow(ws.rstd, T));
    detail::logits_and_loss(p, w, xf, ws, true);
    cache.length += static_cast<int>(T);
}

/// How generate() picks and stops.
struct generation_options {
    std::size_t max_tokens = 32;          ///< tokens to generate at most
    double temperature = 0.0;             ///< 0: greedy (argmax); > 0: sample from softmax(logits / temperature)
    std::uint64_t seed = 0;               ///< the sampling stream
    std::optional<std::int32_t> eos;      ///< stop after generating this id
    const gates* gate = nullptr;          ///< gates of a (structurally) pruned model
};

/// The index of the largest logit (the first on ties).
[[nodiscard]] inline std::int32_t argmax(std::span<const float> logits) {
    return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

/// A draw from softmax(logits / temperature) with 53 random bits of `rng` (portable).
[[nodiscard]] inline std::int32_t sample(std::span<const float> logits, double temperature, std::mt19937_64& rng) {
    const double top = static_cast<double>(*std::max_element(logits.begin(), logits.end()));
    std::vector<double> weight(logits.size());
    double total = 0.0;
    for (std::size_t i = 0; i < logits.size(); ++i) total += weight[i] = std::exp((static_cast<double>(logits[i]) - top) / temperature);
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
    double sum = 0.0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
        sum += weight[i];
        if (u < sum) return static_cast<std::int32_t>(i);
    }
    return argmax(logits);  // u rounded up to the total
}

/// Generates after `prompt` (see the header comment); `on_token(id, logits)` gets each
/// generated id and the logits row it was picked from. Returns the generated ids. value_error
/// for an empty prompt, one that fills max_position_embeddings, or a bad temperature.
inline std::vector<std::int32_t> generate(const weights& w, std::span<const std::int32_t> prompt, const generation_options& o,
                                          workspace& ws,
                                          const std::function<void(std::int32_t, std::span<const float>)>& on_token = {}) {
    const auto max_positions = static_cast<std::size_t>(w.cfg.max_position_embeddings);
    if (prompt.empty()) throw value_error("generate: the prompt has no tokens (expected >= 1)");
    if (prompt.size() >= max_positions) {
        throw value_error("generate: the prompt has " + std::to_string(prompt.size()) + " tokens, no room to generate within " +
                          "max_position_embeddings " + std::to_string(max_positions));
    }
    if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature))
        throw value_error("generate: temperature " + number_text(o.temperature) + " (expected a finite number >= 0)");
    std::vector<std::int32_t> out;
    if (o.max_tokens == 0) return out;
    // The last generated token is never fed: positions for the prompt and max_tokens - 1 more.
    kv_cache cache = make_kv_cache(w, static_cast<int>(std::min(max_positions, prompt.size() + o.max_tokens - 1)));
    std::mt19937_64 rng(o.seed);
    decode(w, prompt, cache, ws, o.gate);
    const auto V = static_cast<std::size_t>(w.cfg.vocab_size);
    while (true) {
        const std::span<const float> last = ws.logits().subspan(ws.logits().size() - V, V);
        const std::int32_t id = o.temperature == 0.0 ? argmax(last) : sample(last, o.temperature, rng);
        out.push_back(id);
        if (on_token) on_token(id, last);
        if (out.size() == o.max_tokens || (o.eos && id == *o.eos) || cache.length == cache.capacity) return out;
        decode(w, std::span<const std::int32_t>(&id, 1), cache, ws, o.gate);
    }
}

}  // namespace prune::decoder
