// tests/sparsify/test_sparsify_calibrate_torch.cpp: prune/sparsify/calibrate.hpp's layer-by-layer
// pruning of a decoder (prune/models/decoder/calibration.hpp) against calibrate_oracle.py, the
// reference code's protocol in PyTorch (float64) on a tiny Llama (GQA, two SparseGPT blocks in
// down_proj) and a tiny GPT-2 (Conv1D), fed the same weights and calibration batches: masks
// identical for Wanda 50% (per row and per layer) / 2:4 / 4:8 on dense inputs and magnitude 50%;
// SparseGPT 50% and 2:4, and SparseGPT's reconstruction of a Wanda 50% and a magnitude 2:4 mask:
// masks identical and weights within 1e-4 of the largest. Then, with no oracle, that layer l was
// calibrated on the inputs of the pruned layers < l: the masks of layer l are recomputed from a
// plain forward pass (a different code path) of the model whose layers < l are the pruned ones
// and layers >= l the original ones; on the dense model's inputs layer 1's masks differ.
// And prune_layers hands over one batch of one layer at a time: each layer records and advances
// each batch once; dense inputs never re-run a layer; magnitude runs nothing.
#include <prune/models/decoder/calibration.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace sp = prune::sparsify;
namespace dec = prune::decoder;
using sparsify_test::read_raw;

/// The oracle's output, written once per process and removed at exit.
const fs::path& oracle_dir() {
    struct cleanup {
        fs::path path;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(path, ec);
        }
    };
    static const cleanup remove_at_exit{fs::temp_directory_path() / ("prune_calibrate_oracle_" + std::to_string(::getpid()))};
    static const fs::path d = [] {
        const fs::path out = remove_at_exit.path;
        fs::remove_all(out);
        const std::string command =
            std::string(PRUNE_TEST_PYTHON) + " " PRUNE_SOURCE_DIR "/tests/sparsify/calibrate_oracle.py " + out.string();
        REQUIRE(std::system(command.c_str()) == 0);
        return out;
    }();
    return d;
}

/// The model's calibration batches.
std::vector<dec::sequences> batches_of(const std::string& model) {
    std::ifstream in(oracle_dir() / model / "calib.json");
    REQUIRE(in.good());
    const nlohmann::json j = nlohmann::json::parse(in);
    std::vector<dec::sequences> out;
    for (const auto& batch : j["batches"]) {
        out.emplace_back();
        for (const auto& row : batch) out.back().add(row.get<std::vector<std::int32_t>>());
    }
    return out;
}

/// The options of one oracle configuration.
sp::calibration_options options_of(const std::string& config) {
    sp::calibration_options o;
    o.how = sp::parse_method(config.substr(0, config.find('_')));
    if (config.find("_24") != std::string::npos) o.target.nm = prune::nm_pattern{2, 4};
    if (config.find("_48") != std::string::npos) o.target.nm = prune::nm_pattern{4, 8};
    o.target.sparsity = 0.5;
    o.target.group = o.how == sp::method::magnitude ? sp::comparison_group::matrix : sp::comparison_group::row;
    o.dense_inputs = config.find("dense") != std::string::npos;
    o.reconstruct = config.find("_rec") != std::string::npos;
    if (config.find("_layer") != std::string::npos) o.target.group = sp::comparison_group::layer;
    return o;
}

/// Prunes the model in place with the options; returns the masks by name.
std::map<std::string, prune::element_mask> run_driver(dec::weights& w, const std::vector<dec::sequences>& batches,
                                                      const sp::calibration_options& o, int threads = 2) {
    dec::calibration_run run(w, batches, threads);
    sp::calibration_options options = o;
    options.sparsegpt.pool = &run.pool();
    sp::calibration_result r = sp::prune_layers(run, options);
    std::map<std::string, prune::element_mask> out;
    for (auto& x : r.linears) out.emplace(x.name, std::move(x.mask));
    return out;
}

/// max |got - want| / max |want| over one linear's weights.
double weight_error(const dec::calibration_linear& x, const std::vector<double>& want) {
    REQUIRE(want.size() == x.weight.size());
    double diff = 0, largest = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        diff = std::max(diff, std::fabs(static_cast<double>(x.weight.data()[i]) - want[i]));
        largest = std::max(largest, std::fabs(want[i]));
    }
    return diff / largest;
}

