// prune/models/bert/batch.hpp: a batch of sequences packed without padding, the input of the
// forward pass, and length bucketing for whole data sets.
//
// Only tokens whose attention_mask is 1 are stored; each keeps its original position,
// so attention over the packed tokens of a sequence gives exactly what Hugging Face
// computes with an additive padding mask (whose masked keys get probability 0) for every
// unmasked token. Sequence b occupies rows [offsets[b], offsets[b+1]); its first token is
// the one the classifier reads ([CLS]).
#pragma once

#include <prune/models/bert/config.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace prune::bert {

/// Sequences of different lengths packed back to back (no padding).
struct packed_batch {
    std::vector<std::int32_t> token_ids;    ///< per packed token
    std::vector<std::int32_t> token_types;  ///< per packed token
    std::vector<std::int32_t> positions;    ///< per packed token: its index in the original row
    std::vector<std::int64_t> offsets{0};   ///< sequence b = rows [offsets[b], offsets[b+1])

    /// Number of sequences.
    [[nodiscard]] int sequences() const { return static_cast<int>(offsets.size()) - 1; }
    /// Number of packed tokens.
    [[nodiscard]] std::int64_t tokens() const { return offsets.back(); }
    /// Tokens in sequence b.
    [[nodiscard]] int length(int b) const {
        return static_cast<int>(offsets[static_cast<std::size_t>(b) + 1] - offsets[static_cast<std::size_t>(b)]);
    }
    /// Length of the longest sequence.
    [[nodiscard]] int max_length() const {
        int m = 0;
        for (int b = 0; b < sequences(); ++b) {
            m = std::max(m, length(b));
        }
        return m;
    }
    /// Empties the batch (keeping capacity).
    void clear() {
        token_ids.clear();
        token_types.clear();
        positions.clear();
        offsets.assign(1, 0);
    }

    /// Appends one row. token_types and attention_mask may be empty (all 0 / all 1);
    /// otherwise they must have the row's length. Masked tokens are dropped (anywhere but at
    /// position 0, the classifier's token); a row must keep at least one token. Throws
    /// value_error naming `where` otherwise.
    void add(std::span<const std::int32_t> ids, std::span<const std::int32_t> types = {},
             std::span<const std::int32_t> attention_mask = {}, const std::string& where = "sequence") {
        if (ids.empty()) {
            throw value_error(where + ": empty input_ids");
        }
        if (!types.empty() && types.size() != ids.size()) {
            throw value_error(where + ": token_type_ids has " + std::to_string(types.size()) +
                              " entries, input_ids " + std::to_string(ids.size()));
        }
        if (!attention_mask.empty() && attention_mask.size() != ids.size()) {
            throw value_error(where + ": attention_mask has " + std::to_string(attention_mask.size()) +
                              " entries, input_ids " + std::to_string(ids.size()));
        }
        if (!attention_mask.empty() && attention_mask[0] == 0) {
            throw value_error(where + ": attention_mask is 0 at position 0, the token the classifier reads (expected 1: "
                                      "Hugging Face still computes a masked first token, prune drops it)");
        }
        std::int64_t kept = 0;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            const std::int32_t m = attention_mask.empty() ? 1 : attention_mask[i];
            if (m != 0 && m != 1) {
                throw value_error(where + ": attention_mask holds " + std::to_string(m) + " (expected 0 or 1)");
            }
            if (m == 0) {
                continue;
            }
            token_ids.push_back(ids[i]);
            token_types.push_back(types.empty() ? 0 : types[i]);
            positions.push_back(static_cast<std::int32_t>(i));
            ++kept;
        }
        offsets.push_back(offsets.back() + kept);
    }

    /// Throws value_error when a token id, type or position is outside what `cfg` allows.
    void validate(const config& cfg) const {
        for (int b = 0; b < sequences(); ++b) {
            for (std::int64_t i = offsets[static_cast<std::size_t>(b)]; i < offsets[static_cast<std::size_t>(b) + 1];
                 ++i) {
                const auto t = static_cast<std::size_t>(i);
                if (token_ids[t] < 0 || token_ids[t] >= cfg.vocab_size) {
                    throw value_error("sequence " + std::to_string(b) + ": token id " + std::to_string(token_ids[t]) +
                                      " outside the vocabulary [0, " + std::to_string(cfg.vocab_size) + ")");
                }
                if (token_types[t] < 0 || token_types[t] >= cfg.type_vocab_size) {
                    throw value_error("sequence " + std::to_string(b) + ": token type " +
                                      std::to_string(token_types[t]) + " outside [0, " +
                                      std::to_string(cfg.type_vocab_size) + ")");
                }
                if (positions[t] >= cfg.max_position_embeddings) {
                    throw value_error("sequence " + std::to_string(b) + ": length " +
                                      std::to_string(positions[t] + 1) + " exceeds max_position_embeddings " +
                                      std::to_string(cfg.max_position_embeddings));
                }
            }
        }
    }
};

/// Batches of at most `batch_size` example indices, examples sorted by length (stable, so
/// deterministic) so that similar lengths share a batch; each batch lists original indices.
[[nodiscard]] inline std::vector<std::vector<std::size_t>> length_buckets(std::span<const std::size_t> lengths,
                                                                          std::size_t batch_size) {
    if (batch_size == 0) {
        throw value_error("length_buckets: batch_size must be > 0");
    }
    std::vector<std::size_t> order(lengths.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return lengths[a] < lengths[b]; });
    std::vector<std::vector<std::size_t>> batches;
    for (std::size_t i = 0; i < order.size(); i += batch_size) {
        batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                             order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + batch_size)));
    }
    return batches;
}

}  // namespace prune::bert
