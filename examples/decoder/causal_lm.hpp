// examples/decoder/causal_lm.hpp: what prune-eval and prune-importance do on a causal-LM
// directory (config.json with model_type llama or gpt2): load it with its masks, read its data.
//
// Data (DESIGN "Decoders"): JSON Lines, one sequence per line, `{"input_ids": [...]}` (no
// tokenizer needed) or `{"text": "..."}` encoded by the directory's tokenizer.json (its BOS/EOS
// added); or a .txt file, encoded whole and cut into non-overlapping windows of --context tokens
// (the remainder shorter than a window is dropped: the Wanda / SparseGPT protocol). Every row is
// checked against the model (empty, longer than max_position_embeddings, a token outside the
// vocabulary) and named by file and line.
#pragma once

#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/layer_stream.hpp>
#include <prune/models/decoder/pretrain.hpp>
#include <prune/error.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>
#include <prune/text/bpe.hpp>

#include "../common/numbers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <sys/resource.h>

namespace prune_lm {

namespace fs = std::filesystem;

/// True when DIR/config.json has a model_type other than "bert": the causal-LM path (whose
/// reader refuses a model_type it does not know, by name).
inline bool is_causal_lm(const std::string& dir) {
    std::error_code ec;
    const fs::path path = fs::path(dir) / "config.json";
    if (!fs::is_regular_file(path, ec)) return false;
    try {
        const prune::io::json j = prune::io::read_json_file(path);
        return j.is_object() && j.contains("model_type") && j["model_type"] != "bert";
    } catch (const prune::error&) {
        return false;  // the BERT path reports a malformed config.json as it always has
    }
}

/// Calls fn (applying or checking the element masks of `file`), its shape_error and format_error
/// naming the file.
template <class Fn>
void naming_mask_file(const std::string& file, Fn&& fn) {
    try {
        fn();
    } catch (const prune::shape_error& e) {
        throw prune::shape_error("element masks '" + file + "': " + e.what());
    } catch (const prune::format_error& e) {
        throw prune::format_error("element masks '" + file + "': " + e.what());
    }
}

/// The model with its element masks applied (errors name the mask file).
inline prune::decoder::weights load_model(const std::string& dir, const std::string& element_mask_file) {
    prune::decoder::weights w = prune::decoder::load_model(dir);
    if (element_mask_file.empty()) return w;
    const prune::io::element_masks masks = prune::io::read_element_masks(fs::path(element_mask_file));
    naming_mask_file(element_mask_file, [&] { prune::decoder::apply_element_masks(w, masks); });
    return w;
}

/// The element masks of `file` (none when empty), checked against the model `cfg` describes
/// (errors name the file: check_element_masks), nothing applied yet.
inline std::optional<prune::io::element_masks> read_element_masks(const std::string& file, const prune::decoder::config& cfg) {
    if (file.empty()) return std::nullopt;
    prune::io::element_masks masks = prune::io::read_element_masks(fs::path(file));
    naming_mask_file(file, [&] { prune::decoder::check_element_masks(cfg, masks); });
    return masks;
}

/// A structure mask file on a causal LM: gates of its heads, K/V groups and MLPs (none without a
/// file), and the element masks that remove its MLP channels (decoder::channel_element_masks).
struct structure_file {
    std::optional<prune::decoder::gates> gate;  ///< null when there is no file
    prune::io::element_masks channels;          ///< empty when no channel is removed
};

/// The gates and channel masks of the structure mask read from `mask_file` for the model `w`
/// (its layer shapes are enough); shape errors name the file.
inline structure_file structure_of(const prune::structure_mask& mask, const prune::decoder::weights& w, const std::string& mask_file) {
    try {
        return {prune::decoder::gates::from_mask(mask, w), prune::decoder::channel_element_masks(w.cfg, mask.mlp_channels)};
    } catch (const prune::shape_error& e) {
        throw prune::shape_error("structure mask '" + mask_file + "': " + e.what());
    }
}

/// Reads a structure mask file (none when the name is empty) for the model `w` (structure_of).
inline structure_file load_structure(const std::string& mask_file, const prune::decoder::weights& w) {
    if (mask_file.empty()) return {};
    return structure_of(prune::io::read_structure_mask(mask_file), w, mask_file);
}

/// Reads a structure mask file (none when the name is empty) for `w`: zeroes the MLP channels
/// it removes in `w` and returns its gates.
inline std::optional<prune::decoder::gates> apply_structure(const std::string& mask_file, prune::decoder::weights& w) {
    structure_file s = load_structure(mask_file, w);
    prune::decoder::apply_element_masks(w, s.channels);
    return std::move(s.gate);
}

/// Writes the causal LM `w` into `dir` (an output being staged) as a model directory: config.json
/// and model.safetensors in `dtype` (F64 as F32), plus the tokenizer and generation files the
/// input directory `from` has (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
/// generation_config.json).
inline void write_model_directory(const prune::decoder::weights& w, const fs::path& dir, prune::io::dtype dtype,
                                  const fs::path& from) {
    fs::create_directories(dir);
    prune::decoder::write_model_files(w, dir, dtype == prune::io::dtype::F64 ? prune::io::dtype::F32 : dtype);
    for (const char* file : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
        if (fs::is_regular_file(from / file)) fs::copy_file(from / file, dir / file);
    }
}

/// The directory's tokenizer.json (format_error naming what needed it when absent).
inline prune::text::bpe_tokenizer tokenizer_for(const std::string& dir, const std::string& needed_by) {
    const fs::path path = fs::path(dir) / "tokenizer.json";
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw prune::format_error(needed_by + " need " + path.string() + " (not found)");
    return prune::text::bpe_tokenizer::from_file(path);
}

/// The token ids of one JSON Lines row (input_ids, each in the vocabulary, or text through the tokenizer).
inline std::vector<std::int32_t> row_ids(const prune::io::json& row, const std::string& where, const std::string& dir,
                                         std::optional<prune::text::bpe_tokenizer>& tok, const std::string& file,
                                         const prune::decoder::config& cfg) {
    if (!row.is_object() || (!row.contains("input_ids") && !row.contains("text"))) {
        throw prune::format_error(where + ": the line is " + prune::io::describe_json(row) +
                                  R"( (expected an object with "input_ids" or "text"))");
    }
    if (!row.contains("input_ids")) {
        if (!tok) tok.emplace(tokenizer_for(dir, file + ": text rows"));
        return tok->encode(prune::io::as_string(row["text"], where + ": text"));
    }
    const prune::io::json& list = prune::io::as_array(row["input_ids"], where + ": input_ids");
    std::vector<std::int32_t> ids;
    for (std::size_t k = 0; k < list.size(); ++k) {
        const std::int64_t v = prune::io::as_int(list[k], where + ": input_ids[" + std::to_string(k) + "]");
        if (v < 0 || v >= cfg.vocab_size) {
            throw prune::value_error(where + ": input_ids[" + std::to_string(k) + "] is " + std::to_string(v) + " (expected 0.." +
                                     std::to_string(cfg.vocab_size - 1) + ", the model's vocabulary)");
        }
        ids.push_back(static_cast<std::int32_t>(v));
    }
    return ids;
}

/// Non-overlapping windows of `context` tokens of a whole text file encoded by `tok` (the
/// remainder dropped).
inline std::vector<std::vector<std::int32_t>> text_windows(const std::string& file, const prune::text::bpe_tokenizer& tok,
                                                           int context, const prune::decoder::config& cfg) {
    if (context < 2 || context > cfg.max_position_embeddings) {
        throw prune::value_error("--context " + std::to_string(context) + " (expected 2.." +
                                 std::to_string(cfg.max_position_embeddings) + ", the model's max_position_embeddings)");
    }
    const std::vector<std::int32_t> ids = tok.encode(prune::io::read_text_file(file));
    auto out = prune::decoder::token_windows(ids, static_cast<std::size_t>(context));
    if (out.empty()) {
        throw prune::value_error(file + ": " + std::to_string(ids.size()) + " tokens, fewer than one window of " +
                                 std::to_string(context) + " (--context, default max_position_embeddings)");
    }
    return out;
}

/// The window a data file is cut into: --context (default max_position_embeddings) for a .txt
/// file; none for JSON Lines, one sequence per row.
inline std::optional<int> window_of(const std::string& file, const prune::decoder::config& cfg, std::optional<int> context) {
    if (fs::path(file).extension() == ".txt") return context.value_or(cfg.max_position_embeddings);
    return std::nullopt;
}

/// The same with the model directory's tokenizer.json.
inline std::vector<std::vector<std::int32_t>> text_windows(const std::string& file, const std::string& dir, int context,
                                                           const prune::decoder::config& cfg) {
    return text_windows(file, tokenizer_for(dir, file + ": text files"), context, cfg);
}

/// The sequences of a data file, each checked against the model and named by file:line.
inline std::vector<std::vector<std::int32_t>> read_sequences(const std::string& file, const std::string& dir,
                                                             const prune::decoder::config& cfg, std::optional<int> context) {
    if (const auto window = window_of(file, cfg, context)) return text_windows(file, dir, *window, cfg);
    if (context) throw prune::value_error("--context applies to a .txt data file ('" + file + "' is read as JSON Lines)");
    std::optional<prune::text::bpe_tokenizer> tok;
    std::vector<std::vector<std::int32_t>> out;
    prune::io::for_each_line(file, [&](std::string_view content, std::size_t line) {
        if (content.find_first_not_of(" \t\r") == std::string_view::npos) return;
        const std::string where = file + ":" + std::to_string(line);
        const prune::io::json row = prune::io::parse_json(content, where);
        out.push_back(row_ids(row, where, dir, tok, file, cfg));
        prune::decoder::sequences::check(out.back(), cfg, where + ": the sequence");
    });
    if (out.empty()) throw prune::value_error(file + " has no sequences (expected one {\"input_ids\": [...]} per line)");
    return out;
}

}  // namespace prune_lm