void compare_with_oracle(const std::string& model, const std::string& config) {
    dec::weights w = dec::load_model(oracle_dir() / model);
    const auto masks = run_driver(w, batches_of(model), options_of(config));
    dec::calibration_run view(w, batches_of(model), 1);
    std::size_t checked = 0;
    double worst = 0;
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        for (const dec::calibration_linear& x : view.linears(l)) {
            INFO(model << " " << config << " " << x.name);
            const fs::path base = oracle_dir() / model / config / x.name;
            const auto kept = read_raw<std::uint8_t>(fs::path(base.string() + ".kept"));
            CHECK(masks.at(x.name).to_bytes() == kept);
            const double error = weight_error(x, read_raw<double>(fs::path(base.string() + ".weight")));
            worst = std::max(worst, error);
            const bool updated = config.rfind("sparsegpt", 0) == 0 || config.find("_rec") != std::string::npos;
            CHECK(error <= (updated ? 1e-4 : 1e-6));
            ++checked;
        }
    }
    CHECK(checked == masks.size());
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("%-6s %-16s worst weight error %.3g\n", model.c_str(), config.c_str(), worst);
}

}  // namespace

TEST_CASE("prune_layers on a Llama and a GPT-2 matches the reference protocol in PyTorch", "[sparsify][calibrate][torch]") {
    for (const char* model : {"llama", "gpt2"}) {
        for (const char* config : {"wanda_50", "wanda_24", "wanda_48_dense", "sparsegpt_50", "sparsegpt_24", "magnitude_50",
                                   "wanda_layer_50", "wanda_rec_50", "magnitude_rec_24"}) {
            compare_with_oracle(model, config);
        }
    }
}

namespace {

/// The Wanda masks (50% per row) of layer l's linears from a forward pass of `w` over every
/// calibration sequence at once, with a cache: the column norms of each linear's recorded input.
std::vector<prune::element_mask> forward_masks(dec::weights& w, std::size_t l, const std::vector<dec::sequences>& batches) {
    dec::sequences all;
    for (const auto& b : batches)
        for (int s = 0; s < b.count(); ++s)
            all.add(std::span<const std::int32_t>(b.tokens).subspan(static_cast<std::size_t>(b.offsets[static_cast<std::size_t>(s)]),
                                                                     static_cast<std::size_t>(b.length(s))));
    dec::workspace ws(1);
    dec::forward_cache cache;
    dec::forward_options fo;
    fo.cache = &cache;
    static_cast<void>(dec::forward(w, all, ws, fo));
    std::vector<prune::element_mask> out;
    const auto T = static_cast<std::size_t>(all.total());
    for (const dec::layer_linear& x : dec::layer_linears(w, l)) {
        const std::vector<float>& in = cache.layers[l].*x.input;
        const auto cols = static_cast<std::size_t>(x.cols);
        std::vector<float> norms(cols);
        for (std::size_t j = 0; j < cols; ++j) {
            double s = 0;
            for (std::size_t t = 0; t < T; ++t) s += static_cast<double>(in[t * cols + j]) * in[t * cols + j];
            norms[j] = static_cast<float>(std::sqrt(s));
        }
        const auto weight = prune::make_view<float>(x.weight, {static_cast<std::size_t>(x.rows), cols});
        const sp::wanda_scores scores(weight, norms);
        const std::vector<prune::score_source> one{scores.source()};
        out.push_back(sp::choose_masks(one, {.sparsity = 0.5})[0]);
    }
    return out;
}

}  // namespace

TEST_CASE("prune_layers calibrates layer l on the outputs of the pruned layers < l", "[sparsify][calibrate]") {
    for (const char* model : {"llama", "gpt2"}) {
        INFO(model);
        const auto batches = batches_of(model);
        const dec::weights original = dec::load_model(oracle_dir() / model);
        dec::weights pruned = original;
        const auto masks = run_driver(pruned, batches, options_of("wanda_50"), 1);
        dec::weights dense_pruned = original;
        sp::calibration_options dense = options_of("wanda_50");
        dense.dense_inputs = true;
        const auto dense_masks = run_driver(dense_pruned, batches, dense, 1);
        for (std::size_t l = 0; l < original.layers.size(); ++l) {
            INFO("layer " << l);
            dec::weights hybrid = original;  // layers < l pruned, layers >= l dense
            for (std::size_t k = 0; k < l; ++k) hybrid.layers[k] = pruned.layers[k];
            const auto expected = forward_masks(hybrid, l, batches);
            dec::weights dense_model = original;
            const auto on_dense = forward_masks(dense_model, l, batches);
            const auto linears = dec::layer_linears(hybrid, l);
            std::size_t differ = 0;
            for (std::size_t t = 0; t < linears.size(); ++t) {
                INFO(linears[t].name);
                CHECK(masks.at(linears[t].name) == expected[t]);
                CHECK(dense_masks.at(linears[t].name) == on_dense[t]);
                differ += masks.at(linears[t].name) == dense_masks.at(linears[t].name) ? 0 : 1;
            }
            // Layer 0 sees the embeddings either way; later layers see other inputs once layer 0 is pruned.
            if (l == 0) CHECK(differ == 0);
            else CHECK(differ == linears.size());
        }
    }
}

