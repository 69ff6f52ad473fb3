// The PyTorch oracle for the runtime (include/prune/nn/): tests/nn/oracle.py computes every kernel
// and the packed attention from torch's own operations, with autograd gradients, in float32 and
// float64 from the same float32 inputs; here our float path must match torch's float32 and our
// double path torch's float64.
//
// Tolerances. double: 1e-12 relative to max(1, |expected|) (only the summation order differs).
// float: 1e-5 for outputs and 2e-5 for gradients, relative to max(1, |expected|): the two sides
// sum in different orders (16-lane sums vs torch's pairwise / BLAS sums) with ~6e-8 relative
// rounding per operation, over sums of up to a few hundred terms; our erf is Eigen's rational
// approximation (a few ulp) and torch's its own. Observed worst: 7e-7 (a gate gradient, a sum
// over a sequence's rows of dot products), so the bounds leave ~15-30x room for other BLAS /
// CPU kernels without hiding a real error (a wrong mask or head map gives O(0.1-1)).
#include <prune/nn/attention.hpp>
#include <prune/nn/kernels.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace prune;

namespace {

const fs::path& oracle_dir() {
    static const fs::path dir = [] {
        const fs::path d = fs::path(PRUNE_BINARY_DIR) / "tests" / "nn" / "oracle_out";
        fs::remove_all(d);
        const std::string command =
            std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/nn/oracle.py " + d.string();
        REQUIRE(std::system(command.c_str()) == 0);
        return d;
    }();
    return dir;
}

nlohmann::json load(const std::string& name) {
    std::ifstream in(oracle_dir() / (name + ".json"));
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
}

template <class S>
std::vector<S> values(const nlohmann::json& array) {
    std::vector<S> out;
    for (const auto& v : array) out.push_back(static_cast<S>(v.get<double>()));
    return out;
}

template <class S>
constexpr const char* dtype_key() {
    return std::is_same_v<S, float> ? "float32" : "float64";
}

// |got - want| <= tol * max(1, |want|) for every element; the message names the worst one.
template <class S>
void check_close(const std::vector<S>& got, const nlohmann::json& want, double tol, const std::string& what) {
    REQUIRE(got.size() == want.size());
    double worst = 0.0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double w = want[i].get<double>();
        const double err = std::abs(static_cast<double>(got[i]) - w) / std::max(1.0, std::abs(w));
        if (err > worst) {
            worst = err;
            at = i;
        }
    }
    INFO(what << ": worst relative error " << worst << " at " << at);
    if (std::getenv("PRUNE_TEST_VERBOSE")) std::printf("%-40s %.3g\n", what.c_str(), worst);
    CHECK(worst <= tol);
}

template <class S>
double forward_tol() {
    return std::is_same_v<S, float> ? 1e-5 : 1e-12;
}
template <class S>
double gradient_tol() {
    return std::is_same_v<S, float> ? 2e-5 : 1e-12;
}

// Runs a row kernel case: forward(x_row, ..., y_row) and backward into the named gradients.
template <class S>
void check_norms() {
    nn::thread_pool pool(1);
    for (const std::string name : {"layer_norm", "layer_norm_nobias", "rms_norm"}) {
        const auto c = load(name);
        const int rows = c["rows"], n = c["n"];
        const auto ns = static_cast<std::size_t>(n);
        const auto x = values<S>(c["inputs"]["x"]);
        const auto w = values<S>(c["inputs"]["w"]);
        const auto b = c["inputs"].contains("b") ? values<S>(c["inputs"]["b"]) : std::vector<S>{};
        const auto dy = values<S>(c["dy"]);
        const S eps = static_cast<S>(c["eps"].get<double>());
        std::vector<S> y(x.size()), xhat(x.size()), rstd(static_cast<std::size_t>(rows)), dx(x.size());
        std::vector<S> dw(ns, S{0}), db(ns, S{0});
        for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {
            const S* xr = x.data() + r * ns;
            if (name == "rms_norm") {
                nn::rms_norm_forward(xr, y.data() + r * ns, xhat.data() + r * ns, &rstd[r], w.data(), n, eps);
                nn::rms_norm_backward(dy.data() + r * ns, xhat.data() + r * ns, rstd[r], w.data(), dx.data() + r * ns, n);
            } else {
                nn::layer_norm_forward(xr, y.data() + r * ns, xhat.data() + r * ns, &rstd[r], w.data(),
                                       b.empty() ? nullptr : b.data(), n, eps);
                nn::layer_norm_backward(dy.data() + r * ns, xhat.data() + r * ns, rstd[r], w.data(), dx.data() + r * ns, n);
            }
        }
        nn::add_norm_parameter_grads(pool, static_cast<std::size_t>(rows), n, dy.data(), xhat.data(), dw.data(),
                                     b.empty() ? nullptr : db.data());
        const auto& want = c[dtype_key<S>()];
        check_close(y, want["y"], forward_tol<S>(), name + " y");
        check_close(dx, want["d_x"], gradient_tol<S>(), name + " dx");
        check_close(dw, want["d_w"], gradient_tol<S>(), name + " dw");
        if (!b.empty()) check_close(db, want["d_b"], gradient_tol<S>(), name + " db");
    }
}