namespace prune_lm {

/// Throws prune::value_error at the first sequence whose NLL is NaN or infinite (the batch's
/// sequences are `first`, `first + 1`, ... of `file`, counted from 1 in the message): no
/// perplexity is computed from it (finite but huge weights overflow in the forward pass).
inline void refuse_non_finite_nll(const prune::decoder::forward_result& r, std::size_t first, const std::string& file) {
    for (std::size_t i = 0; i < r.nll.size(); ++i) {
        if (std::isfinite(r.nll[i])) continue;
        throw prune::value_error(file + ": sequence " + std::to_string(first + i + 1) + " has NLL " +
                                 prune_cli::non_finite_text(r.nll[i]) +
                                 " (expected a finite NLL: the forward pass overflows with these weights; no perplexity is computed from it)");
    }
}

/// The rows packed into batches of `size` sequences, in order.
inline std::vector<prune::decoder::sequences> batches_of(std::span<const std::vector<std::int32_t>> rows, std::size_t size) {
    std::vector<prune::decoder::sequences> out;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i % size == 0) out.emplace_back();
        out.back().add(rows[i]);
    }
    return out;
}

/// Adds one batch's NLL and predicted tokens to the totals (the batch's sequences are `first`,
/// `first + 1`, ... of `file`); value_error at a non-finite NLL (refuse_non_finite_nll).
inline void add_batch(const prune::decoder::forward_result& r, std::size_t first, const std::string& file, double& nll,
                      std::int64_t& tokens) {
    refuse_non_finite_nll(r, first, file);
    nll += r.total_nll();
    tokens += r.total_predicted();
}

