// The decoders' backward pass (include/prune/models/decoder/backward.hpp) against autograd in
// tests/decoder/oracle.py (float64 PyTorch, the same stored weights): on the six oracle cases
// (GQA ratios 1, 2, 4 and one K/V head; head_dim != hidden / heads; tied and untied lm_head;
// q/k/v/o and MLP biases; llama3 / linear RoPE; GPT-2 with and without the prefix; sequences of
// 1 token and of max_position_embeddings; gates with a head, a K/V group and an MLP off):
//   - the batch loss (mean NLL over every predicted token),
//   - the gradient of every parameter (named as Hugging Face names it; Conv1D compared in the
//     file's [in, out] layout), error relative to the largest |gradient| of that tensor,
//   - the batch gradients of every query-head, KV-group and MLP gate,
//   - each sequence's own gate gradients (loss_reduction::sequence_means, one pass),
//   - 1 vs 2 threads bit-identical;
// and central finite differences of the float32 forward pass on a few gate gradients.
// Tolerances come from the observed errors (PRUNE_TEST_VERBOSE=1 prints them), see below.
#include <prune/models/decoder/backward.hpp>
#include <prune/models/decoder/checkpoint.hpp>

#include "oracle_cases.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace prune;

namespace {

// Observed worst errors (float32 pass vs float64 autograd; PRUNE_TEST_VERBOSE prints them):
// parameters 4.2e-7..8.9e-7 per case, gates 1.9e-8..2.2e-6; the bounds leave ~10x.
constexpr double parameter_tolerance = 1e-5;  // per tensor, relative to its largest |gradient|
constexpr double gate_tolerance = 2e-5;       // relative to max(1e-3, largest |gate gradient| of that kind)

bool verbose() { return std::getenv("PRUNE_TEST_VERBOSE") != nullptr; }

/// max |got - want| / max(floor, max |want|).
double relative_error(const std::vector<double>& got, const std::vector<double>& want, double floor = 1e-30) {
    REQUIRE(got.size() == want.size());
    double worst = 0.0, scale = floor;
    for (std::size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::abs(got[i] - want[i]));
        scale = std::max(scale, std::abs(want[i]));
    }
    return worst / scale;
}

/// A nested JSON array of numbers, flattened in order.
std::vector<double> flat(const nlohmann::json& j) {
    std::vector<double> out;
    if (!j.is_array()) {
        out.push_back(j.get<double>());
        return out;
    }
    for (const auto& x : j) {
        const auto part = flat(x);
        out.insert(out.end(), part.begin(), part.end());
    }
    return out;
}

/// A parameter's gradient in the checkpoint's layout (Conv1D transposed back to [in, out]).
std::vector<double> file_layout(const decoder::parameter& p) {
    std::vector<double> out(p.size());
    const auto v = p.values();
    if (!p.transposed) {
        std::copy(v.begin(), v.end(), out.begin());
        return out;
    }
    const auto rows = static_cast<std::size_t>(p.shape[0]), cols = static_cast<std::size_t>(p.shape[1]);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) out[c * rows + r] = v[r * cols + c];
    return out;
}

/// Sum over the sequences of the per-sequence rows (the batch gradient).
std::vector<double> totals(const std::vector<double>& rows, std::size_t width) {
    std::vector<double> out;
    decoder::gate_gradients::totals(rows, width, out);
    return out;
}

struct pass_output {
    double loss = 0.0;
    decoder::weights grads;
    decoder::gate_gradients gates;
};

pass_output run(const decoder::weights& w, const decoder::sequences& seq, const decoder::gates& g, int threads,
                decoder::loss_reduction how, bool parameters = true) {
    decoder::workspace ws(threads);
    decoder::training_workspace tw;
    pass_output out;
    out.grads = decoder::zero_gradients(w);
    decoder::training_options o;
    o.reduction = how;
    o.parameter_gradients = parameters;
    out.loss = decoder::train_pass(w, seq, ws, tw, &out.grads, o, &g);
    out.gates = tw.gates;
    return out;
}

void check_gates(const std::string& what, const decoder::gate_gradients& got, const nlohmann::json& want, bool batch,
                 std::size_t row = 0) {
    auto pick = [&](const std::vector<double>& rows, std::size_t width) {
        if (batch) return totals(rows, width);
        return std::vector<double>(rows.begin() + static_cast<std::ptrdiff_t>(row * width),
                                   rows.begin() + static_cast<std::ptrdiff_t>((row + 1) * width));
    };
    const double heads = relative_error(pick(got.heads, got.total_heads()), flat(want["heads"]), 1e-3);
    const double kv = relative_error(pick(got.kv_groups, got.total_kv_groups()), flat(want["kv_groups"]), 1e-3);
    const double mlps = relative_error(pick(got.mlps, got.layers()), flat(want["mlps"]), 1e-3);
    if (verbose()) std::printf("  %-22s heads %.2g kv_groups %.2g mlps %.2g\n", what.c_str(), heads, kv, mlps);
    INFO(what << ": heads " << heads << ", kv_groups " << kv << ", mlps " << mlps);
    CHECK(heads <= gate_tolerance);
    CHECK(kv <= gate_tolerance);
    CHECK(mlps <= gate_tolerance);
}