template <class S>
void check_activations() {
    for (const std::string name : {"gelu", "gelu_tanh", "silu", "softmax"}) {
        const auto c = load(name);
        const int rows = c["rows"], n = c["n"];
        const auto ns = static_cast<std::size_t>(n);
        auto x = values<S>(c["inputs"]["x"]);
        const auto dy = values<S>(c["dy"]);
        const S k = name == "softmax" ? S{4} : S{3};  // the oracle scales its input
        std::vector<S> pre(x.size()), y(x.size()), dx = dy;
        for (std::size_t i = 0; i < x.size(); ++i) pre[i] = x[i] * k;
        for (std::size_t i = 0; i < x.size(); ++i) {
            if (name == "gelu") y[i] = nn::gelu(pre[i]);
            if (name == "gelu_tanh") y[i] = nn::gelu_tanh(pre[i]);
            if (name == "silu") y[i] = nn::silu(pre[i]);
        }
        if (name == "gelu") nn::gelu_backward(pre.data(), dx.data(), static_cast<int>(x.size()));
        if (name == "gelu_tanh") nn::gelu_tanh_backward(pre.data(), dx.data(), static_cast<int>(x.size()));
        if (name == "silu")
            for (std::size_t i = 0; i < x.size(); ++i) dx[i] *= nn::silu_derivative(pre[i]);
        if (name == "softmax") {
            y = pre;
            for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {
                nn::softmax_row(y.data() + r * ns, n);
                nn::softmax_backward_row(y.data() + r * ns, dx.data() + r * ns, n);
            }
        }
        for (auto& g : dx) g *= k;  // chain rule through the oracle's scaling
        const auto& want = c[dtype_key<S>()];
        check_close(y, want["y"], forward_tol<S>(), name + " y");
        check_close(dx, want["d_x"], gradient_tol<S>(), name + " dx");
    }
    const auto c = load("swiglu");
    const auto g = values<S>(c["inputs"]["g"]), u = values<S>(c["inputs"]["u"]), dy = values<S>(c["dy"]);
    const int n = static_cast<int>(g.size());
    std::vector<S> y(g.size()), dg(g.size()), du(g.size());
    nn::swiglu(g.data(), u.data(), y.data(), n);
    nn::swiglu_backward(g.data(), u.data(), dy.data(), dg.data(), du.data(), n);
    const auto& want = c[dtype_key<S>()];
    check_close(y, want["y"], forward_tol<S>(), "swiglu y");
    check_close(dg, want["d_g"], gradient_tol<S>(), "swiglu dgate");
    check_close(du, want["d_u"], gradient_tol<S>(), "swiglu dup");
}

template <class S>
void check_rope() {
    const auto c = load("rope");
    const int heads = c["heads"], d = c["d"];
    const auto positions = c["positions"].get<std::vector<int>>();
    const auto width = static_cast<std::size_t>(heads * d);
    auto y = values<S>(c["inputs"]["x"]);
    auto dx = values<S>(c["dy"]);
    const auto inv_freq = nn::rope_inverse_frequencies(d, c["theta"].get<double>());
    // Our inverse frequencies are HF's float32 values exactly.
    check_close(inv_freq, c["inv_freq"], 0.0, "rope inv_freq");
    const auto table = nn::rope_table<S>::make(inv_freq, 4096);
    for (std::size_t r = 0; r < positions.size(); ++r) {
        nn::rope_row(y.data() + r * width, heads, table, positions[r]);
        nn::rope_row(dx.data() + r * width, heads, table, positions[r], true);
    }
    const auto& want = c[dtype_key<S>()];
    check_close(y, want["y"], forward_tol<S>(), "rope y");
    check_close(dx, want["d_x"], forward_tol<S>(), "rope dx");
}

template <class S>
void check_cross_entropy() {
    const auto c = load("cross_entropy");
    const int rows = c["rows"], vocab = c["vocab"];
    const auto targets = c["targets"].get<std::vector<int>>();
    const S scale = static_cast<S>(c["scale"].get<double>());
    auto z = values<S>(c["inputs"]["z"]);
    const auto vs = static_cast<std::size_t>(vocab);
    std::vector<S> loss_only, loss;
    for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {  // without a gradient: logits untouched
        loss_only.push_back(static_cast<S>(nn::cross_entropy_row<S>(z.data() + r * vs, vocab, targets[r], scale, nullptr)));
    }
    CHECK(z == values<S>(c["inputs"]["z"]));
    for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {  // in place: the logits become the gradient
        loss.push_back(static_cast<S>(nn::cross_entropy_row<S>(z.data() + r * vs, vocab, targets[r], scale, z.data() + r * vs)));
    }
    CHECK(loss == loss_only);
    const auto& want = c[dtype_key<S>()];
    check_close(loss, want["loss"], forward_tol<S>(), "cross-entropy loss");
    check_close(z, want["d_z"], gradient_tol<S>(), "cross-entropy dz");
}