/// The summed NLL and the predicted tokens of `data` under `gate` (null: none), `batch_size`
/// sequences a pass on `ws`; value_error naming `file` at a non-finite NLL (refuse_non_finite_nll).
inline std::pair<double, std::int64_t> total_nll(const prune::decoder::weights& w, std::span<const std::vector<std::int32_t>> data,
                                                 const prune::decoder::gates* gate, std::size_t batch_size,
                                                 prune::decoder::workspace& ws, const std::string& file) {
    prune::decoder::forward_options o;
    o.gate = gate;
    o.keep_logits = false;
    double nll = 0.0;
    std::int64_t tokens = 0;
    const std::vector<prune::decoder::sequences> batches = batches_of(data, batch_size);
    for (std::size_t b = 0; b < batches.size(); ++b) add_batch(prune::decoder::forward(w, batches[b], ws, o), b * batch_size, file, nll, tokens);
    return {nll, tokens};
}

/// Perplexity as prune-eval's JSON from the summed NLL over `tokens` predicted tokens of
/// `sequences` sequences of `file` (value_error when no token was predicted): perplexity, nll
/// (mean per predicted token, nats), nll_total, tokens (predicted), sequences, context (the
/// window of a .txt file, else null).
inline prune::io::json perplexity_json(double nll, std::int64_t tokens, std::size_t sequences, const std::string& file,
                                       std::optional<int> context) {
    if (tokens == 0) {
        throw prune::value_error(file + ": no token to predict (every sequence has 1 token; perplexity needs sequences of >= 2)");
    }
    prune::io::json out;
    out["perplexity"] = std::exp(nll / static_cast<double>(tokens));
    out["nll"] = nll / static_cast<double>(tokens);
    out["nll_total"] = nll;
    out["tokens"] = tokens;
    out["sequences"] = sequences;
    out["context"] = context ? prune::io::json(*context) : prune::io::json(nullptr);
    return out;
}