void check_case(const std::string& name) {
    const nlohmann::json c = oracle::load(name), truth = oracle::load(name, "grads.json");
    const decoder::weights w = decoder::load_model(oracle::dir() / name);
    const decoder::sequences seq = oracle::sequences_of(c);
    const decoder::gates g = oracle::gates_of(c);
    if (verbose()) std::printf("%s\n", name.c_str());

    pass_output two = run(w, seq, g, 2, decoder::loss_reduction::token_mean);
    const double want_loss = truth["loss"].get<double>();
    INFO(name << ": loss " << two.loss << " vs " << want_loss);
    CHECK(std::abs(two.loss - want_loss) <= 1e-5 * std::abs(want_loss));

    double worst = 0.0;
    std::string worst_name;
    for (const auto& p : decoder::parameters(two.grads)) {
        INFO(p.name);
        REQUIRE(truth["params"].contains(p.name));
        const double e = relative_error(file_layout(p), truth["params"][p.name].get<std::vector<double>>());
        CHECK(e <= parameter_tolerance);
        if (e > worst) worst = e, worst_name = p.name;
    }
    if (verbose()) std::printf("  parameters: worst %.2g (%s)\n", worst, worst_name.c_str());
    check_gates("batch gates", two.gates, truth["gates"], true);

    // One thread: the same bits.
    pass_output one = run(w, seq, g, 1, decoder::loss_reduction::token_mean);
    CHECK(one.loss == two.loss);
    const auto a = decoder::parameters(one.grads), b = decoder::parameters(two.grads);
    for (std::size_t i = 0; i < a.size(); ++i) {
        INFO(a[i].name);
        CHECK(std::equal(a[i].values().begin(), a[i].values().end(), b[i].values().begin(), b[i].values().end()));
    }
    CHECK(one.gates.heads == two.gates.heads);
    CHECK(one.gates.kv_groups == two.gates.kv_groups);
    CHECK(one.gates.mlps == two.gates.mlps);

    // Each sequence's own gate gradients, from one pass with the summed per-sequence means.
    pass_output per = run(w, seq, g, 2, decoder::loss_reduction::sequence_means, false);
    for (std::size_t row = 0; row < static_cast<std::size_t>(seq.count()); ++row)
        check_gates("sequence " + std::to_string(row), per.gates, truth["per_sequence"][row], false, row);
    for (const auto& p : decoder::parameters(per.grads))  // parameter_gradients = false: untouched
        CHECK(std::all_of(p.values().begin(), p.values().end(), [](float v) { return v == 0.0f; }));
}

/// The token-mean loss of a forward pass (no cache) at gates g.
double loss_at(const decoder::weights& w, const decoder::sequences& seq, const decoder::gates& g, decoder::workspace& ws) {
    decoder::forward_options o;
    o.gate = &g;
    o.keep_logits = false;
    const decoder::forward_result r = decoder::forward(w, seq, ws, o);
    return r.total_nll() / static_cast<double>(r.total_predicted());
}

}  // namespace

TEST_CASE("Llama backward, multi-head, untied", "[decoder][backward]") { check_case("llama_mha"); }
TEST_CASE("Llama backward, GQA 2, head_dim 12, tied, biases", "[decoder][backward]") { check_case("llama_gqa2_tied_bias_f16"); }
TEST_CASE("Llama backward, GQA 4, llama3 RoPE", "[decoder][backward]") { check_case("llama_gqa4_bf16_shards"); }
TEST_CASE("Llama backward, one K/V head, linear RoPE", "[decoder][backward]") { check_case("llama_linear_rope"); }
TEST_CASE("GPT-2 backward with the prefix, gated", "[decoder][backward]") { check_case("gpt2_prefix"); }
TEST_CASE("GPT-2 backward without the prefix", "[decoder][backward]") { check_case("gpt2_noprefix_f16"); }