TEST_CASE("prune_layers refuses a target that does not fit before pruning anything", "[sparsify][calibrate]") {
    const auto batches = batches_of("llama");
    const dec::weights original = dec::load_model(oracle_dir() / "llama");
    auto refused = [&](sp::calibration_options o) {
        dec::weights w = original;
        dec::calibration_run run(w, batches, 1);
        const std::string message = sparsify_test::error_of([&] { static_cast<void>(sp::prune_layers(run, o)); });
        CHECK(w.layers[0].qkv == original.layers[0].qkv);
        CHECK(w.layers[1].down == original.layers[1].down);
        return message;
    };
    sp::calibration_options o = options_of("wanda_50");
    o.target.sparsity = 1.0;
    CHECK_THAT(refused(o), Catch::Contains("sparsity 1.000000"));
    o = options_of("wanda_50");
    o.target.nm = prune::nm_pattern{3, 3};
    CHECK_THAT(refused(o), Catch::Contains("N:M pattern kept 3 of 3"));
    o.target.nm = prune::nm_pattern{2, 64};  // q_proj of layer 0 is 32 wide
    CHECK_THAT(refused(o), Catch::Contains("do not divide the width 32"));
    o = options_of("wanda_50");
    o.target.group = sp::comparison_group::global;
    CHECK_THAT(refused(o), Catch::Contains("global comparison group with wanda"));
    o = options_of("sparsegpt_50");
    o.reconstruct = true;
    CHECK_THAT(refused(o), Catch::Contains("reconstruct with sparsegpt"));
    dec::weights w = original;
    dec::calibration_run empty(w, {}, 1);
    o = options_of("wanda_50");
    CHECK_THAT(sparsify_test::error_of([&] { static_cast<void>(sp::prune_layers(empty, o)); }),
               Catch::Contains("no calibration tokens"));
    CHECK(w.layers[0].qkv == original.layers[0].qkv);
}

namespace {

/// calibration_run seen through prune_layers, counting what each call hands over.
struct counting_run {
    dec::calibration_run& run;
    std::size_t largest_visit = 0;  ///< most rows handed to the visitor at once
    std::size_t records = 0, advances = 0;

    std::size_t layers() const { return run.layers(); }
    std::size_t batches() const { return run.batches(); }
    std::size_t samples() const { return run.samples(); }
    std::uint64_t tokens() const { return run.tokens(); }
    auto linears(std::size_t l) { return run.linears(l); }
    template <class Visit>
    void record(std::size_t l, std::size_t b, bool advance, Visit&& visit) {
        ++records;
        run.record(l, b, advance, [&](std::size_t input, prune::tensor_view<const float> rows) {
            largest_visit = std::max(largest_visit, rows.extents()[0]);
            visit(input, rows);
        });
    }
    void advance(std::size_t l, std::size_t b) {
        ++advances;
        run.advance(l, b);
    }
};

}  // namespace

TEST_CASE("prune_layers runs one batch of one layer at a time", "[sparsify][calibrate]") {
    const auto batches = batches_of("llama");  // 2 batches: 25 and 33 tokens
    dec::weights w = dec::load_model(oracle_dir() / "llama");
    dec::calibration_run run(w, batches, 1);
    counting_run counted{run};
    const sp::calibration_result r = sp::prune_layers(counted, options_of("sparsegpt_50"));
    CHECK(r.tokens == 58);
    CHECK(counted.largest_visit == 33);  // the larger batch, never all 58 tokens
    CHECK(counted.records == 2 * 2);     // layers x batches, once each
    CHECK(counted.advances == 2 * 2);
    counting_run dense{run};
    sp::calibration_options o = options_of("wanda_50");
    o.dense_inputs = true;
    static_cast<void>(sp::prune_layers(dense, o));
    CHECK(dense.advances == 0);  // dense inputs: the recording pass's output is the next layer's input
    counting_run none{run};
    static_cast<void>(sp::prune_layers(none, options_of("magnitude_50")));
    CHECK(none.records + none.advances == 0);  // magnitude runs no batch
}

