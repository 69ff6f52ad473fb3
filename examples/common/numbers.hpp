// examples/common/numbers.hpp: numbers from the command line and numbers a binary is about to
// report or write are finite. check_flag refuses a floating-point flag that is NaN, infinite
// or outside its range, with the one message form every binary uses:
//   "--warmup nan (expected a finite number in [0, 1])"
// refuse_non_finite_logits / _scores / _weights name the first NaN or infinity in values about
// to be reported or written (logits, importance scores, trained weights) instead of passing a
// NaN off as a result. unsigned_integer and threads_flag are CLI11 checks for integer flags.
#pragma once

#include <prune/error.hpp>

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace prune_cli {

/// An interval of allowed values; an infinite bound means "no bound on that side".
struct interval {
    double low = -INFINITY;
    double high = INFINITY;
    bool low_open = false;   ///< low itself excluded
    bool high_open = false;  ///< high itself excluded

    [[nodiscard]] bool contains(double v) const {
        return (low_open ? v > low : v >= low) && (high_open ? v < high : v <= high);
    }
    /// "> 0", ">= 0", "in [0, 1)".
    [[nodiscard]] std::string text() const {
        if (std::isinf(high)) return std::string(low_open ? "> " : ">= ") + prune::number_text(low);
        if (std::isinf(low)) return std::string(high_open ? "< " : "<= ") + prune::number_text(high);
        return std::string("in ") + (low_open ? "(" : "[") + prune::number_text(low) + ", " + prune::number_text(high) +
               (high_open ? ")" : "]");
    }
};

/// (low, inf): strictly positive and so on.
inline interval above(double low) { return {low, INFINITY, true, false}; }
/// [low, inf).
inline interval at_least(double low) { return {low, INFINITY, false, false}; }
/// [low, high].
inline interval closed(double low, double high) { return {low, high, false, false}; }

/// Throws prune::value_error "<flag> <value> (expected a finite number <range>)" when `value`
/// is NaN, infinite or outside `allowed`; returns it otherwise.
inline double check_flag(const std::string& flag, double value, const interval& allowed) {
    if (!std::isfinite(value) || !allowed.contains(value)) {
        throw prune::value_error(flag + " " + prune::number_text(value) + " (expected a finite number " + allowed.text() +
                                 ")");
    }
    return value;
}

/// "NaN", "+inf" or "-inf": what a non-finite value is, for a message.
inline std::string non_finite_text(double v) { return std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf"; }

/// Throws prune::value_error at the first NaN or infinity of `logits` (rows = examples, in the
/// order of the data file; `where(row)` names the example, e.g. "dev.jsonl:3"): no metric is
/// computed from such logits (finite but huge weights overflow in the forward pass).
template <class Matrix, class Where>
void refuse_non_finite_logits(const Matrix& logits, Where&& where) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(logits.rows()); ++i) {
        for (std::size_t k = 0; k < static_cast<std::size_t>(logits.cols()); ++k) {
            const double v = logits(static_cast<long>(i), static_cast<long>(k));
            if (!std::isfinite(v)) {
                throw prune::value_error(where(i) + ": logit " + std::to_string(k) + " is " + non_finite_text(v) +
                                         " (expected finite logits: the forward pass overflows with these weights; "
                                         "no metric is computed from them)");
            }
        }
    }
}

/// Throws prune::value_error at the first NaN or infinity of importance scores (heads[l][h],
/// mlps[l]; `unit` names what heads[l] holds, e.g. "K/V group"): none is written or used to prune.
inline void refuse_non_finite_scores(const std::vector<std::vector<double>>& heads, const std::vector<double>& mlps,
                                     const std::string& unit = "head") {
    auto refuse = [](const std::string& what, double v) {
        throw prune::value_error("the importance of " + what + " is " + non_finite_text(v) +
                                 " (expected finite scores: the gradients overflow with these weights; none is "
                                 "written or used)");
    };
    for (std::size_t l = 0; l < heads.size(); ++l) {
        for (std::size_t h = 0; h < heads[l].size(); ++h) {
            if (!std::isfinite(heads[l][h])) refuse("layer " + std::to_string(l) + " " + unit + " " + std::to_string(h), heads[l][h]);
        }
        if (l < mlps.size() && !std::isfinite(mlps[l])) refuse("layer " + std::to_string(l) + " MLP", mlps[l]);
    }
}

/// Throws prune::value_error at the first NaN or infinity of the parameters (each with `name`,
/// `data` and `size()`, e.g. prune::bert::parameters(w)), naming the tensor and the element:
/// a trained model is never written holding one. `where` starts the message.
template <class Parameters>
void refuse_non_finite_weights(const Parameters& parameters, const std::string& where) {
    for (const auto& p : parameters) {
        for (std::size_t i = 0, n = p.size(); i < n; ++i) {
            if (!std::isfinite(p.data[i])) {
                throw prune::value_error(where + ": tensor '" + p.name + "' holds " + non_finite_text(p.data[i]) +
                                         " at element " + std::to_string(i) +
                                         " (expected finite weights: the training diverged)");
            }
        }
    }
}

/// The most threads a binary starts (`--threads` above it is refused; 0 means every core).
inline constexpr int max_threads = 256;

/// A CLI11 check for an unsigned integer flag (a seed, a batch size, a step count): the text
/// must be digits only and at most `max`. CLI11 itself wraps "-1" and 2^64 around into an
/// unsigned type; with this check they are errors: "--seed: -1 (expected an integer in [0, M])".
inline CLI::Validator unsigned_integer(std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
    return CLI::Validator(
        [max](std::string& text) -> std::string {
            std::uint64_t value = 0;
            const char* end = text.data() + text.size();
            const auto [at, ec] = std::from_chars(text.data(), end, value);
            if (text.empty() || ec != std::errc() || at != end || value > max) {
                return text + " (expected an integer in [0, " + std::to_string(max) + "])";
            }
            return {};
        },
        "UINT");
}

/// The CLI11 check of `--threads`: an integer in [0, max_threads].
inline CLI::Validator threads_flag() { return unsigned_integer(static_cast<std::uint64_t>(max_threads)); }

}  // namespace prune_cli
