// prune/select.hpp: exact-k selection of the lowest-scoring still-unpruned elements
// over many tensors at once (global) or tensor by tensor (layer-wise).
//
// Semantics (those of torch.nn.utils.prune.global_unstructured): the candidates are
// the elements every mask still keeps; `prune_global(scores, masks, amount)` prunes
// exactly k = round(amount * candidates) of them (round half to even, as Python's
// round), the k smallest by (score key, tensor position, flat logical index). Already
// pruned elements are never candidates. NaN scores sort below everything, so they go
// first. The result is bit-identical for any thread count. See docs/selection.md.
//
// How: no score is ever copied into one big vector. Keys (<prune/importance/scores.hpp>)
// are computed on the fly block by block. Pass 1 builds a histogram of the upper 16 key
// bits (threads: one histogram per contiguous slice, merged); that locates the bin that
// holds the k-th key. Pass 2 prunes every candidate below that bin and, when the bin is
// small enough (options.buffer_bytes), collects its (lower key bits, position) pairs, of
// which std::nth_element picks the rest. Otherwise pass 2 histograms the lower 16 bits
// inside the bin, which fixes the exact threshold key T, and pass 3 prunes the
// candidates below T plus the first (k - below) candidates equal to T in (tensor, index)
// order, each thread starting from the number of T-keys in the slices before its own.
// Extra memory: two histograms per thread (768 KiB) plus at most buffer_bytes.
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace prune {

/// Settings of a selection.
struct select_options {
    /// Worker threads (0 = std::thread::hardware_concurrency()); the result never depends on it.
    unsigned threads = 1;
    /// The most memory spent on collecting the elements near the threshold; beyond it more passes are made.
    std::size_t buffer_bytes = std::size_t{8} << 20;
    /// Try the sampled method first (false: histogram passes only; the result is the same).
    bool sampling = true;
    /// Let the sampled method keep one copy of the masks (1 bit per element) so that it can prune
    /// while it counts and undo on a miss: one streaming pass instead of two.
    bool speculate = true;
    /// The sampled method is tried over at most this many scored elements
    /// (mapped_sampling_limit for scores read from a file map).
    std::size_t sampling_limit = std::numeric_limits<std::size_t>::max();
};

/// A sampling_limit for scores read from a checkpoint's file map (io/mapped_scores.hpp): the
/// sampled method reads strided runs all over the scores (file pages that cannot be given back
/// run by run) and keeps a second copy of the masks, so above 2^29 elements (1 GiB of BF16) the
/// histogram passes alone -- one more pass, the same masks -- keep the resident set small.
inline constexpr std::size_t mapped_sampling_limit = std::size_t{1} << 29;

/// Which internal method a selection used (the masks never depend on it).
enum class selection_method {
    trivial,              ///< k = 0 or k = all candidates: no score was read
    sampled,              ///< sample, count-and-collect pass, prune pass
    histogram_collect,    ///< 16-bit histogram pass, prune-and-collect pass
    histogram_three_pass, ///< two 16-bit histogram passes and a prune pass (bounded memory)
};

/// What one selection did.
struct selection_result {
    std::size_t candidates = 0;  ///< elements still kept before the selection
    std::size_t pruned = 0;      ///< elements pruned by it (exactly k)
    selection_method method = selection_method::trivial;  ///< how (for tests and benchmarks)
};

/// k = round(amount * candidates), ties to even (Python's round, as torch); throws value_error
/// when amount is NaN or outside [0, 1].
[[nodiscard]] inline std::size_t count_to_prune(double amount, std::size_t candidates) {
    if (!(amount >= 0.0 && amount <= 1.0)) {
        throw value_error("prune: amount " + number_text(amount) + " is outside [0, 1] (or NaN)");
    }
    const double product = amount * static_cast<double>(candidates);
    const double floor_value = std::floor(product);
    const double fraction = product - floor_value;
    double rounded = floor_value;
    if (fraction > 0.5 || (fraction == 0.5 && std::fmod(floor_value, 2.0) != 0.0)) {
        rounded += 1.0;
    }
    return std::min(static_cast<std::size_t>(rounded), candidates);
}

namespace detail {

/// Elements per work block (a multiple of 64, so that blocks never share a mask word).
inline constexpr std::size_t select_block = std::size_t{1} << 15;
/// Elements whose keys are computed at once (a multiple of 64).
inline constexpr std::size_t select_chunk = 1024;
/// Bins of a 16-bit histogram.
inline constexpr std::size_t select_bins = std::size_t{1} << 16;
/// The largest supported total number of elements (positions are packed into 48 bits).
inline constexpr std::size_t select_max_total = std::size_t{1} << 48;

/// A contiguous run of one tensor's elements; begin is a multiple of 64.
struct select_block_range {
    std::size_t tensor;  ///< tensor position
    std::size_t begin;   ///< first logical index
    std::size_t count;   ///< number of elements
};

/// Runs body(t) for t in [0, threads) (t = 0 on the calling thread); rethrows the first exception.
/// When a thread cannot be started (the system's thread or memory limit), the calling thread
/// runs the slices left over: the result is the same, only slower (a std::thread left joinable
/// during unwinding would abort the process).
template <class Body>
void run_threads(unsigned threads, const Body& body) {
    if (threads <= 1) {
        body(0u);
        return;
    }
    std::vector<std::exception_ptr> errors(threads);
    auto slice = [&](unsigned t) {
        try {
            body(t);
        } catch (...) {
            errors[t] = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    workers.reserve(threads - 1);
    unsigned started = 1;
    try {
        for (; started < threads; ++started) workers.emplace_back(slice, started);
    } catch (const std::system_error&) {
        // no more threads: the slices [started, threads) run below, on this thread
    }
    slice(0u);
    for (unsigned t = started; t < threads; ++t) slice(t);
    for (std::thread& w : workers) {
        w.join();
    }
    for (const std::exception_ptr& e : errors) {
        if (e) {
            std::rethrow_exception(e);
        }
    }
}

/// A 16-bit histogram with 32-bit hot counters flushed into 64-bit totals.
class key_histogram {
public:
    key_histogram() : hot_(select_bins, 0), total_(select_bins, 0) {}
    /// Adds `one` (0 or 1) to bin b.
    void add(std::uint32_t bin, std::uint32_t one) noexcept { hot_[bin] += one; }
    /// Flushes when another `upcoming` additions could overflow the 32-bit counters.
    void reserve(std::size_t upcoming) {
        if (pending_ + upcoming >= (std::size_t{1} << 31)) {
            flush();
        }
        pending_ += upcoming;
    }
    /// Moves the hot counters into the totals.
    void flush() {
        for (std::size_t b = 0; b < select_bins; ++b) {
            total_[b] += hot_[b];
            hot_[b] = 0;
        }
        pending_ = 0;
    }
    /// The totals (call flush() first).
    [[nodiscard]] const std::vector<std::uint64_t>& totals() const noexcept { return total_; }
    /// Raw hot counters (for the inner loop).
    [[nodiscard]] std::uint32_t* hot() noexcept { return hot_.data(); }

private:
    std::vector<std::uint32_t> hot_;
    std::vector<std::uint64_t> total_;
    std::size_t pending_ = 0;
};

/// The selection engine over one set of (scores, masks).
class selector {
public:
    /// A selector over scores[t] / masks[t]; score sources see tensor index first_index + t.
    selector(std::span<const score_source> scores, std::span<element_mask> masks, const select_options& options,
             std::size_t first_index = 0)
        : scores_(scores), masks_(masks), buffer_bytes_(options.buffer_bytes), sampling_(options.sampling),
          speculate_(options.speculate), first_index_(first_index) {
        if (scores.size() != masks.size()) {
            throw shape_error("prune::select: " + std::to_string(scores.size()) + " score sources for " +
                              std::to_string(masks.size()) + " masks (expected one mask per tensor)");
        }
        offsets_.reserve(scores.size() + 1);
        offsets_.push_back(0);
        for (std::size_t t = 0; t < scores.size(); ++t) {
            check_shapes(t);
            const std::size_t n = scores[t].size();
            for (std::size_t b = 0; b < n; b += select_block) {
                blocks_.push_back({t, b, std::min(select_block, n - b)});
            }
            offsets_.push_back(offsets_.back() + n);
        }
        sampling_ = sampling_ && offsets_.back() <= options.sampling_limit;
        if (scores.size() >= (std::size_t{1} << 32)) {
            throw value_error("prune::select: more than 2^32 tensors in one selection");
        }
        if (offsets_.back() > select_max_total) {
            throw value_error("prune::select: " + std::to_string(offsets_.back()) +
                              " elements in one selection (at most 2^48 are supported)");
        }
        unsigned threads = options.threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : options.threads;
        threads_ = static_cast<unsigned>(std::clamp<std::size_t>(blocks_.size(), 1, threads));
    }

    /// The number of elements still kept.
    [[nodiscard]] std::size_t candidates() const noexcept {
        std::size_t n = 0;
        for (const element_mask& m : masks_) {
            n += m.count_kept();
        }
        return n;
    }

    /// Prunes the k smallest candidates; k <= candidates() (checked).
    selection_result prune_smallest(std::size_t k) {
        selection_result result;
        result.candidates = candidates();
        if (k > result.candidates) {
            throw value_error("prune::select: cannot prune " + std::to_string(k) + " elements: only " +
                              std::to_string(result.candidates) + " are still unpruned");
        }
        result.pruned = k;
        if (k == 0) {
            return result;
        }
        if (k == result.candidates) {  // everything still kept goes
            for (element_mask& m : masks_) {
                std::span<std::uint64_t> words = m.words_mutable();
                std::fill(words.begin(), words.end(), std::uint64_t{0});
            }
            return result;
        }
        if (sampling_ && sampled_path(k, result.candidates)) {
            result.method = selection_method::sampled;
            return result;
        }
        result.method = selection_method::histogram_collect;
        // pass 1: histogram of the upper 16 bits, one per thread slice
        std::vector<key_histogram> upper(threads_);
        run_threads(threads_, [&](unsigned t) { histogram_pass(t, upper[t], false, 0); });
        std::vector<std::uint64_t> merged(select_bins, 0);
        for (const key_histogram& h : upper) {
            for (std::size_t b = 0; b < select_bins; ++b) {
                merged[b] += h.totals()[b];
            }
        }
        const auto [located_bin, below] = locate(merged, k);
        const auto bin = located_bin;  // a plain variable: clang 14 cannot capture a structured binding
        const std::uint64_t in_bin = merged[bin];
        const std::uint64_t needed = k - below;  // taken from the bin, >= 1
        if (needed == in_bin) {  // the whole bin goes
            run_threads(threads_, [&](unsigned t) { prune_below_pass(t, static_cast<std::uint32_t>(bin) + 1); });
            return result;
        }
        if (in_bin * sizeof(std::uint64_t) <= buffer_bytes_) {
            collect_path(upper, static_cast<std::uint32_t>(bin), needed);
        } else {
            result.method = selection_method::histogram_three_pass;
            three_pass_path(static_cast<std::uint32_t>(bin), needed);
        }
        return result;
    }

private:
    void check_shapes(std::size_t t) const {
        const score_source& s = scores_[t];
        const element_mask& m = masks_[t];
        const bool sizes_differ = s.size() != m.size();
        const bool shapes_differ = s.extents().rank() > 1 && m.extents().rank() > 1 && !(s.extents() == m.extents());
        if (sizes_differ || shapes_differ) {
            throw shape_error("prune::select: tensor " + label(t) + " has shape " + s.extents().to_string() +
                              " but its mask has shape " + m.extents().to_string());
        }
    }

    [[nodiscard]] std::string label(std::size_t t) const {
        std::string text;  // built by appending (GCC 12 warns falsely on "literal" + std::string&&)
        if (scores_[t].name().empty()) {
            text.append("#").append(std::to_string(first_index_ + t));
        } else {
            text.append("'").append(scores_[t].name()).append("'");
        }
        return text;
    }

    /// The thread's slice of blocks.
    [[nodiscard]] std::pair<std::size_t, std::size_t> slice(unsigned t) const noexcept {
        const std::size_t n = blocks_.size();
        return {n * t / threads_, n * (t + 1) / threads_};
    }

    /// The bin holding the k-th smallest key and the count below it.
    static std::pair<std::size_t, std::uint64_t> locate(const std::vector<std::uint64_t>& histogram, std::uint64_t k) {
        std::uint64_t below = 0;
        for (std::size_t b = 0; b < histogram.size(); ++b) {
            if (below + histogram[b] >= k) {
                return {b, below};
            }
            below += histogram[b];
        }
        PRUNE_ASSERT(false);
        return {0, 0};
    }

    /// Calls visit(tensor, first_index, keys, words) for each chunk of the thread's slice.
    template <class Visit>
    void for_each_chunk(unsigned t, const Visit& visit) {
        std::array<std::uint32_t, select_chunk> keys;
        const auto [first, last] = slice(t);
        for (std::size_t b = first; b < last; ++b) {
            const select_block_range& block = blocks_[b];
            std::span<std::uint64_t> words = masks_[block.tensor].words_mutable();
            for (std::size_t offset = 0; offset < block.count; offset += select_chunk) {
                const std::size_t begin = block.begin + offset;
                const std::size_t n = std::min(select_chunk, block.count - offset);
                std::span<std::uint64_t> chunk_words = words.subspan(begin / 64, (n + 63) / 64);
                bool any = false;
                for (std::uint64_t w : chunk_words) {
                    any = any || w != 0;
                }
                if (!any) {
                    continue;  // everything here is already pruned
                }
                scores_[block.tensor].fill_keys(first_index_ + block.tensor, begin, std::span<std::uint32_t>(keys.data(), n));
                visit(block.tensor, begin, std::span<const std::uint32_t>(keys.data(), n), chunk_words);
            }
        }
    }

    /// Histogram of candidate keys: the upper 16 bits (restrict = false), or the lower 16 bits of the
    /// candidates whose upper 16 bits equal `bin` (restrict = true).
    void histogram_pass(unsigned t, key_histogram& histogram, bool restrict_to_bin, std::uint32_t bin) {
        std::uint32_t* hot = histogram.hot();
        for_each_chunk(t, [&](std::size_t, std::size_t, std::span<const std::uint32_t> keys,
                              std::span<std::uint64_t> words) {
            histogram.reserve(keys.size());
            const std::size_t n = keys.size();
            for (std::size_t w = 0; w < words.size(); ++w) {
                const std::uint64_t word = words[w];
                if (word == 0) {
                    continue;
                }
                const std::uint32_t* k = keys.data() + w * 64;
                const std::size_t m = std::min<std::size_t>(64, n - w * 64);
                if (!restrict_to_bin) {
                    for (std::size_t j = 0; j < m; ++j) {
                        hot[k[j] >> 16] += static_cast<std::uint32_t>((word >> j) & 1u);
                    }
                } else {
                    for (std::size_t j = 0; j < m; ++j) {
                        if ((k[j] >> 16) == bin) {
                            hot[k[j] & 0xFFFFu] += static_cast<std::uint32_t>((word >> j) & 1u);
                        }
                    }
                }
            }
        });
        histogram.flush();
    }

    /// Over the thread's slice, clears the mask bits that go(key, word, j) picks among the live
    /// ones (go is asked for every position j < 64 of a live word; a dead word is skipped).
    template <class Go>
    void clear_live_bits(unsigned t, Go&& go) {
        for_each_chunk(t, [&](std::size_t, std::size_t, std::span<const std::uint32_t> keys,
                              std::span<std::uint64_t> words) {
            for (std::size_t w = 0; w < words.size(); ++w) {
                const std::uint64_t word = words[w];
                if (word == 0) {
                    continue;
                }
                const std::uint32_t* k = keys.data() + w * 64;
                const std::size_t m = std::min<std::size_t>(64, keys.size() - w * 64);
                std::uint64_t prune = 0;
                for (std::size_t j = 0; j < m; ++j) {
                    prune |= static_cast<std::uint64_t>(go(k[j], word, j)) << j;
                }
                words[w] = word & ~prune;
            }
        });
    }

    /// Prunes every candidate whose upper 16 key bits are below `limit`.
    void prune_below_pass(unsigned t, std::uint32_t limit) {
        clear_live_bits(t, [limit](std::uint32_t key, std::uint64_t, std::size_t) { return (key >> 16) < limit; });
    }

    /// An element's (key, tensor, index); ordered as the tie rule orders elements.
    struct keyed_position {
        std::uint32_t key;     ///< the score key
        std::uint32_t tensor;  ///< the tensor's position
        std::uint64_t index;   ///< the logical index in the tensor
        friend bool operator<(const keyed_position& a, const keyed_position& b) noexcept {
            if (a.key != b.key) {
                return a.key < b.key;
            }
            return a.tensor != b.tensor ? a.tensor < b.tensor : a.index < b.index;
        }
    };

    /// The sampled method: a strided sample of candidate keys brackets the k-th key in a window
    /// [low, high]; pass A counts the candidates below `low` and collects those inside the window;
    /// when the window holds the k-th key (checked exactly) and fits the buffer, pass B prunes
    /// everything below `low` and the window's (k - below) smallest go by nth_element. Returns false
    /// (having changed nothing) when the window missed or overflowed.
    bool sampled_path(std::uint64_t k, std::uint64_t candidates) {
        // the sample: runs of `run` consecutive elements every `stride` elements (cache- and TLB-friendly)
        const std::size_t total = offsets_.back();
        constexpr std::size_t sample_target = std::size_t{1} << 19;
        constexpr std::size_t run = 32;
        const std::size_t stride = std::max<std::size_t>(run, total / (sample_target / run) / run * run);
        const std::size_t runs = (total + stride - 1) / stride;
        std::vector<std::uint32_t> sample(runs * run, ~std::uint32_t{0});
        const unsigned sample_threads = runs < 256 ? 1u : threads_;
        run_threads(sample_threads, [&](unsigned t) {
            const std::size_t first = runs * t / sample_threads;
            const std::size_t last = runs * (t + 1) / sample_threads;
            std::size_t tensor = 0;
            for (std::size_t r = first; r < last; ++r) {
                const std::size_t position = r * stride;
                while (offsets_[tensor + 1] <= position) {
                    ++tensor;
                }
                const std::size_t index = position - offsets_[tensor];
                const std::size_t n = std::min(run, scores_[tensor].size() - index);  // stays inside the tensor
                std::uint32_t* keys = sample.data() + r * run;
                scores_[tensor].fill_keys(first_index_ + tensor, index, std::span<std::uint32_t>(keys, n));
                for (std::size_t j = 0; j < n; ++j) {
                    keys[j] = masks_[tensor].kept(index + j) ? std::min(keys[j], ~std::uint32_t{0} - 1)
                                                             : ~std::uint32_t{0};  // ~0 = not a candidate
                }
                for (std::size_t j = n; j < run; ++j) {
                    keys[j] = ~std::uint32_t{0};
                }
            }
        });
        const auto sampled_end = std::partition(sample.begin(), sample.end(),
                                                [](std::uint32_t key) { return key != ~std::uint32_t{0}; });
        const std::size_t count = static_cast<std::size_t>(sampled_end - sample.begin());
        if (count < 64) {
            return false;
        }
        const double q = static_cast<double>(k) / static_cast<double>(candidates);
        const double spread = 5.0 * std::sqrt(static_cast<double>(count) * q * (1.0 - q)) + 2.0;
        const double centre = q * static_cast<double>(count);
        const auto rank = [&](double r) {
            return static_cast<std::size_t>(std::clamp(r, 0.0, static_cast<double>(count - 1)));
        };
        const std::size_t rank_low = rank(centre - spread);
        const std::size_t rank_high = rank(centre + spread);
        std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(rank_low), sampled_end);
        std::uint32_t low = sample[rank_low];
        std::nth_element(sample.begin() + static_cast<std::ptrdiff_t>(rank_low),
                         sample.begin() + static_cast<std::ptrdiff_t>(rank_high), sampled_end);
        std::uint32_t high = sample[rank_high];
        if (rank_low == 0) {
            low = 0;  // nothing is below the window
        }
        if (rank_high == count - 1) {
            high = ~std::uint32_t{0} - 1;
        }
        std::vector<std::uint32_t>().swap(sample);
        const std::uint32_t width = high - low;

        // speculation: keep a copy of the masks, prune below the window already in pass A
        std::vector<std::uint64_t> backup;
        if (speculate_) {
            std::size_t words = 0;
            for (const element_mask& m : masks_) {
                words += m.words().size();
            }
            backup.reserve(words);
            for (const element_mask& m : masks_) {
                backup.insert(backup.end(), m.words().begin(), m.words().end());
            }
        }
        const bool prune_now = speculate_;

        // pass A: count below the window, collect inside it (and, speculating, prune below it)
        const std::size_t capacity = std::min<std::size_t>(buffer_bytes_ / sizeof(keyed_position), candidates);
        std::unique_ptr<keyed_position[]> window(new keyed_position[capacity]);  // pages touched only when used
        std::atomic<std::size_t> used{0};
        std::atomic<bool> overflow{false};
        std::vector<std::uint64_t> below(threads_, 0);
        run_threads(threads_, [&](unsigned t) {
            constexpr std::size_t stage_size = 256;
            std::array<keyed_position, stage_size> stage;
            std::size_t staged = 0;
            auto flush = [&] {
                const std::size_t at = used.fetch_add(staged);
                if (at + staged > capacity) {
                    overflow.store(true);
                } else {
                    std::copy(stage.begin(), stage.begin() + static_cast<std::ptrdiff_t>(staged), window.get() + at);
                }
                staged = 0;
            };
            std::uint64_t count_below = 0;
            for_each_chunk(t, [&](std::size_t tensor, std::size_t begin, std::span<const std::uint32_t> chunk_keys,
                                  std::span<std::uint64_t> words) {
                if (overflow.load(std::memory_order_relaxed)) {
                    return;
                }
                const std::uint32_t* keys = chunk_keys.data();
                for (std::size_t w = 0; w < words.size(); ++w) {
                    const std::uint64_t word = words[w];
                    if (word == 0) {
                        continue;
                    }
                    const std::uint32_t* word_keys = keys + w * 64;
                    const std::size_t m = std::min<std::size_t>(64, chunk_keys.size() - w * 64);
                    const std::uint64_t prune = less_bits(word_keys, m, low) & word;
                    count_below += static_cast<std::uint64_t>(std::popcount(prune));
                    if (prune_now) {
                        words[w] = word & ~prune;
                    }
                    std::uint64_t inside = within_bits(word_keys, m, low, width) & word;
                    while (inside != 0) {
                        const int j = std::countr_zero(inside);
                        inside &= inside - 1;
                        stage[staged++] = {word_keys[j], static_cast<std::uint32_t>(tensor), begin + w * 64 + static_cast<std::size_t>(j)};
                        if (staged == stage_size) {
                            flush();
                        }
                    }
                }
            });
            if (staged > 0) {
                flush();
            }
            below[t] = count_below;
        });
        std::uint64_t below_total = 0;
        for (std::uint64_t b : below) {
            below_total += b;
        }
        const std::size_t in_window = used.load();
        if (overflow.load() || in_window > capacity || below_total > k || k > below_total + in_window) {
            if (prune_now) {  // undo
                const std::uint64_t* from = backup.data();
                for (element_mask& m : masks_) {
                    std::span<std::uint64_t> words = m.words_mutable();
                    std::copy(from, from + words.size(), words.begin());
                    from += words.size();
                }
            }
            return false;  // the masks are as they were
        }
        std::vector<std::uint64_t>().swap(backup);
        const std::uint64_t needed = k - below_total;

        // pass B: prune everything below the window, then the window's smallest
        if (below_total > 0 && !prune_now) {
            run_threads(threads_, [&](unsigned t) {
                for_each_chunk(t, [&](std::size_t, std::size_t, std::span<const std::uint32_t> keys,
                                      std::span<std::uint64_t> words) {
                    for (std::size_t w = 0; w < words.size(); ++w) {
                        if (words[w] != 0) {
                            const std::size_t m = std::min<std::size_t>(64, keys.size() - w * 64);
                            words[w] &= ~less_bits(keys.data() + w * 64, m, low);
                        }
                    }
                });
            });
        }
        if (needed > 0) {
            keyed_position* nth = window.get() + (needed - 1);
            std::nth_element(window.get(), nth, window.get() + in_window);
            for (keyed_position* it = window.get(); it != nth + 1; ++it) {
                masks_[it->tensor].set(it->index, false);
            }
        }
        return true;
    }

    /// Bit j set when low <= keys[j] <= low + width (m <= 64).
    static std::uint64_t within_bits(const std::uint32_t* __restrict keys, std::size_t m, std::uint32_t low,
                                     std::uint32_t width) noexcept {
        if (m == 64) {
            std::uint32_t low_half = 0;
            std::uint32_t high_half = 0;
            for (std::uint32_t j = 0; j < 32; ++j) {
                low_half |= static_cast<std::uint32_t>(keys[j] - low <= width) << j;
            }
            for (std::uint32_t j = 0; j < 32; ++j) {
                high_half |= static_cast<std::uint32_t>(keys[32 + j] - low <= width) << j;
            }
            return low_half | (static_cast<std::uint64_t>(high_half) << 32);
        }
        std::uint64_t bits = 0;
        for (std::size_t j = 0; j < m; ++j) {
            bits |= static_cast<std::uint64_t>(keys[j] - low <= width) << j;
        }
        return bits;
    }

    /// Bit j set when keys[j] < limit (m <= 64).
    static std::uint64_t less_bits(const std::uint32_t* __restrict keys, std::size_t m, std::uint32_t limit) noexcept {
        if (m == 64) {
            std::uint32_t low_half = 0;
            std::uint32_t high_half = 0;
            for (std::uint32_t j = 0; j < 32; ++j) {
                low_half |= static_cast<std::uint32_t>(keys[j] < limit) << j;
            }
            for (std::uint32_t j = 0; j < 32; ++j) {
                high_half |= static_cast<std::uint32_t>(keys[32 + j] < limit) << j;
            }
            return low_half | (static_cast<std::uint64_t>(high_half) << 32);
        }
        std::uint64_t bits = 0;
        for (std::size_t j = 0; j < m; ++j) {
            bits |= static_cast<std::uint64_t>(keys[j] < limit) << j;
        }
        return bits;
    }

    /// Fast path: prune below the bin, collect the bin's candidates, nth_element, scatter.
    void collect_path(const std::vector<key_histogram>& upper, std::uint32_t bin, std::uint64_t needed) {
        std::vector<std::size_t> start(threads_ + 1, 0);
        for (unsigned t = 0; t < threads_; ++t) {
            start[t + 1] = start[t] + upper[t].totals()[bin];
        }
        std::vector<std::uint64_t> entries(start.back());
        run_threads(threads_, [&](unsigned t) {
            std::uint64_t* out = entries.data() + start[t];
            for_each_chunk(t, [&](std::size_t tensor, std::size_t begin, std::span<const std::uint32_t> keys,
                                  std::span<std::uint64_t> words) {
                const std::uint64_t base = offsets_[tensor] + begin;
                for (std::size_t w = 0; w < words.size(); ++w) {
                    const std::uint64_t word = words[w];
                    if (word == 0) {
                        continue;
                    }
                    const std::uint32_t* k = keys.data() + w * 64;
                    const std::size_t m = std::min<std::size_t>(64, keys.size() - w * 64);
                    std::uint64_t prune = 0;
                    for (std::size_t j = 0; j < m; ++j) {
                        const std::uint32_t high = k[j] >> 16;
                        prune |= static_cast<std::uint64_t>(high < bin) << j;
                        if (high == bin && ((word >> j) & 1u)) {
                            *out++ = (static_cast<std::uint64_t>(k[j] & 0xFFFFu) << 48) | (base + w * 64 + j);
                        }
                    }
                    words[w] = word & ~prune;
                }
            });
            PRUNE_ASSERT(out == entries.data() + start[t + 1]);
        });
        // (lower key bits, global position) orders exactly as (key, tensor, index) within the bin
        const auto nth = entries.begin() + static_cast<std::ptrdiff_t>(needed - 1);
        std::nth_element(entries.begin(), nth, entries.end());
        constexpr std::uint64_t position_mask = (std::uint64_t{1} << 48) - 1;
        for (auto it = entries.begin(); it != nth + 1; ++it) {
            const std::uint64_t position = *it & position_mask;
            const std::size_t tensor =
                static_cast<std::size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), position) -
                                         offsets_.begin()) - 1;
            masks_[tensor].set(position - offsets_[tensor], false);
        }
    }

    /// Bounded-memory path: histogram of the lower bits inside the bin, then prune by quota.
    void three_pass_path(std::uint32_t bin, std::uint64_t needed) {
        std::vector<key_histogram> lower(threads_);
        run_threads(threads_, [&](unsigned t) { histogram_pass(t, lower[t], true, bin); });
        std::vector<std::uint64_t> merged(select_bins, 0);
        for (const key_histogram& h : lower) {
            for (std::size_t b = 0; b < select_bins; ++b) {
                merged[b] += h.totals()[b];
            }
        }
        const auto [low, below] = locate(merged, needed);
        const std::uint64_t equal_needed = needed - below;
        const std::uint32_t threshold = (bin << 16) | static_cast<std::uint32_t>(low);
        // quota of threshold-equal keys per thread: the first equal_needed in slice order
        std::vector<std::uint64_t> quota(threads_, 0);
        std::uint64_t before = 0;
        for (unsigned t = 0; t < threads_; ++t) {
            const std::uint64_t here = lower[t].totals()[low];
            quota[t] = before >= equal_needed ? 0 : std::min(here, equal_needed - before);
            before += here;
        }
        run_threads(threads_, [&](unsigned t) {
            std::uint64_t left = quota[t];
            clear_live_bits(t, [&](std::uint32_t key, std::uint64_t word, std::size_t j) {
                bool go = (key >> 16) < bin || ((key >> 16) == bin && key < threshold);
                if (key == threshold && left > 0 && ((word >> j) & 1u)) {
                    go = true;
                    --left;
                }
                return go;
            });
            PRUNE_ASSERT(left == 0);
        });
    }

    std::span<const score_source> scores_;
    std::span<element_mask> masks_;
    std::size_t buffer_bytes_;
    bool sampling_;
    bool speculate_;
    std::size_t first_index_;
    std::vector<std::size_t> offsets_;
    std::vector<select_block_range> blocks_;
    unsigned threads_ = 1;
};

}  // namespace detail

