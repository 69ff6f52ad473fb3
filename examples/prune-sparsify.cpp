// prune-sparsify: one-shot pruning of a causal LM's linears -- magnitude, Wanda or SparseGPT,
// unstructured or N:M -- calibrated layer by layer (prune/sparsify/calibrate.hpp, docs/sparsify.md).
//
//   prune-sparsify --model DIR --calib F --method magnitude|wanda|sparsegpt (--sparsity S | --nm N:M)
//                  [--group row|matrix|layer|global] [--eval F] --out DIR
//                  [--context N] [--batch-size 8] [--dense-inputs] [--reconstruct] [--threads 0]
//                  [--save-imatrix FILE]
//   prune-sparsify --model DIR --imatrix FILE --method wanda (--sparsity S | --nm N:M) [--group ...] --out DIR
//
// DIR is a causal-LM directory (config.json model_type llama or gpt2); F is causal-LM data
// (JSON Lines input_ids / text, or a .txt file cut into windows of --context tokens). Pruned:
// every q/k/v/o/gate/up/down (Llama) or c_attn/attn.c_proj/c_fc/mlp.c_proj (GPT-2) weight;
// never embeddings, norms, lm_head or biases. --sparsity S prunes floor(S x n) of each comparison
// group (default: a row for wanda, a matrix for magnitude); --nm N:M keeps N of every M
// consecutive input weights of a row. sparsegpt chooses per block of 128 columns (no --group).
// --calib is needed by wanda, sparsegpt and --reconstruct (SparseGPT's reconstruction of a
// magnitude or Wanda mask); calibration runs in batches of --batch-size sequences, layer l on
// the outputs of the pruned layers < l (--dense-inputs: on the dense model's throughout).
// --imatrix FILE: Wanda without calibration, the column norms sqrt(sum x_j^2) of each linear from
// a llama.cpp importance matrix (llama-imatrix's GGUF or legacy .dat), its entry named by the
// weight's GGUF name (blk.0.attn_q.weight); every group applies, global included. An imatrix is
// collected on the dense model: the same sums give the masks --dense-inputs gives.
// --save-imatrix FILE: the statistics collected (per linear, sum x_j^2 and the tokens), written
// as a llama-imatrix GGUF file (docs/sparsify.md).
// Output (a directory that appears whole, or not at all): config.json and the tokenizer files
// copied, the weights in the input's layout -- model.safetensors, or the same shard files and a
// model.safetensors.index.json -- every tensor in its own dtype, the pruned weights changed,
// masks.safetensors (U8 per pruned weight, 1 = kept, named and shaped as the weight in the
// checkpoint; --mask-format bits packs 8 a byte along the last axis), report.json (settings, per-tensor sparsity, calibration tokens,
// wall time, peak RSS, perplexity before / after on --eval F). Bad input: one line, exit 2.
// Memory (docs/sparsify.md): the model is read one decoder layer at a time (decoder::layer_stream)
// and each layer's weights are written as soon as it is pruned; never the whole model as float.
// Under mpirun (a build with MPI; docs/distributed.md) rank r calibrates on the batches b with
// b % ranks == r and the statistics (sums x x^T too, for sparsegpt and --reconstruct) are added
// in batch order: every method gives the same bytes for any number of processes. Rank 0
// evaluates and writes.
#include "common/cli.hpp"
#include "common/mask_report.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"
#include "common/world.hpp"
#include "decoder/causal_lm.hpp"

#include <prune/io/atomic.hpp>
#include <prune/io/checkpoint_writer.hpp>
#include <prune/io/gguf_convert.hpp>
#include <prune/io/imatrix.hpp>
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/models/decoder/layer_stream.hpp>
#include <prune/mpi/communicator.hpp>
#include <prune/nn/process.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace prune_examples::prune_sparsify {

namespace fs = std::filesystem;
namespace sp = prune::sparsify;
using namespace prune;