// Offsets of rows per sequence.
std::vector<std::int64_t> offsets_of(const std::vector<int>& counts) {
    std::vector<std::int64_t> out{0};
    for (int n : counts) out.push_back(out.back() + n);
    return out;
}

template <class S>
void check_attention(const std::string& name, int threads) {
    const auto c = load(name);
    const auto lengths = c["lengths"].get<std::vector<int>>();
    const auto query_rows = c["query_rows"].get<std::vector<int>>();
    const auto positions = c["positions"].get<std::vector<std::int64_t>>();
    const int Hq = c["q_heads"], Hkv = c["kv_heads"], d = c["d"];
    const auto q_off = offsets_of(query_rows), kv_off = offsets_of(lengths);
    const auto q = values<S>(c["inputs"]["q"]), k = values<S>(c["inputs"]["k"]), v = values<S>(c["inputs"]["v"]);
    const auto gates = values<S>(c["inputs"]["gates"]);
    auto d_gated = values<S>(c["inputs"]["d_gated"]);
    nn::attention_layout layout;
    layout.q_offsets = q_off;
    layout.kv_offsets = kv_off;
    layout.q_positions = positions;
    layout.q_heads = Hq;
    layout.kv_heads = Hkv;
    layout.head_dim = d;
    layout.causal = c["causal"].get<bool>();
    std::vector<S> context(q.size()), gated(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<double> dgates(lengths.size() * static_cast<std::size_t>(Hq), 0.0);
    nn::attention_tensors<S> t;
    t.q = q.data(), t.ldq = Hq * d, t.k = k.data(), t.ldk = Hkv * d, t.v = v.data(), t.ldv = Hkv * d;
    t.context = context.data(), t.ldc = Hq * d, t.gated = gated.data(), t.ldg = Hq * d, t.gates = gates;
    t.d_gated = d_gated.data(), t.ldd = Hq * d, t.dq = dq.data(), t.lddq = Hq * d, t.dk = dk.data(), t.lddk = Hkv * d;
    t.dv = dv.data(), t.lddv = Hkv * d, t.gate_grads = dgates.data(), t.gate_stride = static_cast<std::size_t>(Hq);
    nn::thread_pool pool(threads);
    nn::attention_workspace<S> ws;
    nn::attention_forward(pool, layout, t, ws);
    nn::attention_backward(pool, layout, t, ws);
    const auto& want = c[dtype_key<S>()];
    INFO(name << ", " << threads << " threads");
    check_close(context, want["context"], forward_tol<S>(), "context");
    check_close(gated, want["gated"], forward_tol<S>(), "gated context");
    check_close(dq, want["d_q"], gradient_tol<S>(), "dQ");
    check_close(dk, want["d_k"], gradient_tol<S>(), "dK");
    check_close(dv, want["d_v"], gradient_tol<S>(), "dV");
    check_close(dgates, want["d_gates"], gradient_tol<S>(), "gate gradients per sequence");
}

const char* const attention_cases[] = {"attn_bidirectional_mha", "attn_causal_mha",  "attn_causal_gqa2",
                                       "attn_causal_gqa4",       "attn_bidirectional_gqa4", "attn_first_rows",
                                       "attn_decode_gqa2"};

}  // namespace

TEST_CASE("LayerNorm (with and without bias) and RMSNorm match torch, forward and backward", "[nn][torch]") {
    check_norms<float>();
    check_norms<double>();
}

TEST_CASE("GELU (erf and tanh), SiLU, SwiGLU and softmax match torch, forward and backward", "[nn][torch]") {
    check_activations<float>();
    check_activations<double>();
}

TEST_CASE("RoPE (HF rotate_half) matches torch, forward and backward", "[nn][torch]") {
    check_rope<float>();
    check_rope<double>();
}

TEST_CASE("row cross-entropy matches torch, loss and gradient", "[nn][torch]") {
    check_cross_entropy<float>();
    check_cross_entropy<double>();
}

TEST_CASE("packed attention matches torch: causal / bidirectional, GQA 1, 2, 4, gates, lengths with 1", "[nn][torch]") {
    for (const char* name : attention_cases) {
        for (int threads : {1, 2}) {
            check_attention<float>(name, threads);
            check_attention<double>(name, threads);
        }
    }
}