/// Prunes exactly k of the still-kept elements: the k smallest by (score key, tensor position,
/// flat logical index). Throws value_error when k exceeds the candidates, shape_error when a mask
/// does not fit its scores.
inline selection_result prune_smallest(std::span<const score_source> scores, std::span<element_mask> masks,
                                       std::size_t k, const select_options& options = {}) {
    detail::selector selector(scores, masks, options);
    return selector.prune_smallest(k);
}

/// Global selection: prunes round(amount * candidates) of the still-kept elements of all tensors
/// together (torch's global_unstructured). Throws value_error for amount outside [0, 1] or NaN.
inline selection_result prune_global(std::span<const score_source> scores, std::span<element_mask> masks,
                                     double amount, const select_options& options = {}) {
    detail::selector selector(scores, masks, options);
    const std::size_t k = count_to_prune(amount, selector.candidates());
    return selector.prune_smallest(k);
}

/// Global selection to a target: prunes until round(sparsity * total elements) are pruned in all.
/// Throws value_error for sparsity outside [0, 1] or NaN, or below the current sparsity.
inline selection_result prune_global_to_sparsity(std::span<const score_source> scores, std::span<element_mask> masks,
                                                 double sparsity, const select_options& options = {}) {
    detail::selector selector(scores, masks, options);
    std::size_t total = 0;
    for (const element_mask& m : masks) {
        total += m.size();
    }
    const std::size_t target = count_to_prune(sparsity, total);
    const std::size_t kept = selector.candidates();
    const std::size_t already = total - kept;
    if (target < already) {
        throw value_error("prune_global_to_sparsity: target sparsity " + number_text(sparsity) + " (" +
                          std::to_string(target) + " of " + std::to_string(total) + " pruned) is below the " +
                          std::to_string(already) + " already pruned");
    }
    return selector.prune_smallest(target - already);
}

/// Layer-wise selection: prunes round(amount * candidates of tensor t) in every tensor t separately.
inline std::vector<selection_result> prune_per_tensor(std::span<const score_source> scores,
                                                      std::span<element_mask> masks, double amount,
                                                      const select_options& options = {}) {
    if (scores.size() != masks.size()) {
        throw shape_error("prune_per_tensor: " + std::to_string(scores.size()) + " score sources for " +
                          std::to_string(masks.size()) + " masks (expected one mask per tensor)");
    }
    if (!(amount >= 0.0 && amount <= 1.0)) {
        throw value_error("prune_per_tensor: amount " + number_text(amount) + " is outside [0, 1] (or NaN)");
    }
    // one selector per tensor; the tensor keeps its position, so random scores are those of a global selection
    std::vector<selection_result> results;
    results.reserve(scores.size());
    for (std::size_t t = 0; t < scores.size(); ++t) {
        detail::selector selector(scores.subspan(t, 1), masks.subspan(t, 1), options, t);
        results.push_back(selector.prune_smallest(count_to_prune(amount, selector.candidates())));
    }
    return results;
}

}  // namespace prune