namespace {

struct settings {
    std::string model, calib, method, nm, group, eval, out, imatrix, save_imatrix;
    std::optional<double> sparsity;
    std::optional<int> context;
    int batch_size = 8, threads = 0;
    bool dense_inputs = false, reconstruct = false;
    prune_cli::mask_format mask_format;
};

/// "N:M" as the core's pattern (N kept of every M); value_error when malformed.
nm_pattern parse_nm(const std::string& text) {
    const std::size_t colon = text.find(':');
    const auto digits = [](const std::string& s) { return !s.empty() && s.size() < 7 && s.find_first_not_of("0123456789") == std::string::npos; };
    if (colon == std::string::npos || !digits(text.substr(0, colon)) || !digits(text.substr(colon + 1))) {
        throw value_error("--nm '" + text + "' (expected N:M, N kept of every M consecutive weights, e.g. 2:4)");
    }
    return {std::stoul(text.substr(0, colon)), std::stoul(text.substr(colon + 1))};
}

/// value_error for --imatrix or --save-imatrix with a flag that does not go with it.
void check_imatrix_flags(const settings& s, const sp::calibration_options& o) {
    if (!s.imatrix.empty()) {
        const std::pair<bool, const char*> refused[] = {
            {o.how != sp::method::wanda, "--method magnitude or sparsegpt (expected wanda: the imatrix gives Wanda's column norms)"},
            {!s.calib.empty(), "--calib (expected one of them: the imatrix replaces calibration)"},
            {s.reconstruct, "--reconstruct (expected no reconstruction: it needs sums x x^T, which an imatrix lacks)"},
            {s.dense_inputs, "--dense-inputs (expected no --dense-inputs: nothing is calibrated; an imatrix is the dense model's already)"},
            {!s.save_imatrix.empty(), "--save-imatrix (expected no --save-imatrix: nothing is collected)"}};
        for (const auto& [bad, what] : refused) {
            if (bad) throw value_error(std::string("--imatrix with ") + what);
        }
    }
    if (!s.save_imatrix.empty() && (s.calib.empty() || !sp::detail::needs_statistics(o))) {
        throw value_error("--save-imatrix without statistics to save (expected --calib F with wanda, sparsegpt or --reconstruct)");
    }
}

/// The calibration options of the command line; value_error for a combination that does not apply.
sp::calibration_options options_of(const settings& s) {
    sp::calibration_options o;
    o.how = sp::parse_method(s.method);
    if (s.sparsity.has_value() == !s.nm.empty()) throw value_error("give exactly one of --sparsity S and --nm N:M");
    if (s.sparsity) o.target.sparsity = *s.sparsity;
    if (!s.nm.empty()) o.target.nm = parse_nm(s.nm);
    if (!s.group.empty() && (o.target.nm || o.how == sp::method::sparsegpt)) {
        throw value_error("--group " + s.group + " with " + (o.target.nm ? "--nm (expected no --group: N:M compares within each group of M)"
                                                                          : "sparsegpt (expected no --group: sparsegpt compares within blocks of 128 columns)"));
    }
    o.target.group = !s.group.empty() ? sp::parse_comparison_group(s.group)
                     : o.how == sp::method::magnitude ? sp::comparison_group::matrix
                                                      : sp::comparison_group::row;
    o.dense_inputs = s.dense_inputs;
    o.reconstruct = s.reconstruct;
    check_imatrix_flags(s, o);
    if (s.calib.empty() && s.imatrix.empty() && (o.how != sp::method::magnitude || o.reconstruct)) {
        throw value_error(std::string("--calib F is needed by ") + (o.reconstruct ? "--reconstruct" : s.method));
    }
    return o;
}

/// A data file's sequences (--context only for .txt files).
std::vector<std::vector<std::int32_t>> read_rows(const std::string& file, const settings& s, const decoder::config& cfg) {
    const bool text = fs::path(file).extension() == ".txt";
    return prune_lm::read_sequences(file, s.model, cfg, text ? s.context : std::nullopt);
}

/// A weight's values in the checkpoint's layout ([in, out] for a Conv1D weight).
std::vector<float> file_layout(const decoder::calibration_linear& x) {
    return decoder::detail::file_layout(x.weight.data(), x.weight.extents()[0], x.weight.extents()[1], x.transposed);
}

/// The values as bytes of `type` (F32, F64, F16, BF16); value_error when one is not finite there.
std::vector<std::byte> encoded(const std::vector<float>& v, io::dtype type, const std::string& name) {
    std::vector<std::byte> out;
    auto put = [&](auto converted) {
        using E = decltype(converted(0.0f));
        out.resize(v.size() * sizeof(E));
        for (std::size_t i = 0; i < v.size(); ++i) {
            const E e = converted(v[i]);
            if (!std::isfinite(static_cast<double>(to_float(e)))) {
                throw value_error("weight '" + name + "' element " + std::to_string(i) + " is " + std::to_string(v[i]) +
                                  ", not finite in " + io::dtype_name(type) + " (nothing was written)");
            }
            std::memcpy(out.data() + i * sizeof(E), &e, sizeof(E));
        }
    };
    switch (type) {
        case io::dtype::F32: put([](float f) { return f; }); break;
        case io::dtype::F64: put([](float f) { return static_cast<double>(f); }); break;
        case io::dtype::F16: put([](float f) { return to_half(f); }); break;
        case io::dtype::BF16: put([](float f) { return to_bfloat16(f); }); break;
        default: throw dtype_error("weight '" + name + "' has dtype " + io::dtype_name(type) + " (expected F32, F64, F16 or BF16)");
    }
    return out;
}

/// A mask in the checkpoint's layout ([in, out] for a Conv1D weight).
element_mask file_layout(const element_mask& m, bool transposed) {
    if (!transposed) return m;
    const std::size_t rows = m.extents()[0], cols = m.extents()[1];
    element_mask t(prune::shape{cols, rows});
    for (std::size_t o = 0; o < rows; ++o)
        for (std::size_t i = 0; i < cols; ++i) t.set(i * rows + o, m.kept(o * cols + i));
    return t;
}

/// The perplexity JSON of the evaluation batches' NLL (batches of --batch-size sequences, in order).
io::json perplexity(const std::vector<decoder::forward_result>& batches, const std::vector<std::vector<std::int32_t>>& rows,
                    const decoder::config& cfg, const settings& s) {
    double nll = 0.0;
    std::int64_t tokens = 0;
    for (std::size_t b = 0; b < batches.size(); ++b) prune_lm::add_batch(batches[b], b * static_cast<std::size_t>(s.batch_size), s.eval, nll, tokens);
    return prune_lm::perplexity_json(nll, tokens, rows.size(), s.eval, prune_lm::window_of(s.eval, cfg, s.context));
}

/// The settings part of report.json.
nlohmann::json settings_json(const settings& s, const sp::calibration_options& o) {
    nlohmann::json r;
    r["model"] = s.model;
    r["method"] = s.method;
    r["sparsity"] = s.sparsity ? nlohmann::json(*s.sparsity) : nlohmann::json(nullptr);
    r["nm"] = s.nm.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.nm);
    r["group"] = o.target.nm || o.how == sp::method::sparsegpt ? nlohmann::json(nullptr) : nlohmann::json(sp::to_string(o.target.group));
    r["dense_inputs"] = s.dense_inputs;
    r["reconstruct"] = s.reconstruct;
    r["calib"] = s.calib.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.calib);
    r["imatrix"] = s.imatrix.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.imatrix);
    r["save_imatrix"] = s.save_imatrix.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.save_imatrix);
    r["batch_size"] = s.batch_size;
    return r;
}