// Central differences of the float32 forward pass (the model computes in float only) on gate
// gradients, Richardson-extrapolated from steps 0.05 and 0.1 (the float rounding of the loss,
// ~1e-6, swamps a small step: at h = 0.01 one probe was off by 2.2e-3). Observed worst 4e-4
// relative to max(|g|, 1e-2); bound 2e-3.
TEST_CASE("Gate gradients against finite differences", "[decoder][backward]") {
    for (const std::string name : {"llama_gqa4_bf16_shards", "gpt2_prefix"}) {
        const nlohmann::json c = oracle::load(name);
        const decoder::weights w = decoder::load_model(oracle::dir() / name);
        const decoder::sequences seq = oracle::sequences_of(c);
        decoder::gates g = oracle::gates_of(c);
        const pass_output out = run(w, seq, g, 2, decoder::loss_reduction::token_mean, false);
        decoder::workspace ws(2);
        auto central = [&](float& gate, float h) {
            const float keep = gate;
            gate = keep + h;
            const double up = loss_at(w, seq, g, ws);
            gate = keep - h;
            const double down = loss_at(w, seq, g, ws);
            gate = keep;
            return (up - down) / (2.0 * static_cast<double>(h));
        };
        // Richardson: (4 D(h) - D(2h)) / 3 cancels the h^2 term.
        auto difference = [&](float& gate) { return (4.0 * central(gate, 5e-2f) - central(gate, 1e-1f)) / 3.0; };
        const std::size_t L = w.layers.size();
        const std::vector<double> heads = totals(out.gates.heads, out.gates.total_heads());
        const std::vector<double> kv = totals(out.gates.kv_groups, out.gates.total_kv_groups());
        const std::vector<double> mlps = totals(out.gates.mlps, out.gates.layers());
        struct probe {
            const char* kind;
            float* gate;
            double analytic;
        };
        const auto Hq = static_cast<std::size_t>(w.layers[0].q_heads), Hkv = static_cast<std::size_t>(w.layers[0].kv_heads);
        const std::vector<probe> probes{
            {"heads[0][0]", &g.heads[0][0], heads[0]},
            {"heads[L-1][last]", &g.heads[L - 1][Hq - 1], heads[(L - 1) * Hq + Hq - 1]},
            {"kv_groups[0][last]", &g.kv_groups[0][Hkv - 1], kv[Hkv - 1]},
            {"mlps[0]", &g.mlps[0], mlps[0]},
            {"mlps[L-1] (gated off)", &g.mlps[L - 1], mlps[L - 1]},
        };
        for (const probe& p : probes) {
            const double fd = difference(*p.gate);
            const double e = std::abs(fd - p.analytic) / std::max(std::abs(p.analytic), 1e-2);
            if (verbose()) std::printf("%s %-22s analytic %.6g fd %.6g rel %.2g\n", name.c_str(), p.kind, p.analytic, fd, e);
            INFO(name << " " << p.kind << ": analytic " << p.analytic << ", finite difference " << fd);
            CHECK(e <= 2e-3);
        }
    }
}

TEST_CASE("Training pass refusals", "[decoder][backward]") {
    decoder::config cfg = decoder::read_config(oracle::dir() / "llama_mha" / "config.json");
    const decoder::weights w = decoder::random_weights(cfg, 1);
    decoder::weights other = decoder::random_weights([&] {
        decoder::config c = cfg;
        c.intermediate_size += 1;
        return c;
    }(), 2);
    decoder::workspace ws(1);
    decoder::training_workspace tw;
    decoder::sequences seq;
    seq.add(std::vector<std::int32_t>{1, 2, 3});
    CHECK_THROWS_WITH(decoder::train_pass(w, seq, ws, tw, &other), Catch::Matchers::Contains("not shaped like the model"));
    decoder::sequences empty;
    CHECK_THROWS_WITH(decoder::train_pass(w, empty, ws, tw), Catch::Matchers::Contains("no sequences"));
    seq.add(std::vector<std::int32_t>{1, 99});
    CHECK_THROWS_WITH(decoder::train_pass(w, seq, ws, tw), Catch::Matchers::Contains("token id 99"));
}

// The per-layer entry points (calibration: embed_sequences, run_layer, layer_linears): running
// the layers one at a time records the forward pass's activations bit for bit, and each
// prunable linear's input is the cache member layer_linears names, [tokens, in].
TEST_CASE("Layers one at a time, and the inputs of every linear", "[decoder][backward]") {
    for (const std::string name : {"llama_gqa2_tied_bias_f16", "gpt2_prefix"}) {
        INFO(name);
        const nlohmann::json c = oracle::load(name);
        decoder::weights w = decoder::load_model(oracle::dir() / name);
        const decoder::sequences seq = oracle::sequences_of(c);
        const decoder::gates g = oracle::gates_of(c);
        decoder::workspace ws(2);
        decoder::forward_cache full;
        decoder::forward_options o;
        o.gate = &g;
        o.cache = &full;
        (void)decoder::forward(w, seq, ws, o);
        const auto T = static_cast<std::size_t>(seq.total());
        std::vector<float> h(T * static_cast<std::size_t>(w.cfg.hidden_size));
        decoder::embed_sequences(w, seq, ws, h);
        for (std::size_t l = 0; l < w.layers.size(); ++l) {
            decoder::layer_cache one;
            decoder::run_layer(w, l, seq, ws, h, &g, &one);
            CHECK(one.x1 == full.layers[l].x1);
            CHECK(one.gated == full.layers[l].gated);
            CHECK(one.x2 == full.layers[l].x2);
            CHECK(one.act == full.layers[l].act);
            CHECK(one.mlp_out == full.layers[l].mlp_out);
            const auto linears = decoder::layer_linears(w, l);
            CHECK(linears.size() == (w.cfg.is_llama() ? 7u : 4u));
            for (const auto& lin : linears) {
                INFO(lin.name);
                CHECK((one.*lin.input).size() == T * static_cast<std::size_t>(lin.cols));
            }
        }
    }
}