/// Perplexity of `data` (REFERENCE: exp(total NLL / predicted tokens), positions 1..n-1 of each
/// sequence) as perplexity_json gives it.
inline prune::io::json perplexity(const prune::decoder::weights& w, const std::vector<std::vector<std::int32_t>>& data,
                                  const prune::decoder::gates* gate, std::size_t batch_size, int threads,
                                  const std::string& file, std::optional<int> context) {
    prune::decoder::workspace ws(threads);
    const auto [nll, tokens] = total_nll(w, data, gate, batch_size, ws, file);
    return perplexity_json(nll, tokens, data.size(), file, context);
}

/// Perplexity of `data` as perplexity gives it on the opened model `m` with `masks` applied and
/// under `gate` (null: none), read layer by layer (decoder::evaluate_layers): one decoder
/// layer's float weights in memory at a time, never the model; the same bits as perplexity on
/// load_model with the masks. Errors about a tensor name m.where as it is read.
inline prune::io::json streamed_perplexity(const prune::decoder::opened_model& m, const prune::io::element_masks* masks,
                                           const prune::decoder::gates* gate, const std::vector<std::vector<std::int32_t>>& data,
                                           std::size_t batch_size, int threads, const std::string& file, std::optional<int> context) {
    double nll = 0.0;
    std::int64_t tokens = 0;
    prune::decoder::stream_evaluation o;
    o.gate = gate;
    o.masks = masks;
    prune::decoder::evaluate_layers(m.ckpt, m.cfg, batches_of(data, batch_size), o, prune::decoder::stream_chunk_tokens(m.cfg),
                                    threads, m.where, [&](std::size_t b, const prune::decoder::forward_result& r) {
                                        add_batch(r, b * batch_size, file, nll, tokens);
                                    });
    return perplexity_json(nll, tokens, data.size(), file, context);
}

/// Peak resident set size of this process, bytes (getrusage's ru_maxrss, the kernel's VmHWM):
/// prune-sparsify's report.json and prune-eval's causal-LM --json give it as peak_rss_bytes.
inline long long peak_rss_bytes() {
    struct rusage usage {};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<long long>(usage.ru_maxrss) * 1024;
}

/// Whether any layer has fewer K/V heads than query heads (then importance reports kv_groups).
inline bool grouped(const prune::decoder::weights& w) {
    for (const auto& L : w.layers)
        if (L.kv_heads != L.q_heads) return true;
    return false;
}

}  // namespace prune_lm