/// The GGUF architecture of a causal LM's config.
io::decoder_arch arch_of(const decoder::config& cfg) { return cfg.is_llama() ? io::decoder_arch::llama : io::decoder_arch::gpt2; }

/// The GGUF name of a pruned weight (blk.0.attn_q.weight).
std::string gguf_name(const decoder::config& cfg, const std::string& name) {
    return io::gguf_tensor_name(arch_of(cfg), name).value_or(name);
}

/// --imatrix: Wanda's column norms of each weight from its entry (format_error naming the file,
/// the entry and the weight when it is missing or does not fit).
struct imatrix_norms {
    std::string file;
    io::imatrix m;
    decoder::config cfg;

    std::vector<float> operator()(const std::string& name, std::size_t columns) const {
        const std::string entry = gguf_name(cfg, name);
        const io::imatrix_entry* e = m.find(entry);
        const std::string where = "--imatrix '" + file + "'";
        if (e == nullptr) {
            throw format_error(where + " has no entry '" + entry + "' for the weight '" + name +
                               "' (expected one for every pruned linear: an importance matrix of this model)");
        }
        if (e->matrices != 1 || e->columns != columns) {
            throw format_error(where + ": entry '" + entry + "' has " + std::to_string(e->matrices) + " x " +
                               std::to_string(e->columns) + " values, but the weight '" + name + "' has " +
                               std::to_string(columns) + " input columns (expected 1 x " + std::to_string(columns) +
                               ": an importance matrix of this model)");
        }
        return m.column_norms(entry);
    }
};