TEST_CASE("calibration_run::record hands over run_layer's cached inputs and output, bit for bit", "[sparsify][calibrate]") {
    // record runs the layer with taps (no layer_cache, down_proj skipped without advance); the
    // truth: run_layer with a layer_cache for the inputs, run_layer without one (inference,
    // forward's own bits, what advance runs) for the output.
    for (const std::string model : {"llama", "gpt2"}) {
        const auto batches = batches_of(model);
        dec::weights w = dec::load_model(oracle_dir() / model);
        dec::calibration_run run(w, batches, 2);
        dec::workspace ws(2);
        for (std::size_t l = 0; l < w.layers.size(); ++l) {
            for (std::size_t b = 0; b < batches.size(); ++b) {
                INFO(model << " layer " << l << " batch " << b);
                std::vector<float> h(run.stream(b).begin(), run.stream(b).end());
                std::vector<float> cached = h;
                std::vector<float> embedded(h.size());
                dec::embed_sequences(w, batches[b], ws, embedded);  // positions and RoPE of batch b
                dec::layer_cache cache;
                dec::run_layer(w, l, batches[b], ws, cached, nullptr, &cache);
                dec::run_layer(w, l, batches[b], ws, h);
                std::vector<std::size_t> seen;
                auto compare = [&](std::size_t input, prune::tensor_view<const float> rows) {
                    seen.push_back(input);
                    const std::vector<float>& x = cache.*dec::calibration_inputs[input];
                    REQUIRE(rows.data().size() == x.size());
                    CHECK(std::equal(x.begin(), x.end(), rows.data().begin(), rows.data().end()));
                };
                run.record(l, b, false, compare);
                CHECK(seen == std::vector<std::size_t>{0, 1, 2, 3});
                run.record(l, b, true, compare);  // the stream advances to the layer's output
                const std::span<const float> advanced = run.stream(b);
                CHECK(std::equal(h.begin(), h.end(), advanced.begin(), advanced.end()));
            }
        }
    }
}

namespace {

/// calibration_run with every linear on an input number of its own: nothing shared, so
/// prune_layers factors each linear's Hessian separately.
struct unshared_run {
    dec::calibration_run& run;

    std::size_t layers() const { return run.layers(); }
    std::size_t batches() const { return run.batches(); }
    std::size_t samples() const { return run.samples(); }
    std::uint64_t tokens() const { return run.tokens(); }
    auto linears(std::size_t l) {
        auto out = run.linears(l);
        for (std::size_t t = 0; t < out.size(); ++t) out[t].input = t;
        return out;
    }
    template <class Visit>
    void record(std::size_t l, std::size_t b, bool advance, Visit&& visit) {
        const auto shared = run.linears(l);
        run.record(l, b, advance, [&](std::size_t input, prune::tensor_view<const float> rows) {
            for (std::size_t t = 0; t < shared.size(); ++t) {
                if (shared[t].input == input) visit(t, rows);
            }
        });
    }
    void advance(std::size_t l, std::size_t b) { run.advance(l, b); }
};

}  // namespace

TEST_CASE("prune_layers factors each shared input's Hessian once, with the bits of one factor per linear",
          "[sparsify][calibrate]") {
    for (const std::string model : {"llama", "gpt2"}) {
        for (const char* config : {"sparsegpt_50", "sparsegpt_24", "wanda_rec_50", "magnitude_rec_24"}) {
            INFO(model << " " << config);
            dec::weights shared = dec::load_model(oracle_dir() / model);
            dec::weights alone = shared;
            dec::calibration_run run_shared(shared, batches_of(model), 2);
            dec::calibration_run run_alone(alone, batches_of(model), 2);
            unshared_run unshared{run_alone};
            const auto a = sp::prune_layers(run_shared, options_of(config));
            const auto b = sp::prune_layers(unshared, options_of(config));
            REQUIRE(a.linears.size() == b.linears.size());
            for (std::size_t t = 0; t < a.linears.size(); ++t) CHECK(a.linears[t].mask == b.linears[t].mask);
            for (std::size_t l = 0; l < shared.layers.size(); ++l) {
                CHECK(shared.layers[l].qkv == alone.layers[l].qkv);
                CHECK(shared.layers[l].up == alone.layers[l].up);
                CHECK(shared.layers[l].out == alone.layers[l].out);
                CHECK(shared.layers[l].down == alone.layers[l].down);
            }
        }
    }
}