/// Reads --imatrix and checks its entries against every pruned weight of the model, before any is read.
imatrix_norms open_imatrix(const std::string& file, const decoder::config& cfg, decoder::layer_stream& stream) {
    const std::string what = "--imatrix '" + file + "' is not a llama.cpp importance matrix";
    imatrix_norms norms{file, {}, cfg};
    try {
        norms.m = io::read_imatrix(fs::path(file));
    } catch (const format_error& e) {
        throw format_error(what + " (" + e.what() + "; expected llama-imatrix's GGUF or legacy .dat layout)");
    }
    if (norms.m.entries.empty()) throw format_error(what + ": it has no <name>.in_sum2 / <name>.counts tensors");
    for (std::size_t l = 0; l < stream.layers(); ++l) {
        for (const score_source& w : stream.weight_scores(l)) (void)norms(w.name(), w.extents()[1]);
    }
    return norms;
}

/// --save-imatrix: the statistics prune_layers collects, as importance-matrix entries (rank 0).
struct imatrix_sink {
    io::imatrix m;

    void add(const decoder::config& cfg, const std::string& name, const sp::input_statistics& stats) {
        m.entries.push_back(io::imatrix_entry_from(gguf_name(cfg, name), stats.sum_squares(), stats.tokens()));
    }

    /// Writes the file: the calibration file as its dataset, a chunk per sequence (chunk_size: the
    /// sequences' length when they all have one, else 0).
    void write(const std::string& file, const std::string& calib, const std::vector<std::vector<std::int32_t>>& rows) {
        m.datasets = {calib};
        m.chunk_count = static_cast<std::uint32_t>(rows.size());
        const bool equal = std::all_of(rows.begin(), rows.end(), [&](const auto& r) { return r.size() == rows.front().size(); });
        m.chunk_size = rows.empty() || !equal ? 0 : static_cast<std::uint32_t>(rows.front().size());
        io::write_imatrix(fs::path(file), m);
    }
};

/// The output being written while the layers are pruned (rank 0): its staging directory and the
/// weights in the input's layout, each layer's pruned linears put as soon as the layer is done.
struct output {
    io::output_directory dir;
    io::checkpoint_writer weights;           ///< the input's files, the pruned weights put
    std::map<std::string, bool> transposed;  ///< per pruned weight: a Conv1D weight ([in, out] on disk)

    /// Stages `out`, the input's files reserved in it (io_error when they do not fit).
    output(const std::string& out, const io::checkpoint& ckpt) : dir(out), weights(ckpt, dir.path()) {}

    /// Writes layer l's pruned linears in their dtypes (value_error when one is not finite there).
    void add_layer(decoder::layer_stream& model, const io::checkpoint& ckpt, std::size_t l) {
        for (const auto& x : model.linears(l)) {
            weights.put(x.name, encoded(file_layout(x), ckpt.info(x.name).type, x.name));
            transposed.emplace(x.name, x.transposed);
        }
    }
};

/// The masks, moved out of `result`, in the checkpoint's layout and the model's order.
std::vector<std::pair<std::string, element_mask>> file_masks(sp::calibration_result& result, const output& out) {
    std::vector<std::pair<std::string, element_mask>> masks;
    for (auto& x : result.linears) {
        const bool transposed = out.transposed.at(x.name);
        masks.emplace_back(x.name, transposed ? file_layout(x.mask, true) : std::move(x.mask));
        x.mask = element_mask();
    }
    return masks;
}

/// Writes the rest of the output directory and commits it: config and tokenizer files, weights,
/// masks, report.
void write_outputs(const settings& s, output& out,
                   const std::vector<std::pair<std::string, element_mask>>& masks, const nlohmann::json& report) {
    for (const char* file : {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                             "generation_config.json"}) {
        if (fs::is_regular_file(fs::path(s.model) / file)) fs::copy_file(fs::path(s.model) / file, out.dir / file);
    }
    out.weights.finish();
    io::write_element_masks(out.dir / "masks.safetensors", std::span<const std::pair<std::string, element_mask>>(masks),
                            s.mask_format.layout());
    std::ofstream file(out.dir / "report.json");
    file << report.dump(2) << "\n";
    file.close();
    if (!file) throw io_error("cannot write " + (out.dir / "report.json").string());
    out.dir.commit();
}

/// What every rank opens and reads: the checkpoint, the data, its own calibration batches.
struct loaded {
    std::optional<decoder::opened_model> model;
    std::vector<std::vector<std::int32_t>> calib, eval;
    std::size_t batches = 0;  ///< calibration batches of the whole set
    nlohmann::json report;
};

/// This rank's batches of `all`: those whose index b has b % size == rank (docs/distributed.md).
std::vector<decoder::sequences> shard(std::vector<decoder::sequences> all, const prune::mpi::communicator& comm) {
    std::vector<decoder::sequences> mine;
    for (std::size_t b = static_cast<std::size_t>(comm.rank()); b < all.size(); b += static_cast<std::size_t>(comm.size())) {
        mine.push_back(std::move(all[b]));
    }
    return mine;
}

/// Rank 0: the report's results, the perplexity before and after, the output directory.
void finish(const settings& s, loaded& in, output& out, sp::calibration_result& result,
            const decoder::layer_stream::evaluation& eval, std::vector<double> layer_seconds,
            std::chrono::steady_clock::time_point start) {
    nlohmann::json& report = in.report;
    for (std::size_t l = layer_seconds.size(); l-- > 1;) layer_seconds[l] -= layer_seconds[l - 1];
    report["layer_seconds"] = layer_seconds;
    report["calibration"] = {{"sequences", in.calib.size()}, {"tokens", result.tokens}, {"batches", in.batches}};
    if (!in.eval.empty()) {
        report["perplexity_before"] = perplexity(eval.dense, in.eval, in.model->cfg, s);
        report["perplexity_after"] = perplexity(eval.pruned, in.eval, in.model->cfg, s);
    }
    const auto masks = file_masks(result, out);
    prune_cli::add_mask_counts(report, masks);
    report["wall_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report["peak_rss_bytes"] = prune_lm::peak_rss_bytes();
    write_outputs(s, out, masks, report);
    std::fprintf(stderr, "prune-sparsify: %s, %zu linears, sparsity %.4f, %llu calibration tokens, wrote %s (%.2f s)\n",
                 s.method.c_str(), masks.size(), report["sparsity"].get<double>(),
                 static_cast<unsigned long long>(result.tokens), s.out.c_str(), report["wall_seconds"].get<double>());
}

/// Every rank: the model opened, the data read, the layer stream over this rank's calibration
/// batches (rank 0 also runs the evaluation batches through it).
void open_inputs(const settings& s, const sp::calibration_options& options, loaded& in,
                 std::optional<decoder::layer_stream>& stream, const prune::mpi::communicator& comm) {
    in.model.emplace(decoder::open_model(s.model));
    const decoder::config& cfg = in.model->cfg;
    if (!s.calib.empty()) in.calib = read_rows(s.calib, s, cfg);
    if (!s.eval.empty()) in.eval = read_rows(s.eval, s, cfg);
    in.report = settings_json(s, options);
    std::vector<decoder::sequences> batches = prune_lm::batches_of(in.calib, static_cast<std::size_t>(s.batch_size));
    in.batches = batches.size();
    stream.emplace(in.model->ckpt, cfg, shard(std::move(batches), comm), s.threads, in.model->where);
    if (comm.rank() == 0 && !in.eval.empty()) stream->evaluate(prune_lm::batches_of(in.eval, static_cast<std::size_t>(s.batch_size)));
}

/// Prunes on every rank of comm (one process without mpiexec): each rank calibrates on its own
/// batches, prune_layers adds their statistics in batch order; rank 0 evaluates and writes, each
/// layer's weights as soon as it is pruned.
void sparsify_model(const settings& s, prune::mpi::communicator& comm) {
    const auto start = std::chrono::steady_clock::now();
    sp::calibration_options options = options_of(s);
    if (!prune_lm::is_causal_lm(s.model)) {
        throw value_error("--model '" + s.model + "' is not a causal LM (expected a directory whose config.json has "
                          "model_type llama or gpt2)");
    }
    loaded in;
    std::optional<decoder::layer_stream> stream;
    std::optional<output> out;
    std::optional<imatrix_norms> given;
    imatrix_sink saved;
    prune::mpi::collectively(comm, [&] {
        open_inputs(s, options, in, stream, comm);
        if (!s.imatrix.empty()) given.emplace(open_imatrix(s.imatrix, in.model->cfg, *stream));
        if (comm.rank() == 0) out.emplace(s.out, in.model->ckpt);
    });
    if (given) options.given_norms = std::cref(*given);
    if (!s.save_imatrix.empty() && comm.rank() == 0) {
        options.on_statistics = [&](const std::string& name, const sp::input_statistics& stats) { saved.add(in.model->cfg, name, stats); };
    }
    options.sparsegpt.pool = &stream->pool();
    options.comm = &comm;
    std::vector<double> layer_seconds;  // cumulative from the start of pruning, then per layer
    const auto pruning = std::chrono::steady_clock::now();
    options.on_layer = [&](std::size_t l) {
        layer_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - pruning).count());
        if (comm.rank() != 0) return;
        out->add_layer(*stream, in.model->ckpt, l);
        std::fprintf(stderr, "prune-sparsify: layer %zu of %zu pruned (%.2f s)\n", l + 1, stream->layers(), layer_seconds.back());
    };
    sp::calibration_result result = sp::prune_layers(*stream, options);
    prune::mpi::collectively(comm, [&] {
        const decoder::layer_stream::evaluation eval = stream->finish();
        if (comm.rank() == 0) {
            if (!s.save_imatrix.empty()) saved.write(s.save_imatrix, s.calib, in.calib);
            finish(s, in, *out, result, eval, layer_seconds, start);
        }
    });
}

}  // namespace
/// The job: build/bin/prune-sparsify's main (generated by examples/CMakeLists.txt) calls it.
int run(int argc, char** argv) {
    prune::nn::setup_process(argv);
    std::unique_ptr<prune::mpi::communicator> comm;
    try {
        comm = world(&argc, &argv);
    } catch (const prune::error& e) {
        std::fprintf(stderr, "prune-sparsify: %s\n", e.what());
        return prune_cli::exit_bad_input;
    }
    CLI::App app{"prune-sparsify: one-shot magnitude / Wanda / SparseGPT pruning of a causal LM", "prune-sparsify"};
    settings s;
    app.add_option("--model", s.model, "causal-LM directory (config.json model_type llama or gpt2)")->required();
    app.add_option("--calib", s.calib, "calibration data: JSON Lines (input_ids or text) or .txt");
    app.add_option("--method", s.method, "magnitude, wanda or sparsegpt")->required();
    app.add_option("--sparsity", s.sparsity, "fraction pruned per comparison group, 0 <= S < 1");
    app.add_option("--nm", s.nm, "N:M: keep N of every M consecutive input weights of a row (e.g. 2:4)");
    app.add_option("--group", s.group, "comparison group: row (wanda's default), matrix (magnitude's), layer, global");
    app.add_option("--eval", s.eval, "perplexity before and after on this data");
    app.add_option("--out", s.out, "output model directory")->required();
    app.add_option("--context", s.context, ".txt data: tokens per window (default max_position_embeddings)");
    app.add_option("--batch-size", s.batch_size, "calibration sequences per batch")->check(CLI::Range(1, std::numeric_limits<int>::max()));
    app.add_option("--threads", s.threads, "threads (0 = all cores; at most 256)")->check(prune_cli::threads_flag());
    app.add_flag("--dense-inputs", s.dense_inputs, "calibrate every layer on the dense model's activations");
    app.add_flag("--reconstruct", s.reconstruct, "magnitude / wanda: SparseGPT's reconstruction of the kept weights");
    app.add_option("--imatrix", s.imatrix, "wanda without calibration: column norms from a llama.cpp importance matrix (GGUF or .dat)");
    app.add_option("--save-imatrix", s.save_imatrix, "write the calibration statistics as a llama-imatrix GGUF file");
    prune_cli::add_mask_format(app, s.mask_format);
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", s.model}, {"--calib", s.calib}, {"--eval", s.eval}, {"--imatrix", s.imatrix}},
                                   {{"--out", s.out}, {"--save-imatrix", s.save_imatrix}});
        io::remove_staging_on_signal();
        sparsify_model(s, *comm);
    });
}

}  // namespace prune_examples::prune_sparsify
