// Tests for prune/models/bert/backward.hpp: central finite differences in double precision
// (the training pass is templated on the scalar; basic_weights<double>) for every parameter
// kind and for the head and MLP gates, with and without dropout, on full and pruned shapes;
// per-example gate gradients against separate single-sequence passes; float vs double.
#include <prune/models/bert/backward.hpp>

#include "../support/tiny_bert.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace prune::bert;

namespace {
// 2 layers x 2 heads, hidden 8, FFN 12, vocab 23, 16 positions: small enough for finite
// differences in double over every tensor.
config tiny_config(int labels) { return prune_test::small_config(2, 8, 2, 12, 23, labels); }

// The name of tensor p in for_each_tensor's order (qkv is one stacked tensor there).
std::string tensor_name(std::size_t p, std::size_t layers) {
    static const char* const head[] = {"word_embeddings", "position_embeddings", "token_type_embeddings",
                                       "embedding_norm.weight", "embedding_norm.bias"};
    static const char* const layer[] = {"qkv.weight", "qkv.bias", "attention_output.weight", "attention_output.bias",
                                        "attention_norm.weight", "attention_norm.bias", "intermediate.weight",
                                        "intermediate.bias", "output.weight", "output.bias", "output_norm.weight",
                                        "output_norm.bias"};
    static const char* const tail[] = {"pooler.weight", "pooler.bias", "classifier.weight", "classifier.bias"};
    if (p < 5) return head[p];
    p -= 5;
    if (p < 12 * layers) return "layers." + std::to_string(p / 12) + "." + layer[p % 12];
    p -= 12 * layers;
    return p < 4 ? tail[p] : "tensor " + std::to_string(p + 5 + 12 * layers);
}

// How close two gradient sets must be. per_tensor: each tensor's largest |a - b| <= rel *
// (its largest |b|) + margin; per_element: every element a == Approx(b).epsilon(rel).margin(margin).
// The head gate totals are compared element by element with gate_rel / gate_margin.
struct tolerance {
    enum kind_t { per_tensor, per_element } kind;
    double rel, margin, gate_rel, gate_margin;
};

// Compares every tensor of gradients `a` with reference `b` (same shapes), and the batch totals
// of the head gate gradients, within `tol`.
template <class A, class B>
void compare_gradients(const A& a, const gate_gradients& a_gates, const B& b, const gate_gradients& b_gates,
                       const tolerance& tol) {
    std::vector<std::vector<double>> ta, tb;  // each tensor's elements, widened to double
    for_each_tensor(a, [&](const auto& t) { ta.emplace_back(t.data(), t.data() + t.size()); });
    for_each_tensor(b, [&](const auto& t) { tb.emplace_back(t.data(), t.data() + t.size()); });
    REQUIRE(ta.size() == tb.size());
    for (std::size_t p = 0; p < ta.size(); ++p) {
        INFO(tensor_name(p, a.layers.size()));
        REQUIRE(ta[p].size() == tb[p].size());
        if (tol.kind == tolerance::per_element) {
            for (std::size_t i = 0; i < ta[p].size(); ++i) {
                INFO("element " << i);
                CHECK(ta[p][i] == Approx(tb[p][i]).epsilon(tol.rel).margin(tol.margin));
            }
        } else {
            double max_abs = 0, max_err = 0;
            for (std::size_t i = 0; i < ta[p].size(); ++i) {
                max_abs = std::max(max_abs, std::abs(tb[p][i]));
                max_err = std::max(max_err, std::abs(ta[p][i] - tb[p][i]));
            }
            CHECK(max_err <= tol.rel * max_abs + tol.margin);
        }
    }
    REQUIRE(a_gates.total_heads == b_gates.total_heads);
    for (std::size_t i = 0; i < b_gates.total_heads; ++i) {
        INFO("head gate " << i);
        CHECK(a_gates.head_total(i) == Approx(b_gates.head_total(i)).epsilon(tol.gate_rel).margin(tol.gate_margin));
    }
}

packed_batch tiny_batch() {
    packed_batch batch;
    const std::vector<std::vector<int>> rows{{2, 5, 7, 9, 3}, {2, 11, 4}, {2, 8, 8, 1, 6, 13}};
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::vector<std::int32_t> ids(rows[r].begin(), rows[r].end()), types(ids.size(), 0), mask(ids.size(), 1);
        for (std::size_t i = ids.size() / 2; i < ids.size(); ++i) types[i] = 1;
        if (r == 0) mask.back() = 0;  // a padded position
        batch.add(ids, types, mask);
    }
    return batch;
}

struct fd_case {
    config cfg;
    bool dropout;
    gate_values gates;
};

// Checks analytic gradients of every tensor (a few sampled entries each) and of every gate.
void check_gradients(const fd_case& k, std::uint64_t seed) {
    const weights wf = random_weights(k.cfg, seed, 0.4f);
    basic_weights<double> w = cast_weights<double>(wf);
    const packed_batch batch = tiny_batch();
    const std::vector<int> classes{1, 0, static_cast<int>(k.cfg.num_labels > 2 ? 2 : 1)};
    const std::vector<float> values{0.5f, -1.0f, 2.0f};
    batch_labels labels;
    if (k.cfg.num_labels == 1) labels.values = values; else labels.classes = classes;
    training_options o;
    o.dropout = k.dropout;
    o.hidden_dropout = 0.2f;
    o.attention_dropout = 0.3f;
    o.seed = 99;
    training_workspace<double> ws;
    basic_weights<double> g = zeros_like(w);
    train_pass(w, batch, labels, &k.gates, ws, &g, o);
    const gate_gradients gates = ws.gates();

    auto loss = [&](const basic_weights<double>& ww, const gate_values& gv) {
        training_workspace<double> w2;
        return train_pass<basic_weights<double>>(ww, batch, labels, &gv, w2, nullptr, o);
    };
    const double h = 1e-6;
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::vector<double*> params, grads_of;
    std::vector<std::size_t> sizes;
    for_each_tensor(w, [&](auto& t) { params.push_back(t.data()); sizes.push_back(static_cast<std::size_t>(t.size())); });
    for_each_tensor(g, [&](auto& t) { grads_of.push_back(t.data()); });
    int checked = 0;
    for (std::size_t p = 0; p < params.size(); ++p) {
        if (sizes[p] == 0) continue;
        for (int s = 0; s < 4; ++s) {
            std::size_t i = std::uniform_int_distribution<std::size_t>(0, sizes[p] - 1)(rng);
            if (p == 0) i = static_cast<std::size_t>(5 * k.cfg.hidden_size + s);  // a word that occurs
            const double saved = params[p][i];
            params[p][i] = saved + h;
            const double up = loss(w, k.gates);
            params[p][i] = saved - h;
            const double down = loss(w, k.gates);
            params[p][i] = saved;
            const double fd = (up - down) / (2 * h);
            INFO("tensor " << p << " element " << i);
            CHECK(grads_of[p][i] == Approx(fd).epsilon(1e-5).margin(1e-8));
            ++checked;
        }
    }
    CHECK(checked > 60);
    // Gates.
    std::size_t flat = 0;
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        for (int hh = 0; hh < w.layers[l].heads; ++hh, ++flat) {
            gate_values up = k.gates, down = k.gates;
            if (up.heads.empty()) {
                for (const auto& L : w.layers) up.heads.emplace_back(static_cast<std::size_t>(L.heads), 1.0);
                down = up;
            }
            up.heads[l][static_cast<std::size_t>(hh)] += h;
            down.heads[l][static_cast<std::size_t>(hh)] -= h;
            const double fd = (loss(w, up) - loss(w, down)) / (2 * h);
            INFO("head gate " << l << "," << hh);
            CHECK(gates.head_total(flat) == Approx(fd).epsilon(1e-5).margin(1e-9));
        }
        gate_values up = k.gates, down = k.gates;
        if (up.mlps.empty()) {
            up.mlps.assign(w.layers.size(), 1.0);
            down = up;
        }
        up.mlps[l] += h;
        down.mlps[l] -= h;
        const double fd = (loss(w, up) - loss(w, down)) / (2 * h);
        INFO("mlp gate " << l);
        CHECK(gates.mlp_total(l) == Approx(fd).epsilon(1e-5).margin(1e-9));
    }
}
}  // namespace

TEST_CASE("finite differences: every parameter and gate, classification", "[backward]") {
    check_gradients({tiny_config(3), false, {}}, 1);
}

TEST_CASE("finite differences with dropout on (fixed seed)", "[backward]") {
    check_gradients({tiny_config(3), true, {}}, 2);
}

TEST_CASE("finite differences: regression (MSE), gated-off heads and MLP, fractional gates", "[backward]") {
    gate_values gv;
    gv.heads = {{0.0, 1.0}, {0.7, 1.0}};
    gv.mlps = {1.0, 0.0};
    check_gradients({tiny_config(1), false, gv}, 3);
}

TEST_CASE("finite differences: physically pruned heads and MLP", "[backward]") {
    config c = tiny_config(2);
    c.num_attention_heads = 4;  // head size 2
    c.pruned_heads = {{1}, {0, 1, 2, 3}};  // layer 1 has no heads left
    c.pruned_mlps = {true, false};
    check_gradients({c, true, {}}, 4);
}

TEST_CASE("finite differences: the last layer ([CLS] rows only) without its MLP", "[backward]") {
    config c = tiny_config(2);
    c.num_attention_heads = 4;
    c.pruned_heads = {{0, 1, 2, 3}, {2}};  // layer 0 has no heads left
    c.pruned_mlps = {false, true};         // the last layer has no MLP
    check_gradients({c, true, {}}, 5);
}

TEST_CASE("per-example gate gradients are each example's own dL(x)/dxi", "[backward]") {
    const config cfg = tiny_config(3);
    const basic_weights<double> w = cast_weights<double>(random_weights(cfg, 5, 0.4f));
    const packed_batch batch = tiny_batch();
    const std::vector<int> classes{1, 0, 2};
    training_options o;
    o.reduction = loss_reduction::sum;
    o.parameter_gradients = false;
    training_workspace<double> ws;
    const double total = train_pass<basic_weights<double>>(w, batch, {classes, {}}, nullptr, ws, nullptr, o);
    double sum = 0;
    for (int b = 0; b < batch.sequences(); ++b) {
        packed_batch one;
        const auto r0 = static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]);
        const auto n = static_cast<std::size_t>(batch.length(b));
        std::vector<std::int32_t> ids(batch.token_ids.begin() + static_cast<std::ptrdiff_t>(r0),
                                      batch.token_ids.begin() + static_cast<std::ptrdiff_t>(r0 + n));
        std::vector<std::int32_t> types(batch.token_types.begin() + static_cast<std::ptrdiff_t>(r0),
                                        batch.token_types.begin() + static_cast<std::ptrdiff_t>(r0 + n));
        one.add(ids, types);
        training_workspace<double> w1;
        const int label = classes[static_cast<std::size_t>(b)];
        sum += train_pass<basic_weights<double>>(w, one, {std::span<const int>(&label, 1), {}}, nullptr, w1, nullptr, o);
        for (std::size_t i = 0; i < ws.gates().total_heads; ++i)
            CHECK(ws.gates().heads(static_cast<std::size_t>(b))[i] == Approx(w1.gates().heads(0)[i]).epsilon(1e-10).margin(1e-14));
        for (std::size_t l = 0; l < 2; ++l)
            CHECK(ws.gates().mlps(static_cast<std::size_t>(b))[l] == Approx(w1.gates().mlps(0)[l]).epsilon(1e-10).margin(1e-14));
    }
    CHECK(total == Approx(sum).epsilon(1e-12));
}

TEST_CASE("the float pass agrees with the double pass", "[backward]") {
    const config cfg = tiny_config(3);
    const weights wf = random_weights(cfg, 6, 0.4f);
    const basic_weights<double> wd = cast_weights<double>(wf);
    const packed_batch batch = tiny_batch();
    const std::vector<int> classes{1, 0, 2};
    training_options o;
    o.dropout = true;
    o.seed = 3;
    training_workspace<float> wsf;
    training_workspace<double> wsd;
    weights gf = zeros_like(wf);
    basic_weights<double> gd = zeros_like(wd);
    const double lf = train_pass(wf, batch, {classes, {}}, nullptr, wsf, &gf, o);
    const double ld = train_pass(wd, batch, {classes, {}}, nullptr, wsd, &gd, o);
    CHECK(lf == Approx(ld).epsilon(1e-5));
    // float rounding: judged per tensor, relative to the tensor's largest gradient.
    compare_gradients(gf, wsf.gates(), gd, wsd.gates(), {tolerance::per_tensor, 1e-4, 1e-9, 1e-4, 1e-7});
}

TEST_CASE("bad labels and gates throw", "[backward]") {
    const config cfg = tiny_config(3);
    const weights w = random_weights(cfg, 7);
    const packed_batch batch = tiny_batch();
    training_workspace<float> ws;
    const std::vector<int> bad{0, 3, 1}, few{0, 1};
    CHECK_THROWS_AS(train_pass(w, batch, {bad, {}}, nullptr, ws, static_cast<weights*>(nullptr), {}), prune::value_error);
    CHECK_THROWS_AS(train_pass(w, batch, {few, {}}, nullptr, ws, static_cast<weights*>(nullptr), {}), prune::shape_error);
    gate_values gv;
    gv.heads = {{1.0, 1.0, 1.0}, {1.0, 1.0}};
    const std::vector<int> ok{0, 1, 2};
    CHECK_THROWS_AS(train_pass(w, batch, {ok, {}}, &gv, ws, static_cast<weights*>(nullptr), {}), prune::shape_error);
}

TEST_CASE("one thread and two threads agree (row-split products and row loops)", "[backward]") {
    config c = tiny_config(2);
    c.hidden_size = 128;
    c.num_attention_heads = 4;
    c.intermediate_size = 512;
    c.vocab_size = 50;
    c.max_position_embeddings = 80;
    const weights w = random_weights(c, 8, 0.1f);
    packed_batch batch;
    std::vector<std::int32_t> ids(64);
    for (int b = 0; b < 8; ++b) {
        for (int t = 0; t < 64; ++t) ids[static_cast<std::size_t>(t)] = (b * 7 + t * 13) % 50;
        batch.add(ids);
    }
    const std::vector<int> labels{0, 1, 1, 0, 1, 0, 0, 1};
    training_options o;
    o.dropout = true;
    o.seed = 4;
    training_workspace<float> one(1), two(2);
    weights g1 = zeros_like(w), g2 = zeros_like(w);
    const double l1 = train_pass(w, batch, {labels, {}}, nullptr, one, &g1, o);
    const double l2 = train_pass(w, batch, {labels, {}}, nullptr, two, &g2, o);
    CHECK(l1 == Approx(l2).epsilon(1e-6));
    std::vector<float*> a, b;
    std::vector<std::size_t> n;
    for_each_tensor(g1, [&](auto& t) { a.push_back(t.data()); n.push_back(static_cast<std::size_t>(t.size())); });
    for_each_tensor(g2, [&](auto& t) { b.push_back(t.data()); });
    for (std::size_t p = 0; p < a.size(); ++p) {
        double max_abs = 0, max_err = 0;
        for (std::size_t i = 0; i < n[p]; ++i) {
            max_abs = std::max(max_abs, static_cast<double>(std::abs(a[p][i])));
            max_err = std::max(max_err, static_cast<double>(std::abs(a[p][i] - b[p][i])));
        }
        INFO("tensor " << p);
        CHECK(max_err <= 1e-5 * max_abs + 1e-12);
    }
    for (std::size_t i = 0; i < one.gates().total_heads; ++i)
        CHECK(one.gates().head_total(i) == Approx(two.gates().head_total(i)).epsilon(1e-5).margin(1e-9));
}

// ------------------------------------------------------------------------------------------
// The encoder alone: encode_for_training + backward_from_hidden (what MLM pre-training uses).

namespace {
// A loss of the final hidden states at every token: L = sum_{t,c} R[t,c] h[t,c] (R fixed), so
// dL/dh = R. Returns L; with `grads` runs the backward pass (ws then holds the gate gradients).
double hidden_loss(const basic_weights<double>& w, const packed_batch& batch, const gate_values& gv,
                   training_workspace<double>& ws, const std::vector<double>& r, basic_weights<double>* grads,
                   const training_options& o) {
    const auto h = encode_for_training(w, batch, &gv, ws, o);
    REQUIRE(h.size() == r.size());
    double loss = 0;
    for (std::size_t i = 0; i < h.size(); ++i) loss += r[i] * h[i];
    if (grads != nullptr) backward_from_hidden(w, batch, &gv, ws, std::span<const double>(r), grads, o);
    return loss;
}
}  // namespace

TEST_CASE("backward_from_hidden at every token: finite differences for every parameter and gate", "[backward]") {
    config c = tiny_config(2);
    c.num_attention_heads = 4;  // head size 2
    c.pruned_heads = {{1}, {}};
    for (const bool dropout : {false, true}) {
        INFO("dropout " << dropout);
        const basic_weights<double> w0 = cast_weights<double>(random_weights(c, 11, 0.4f));
        basic_weights<double> w = w0;
        const packed_batch batch = tiny_batch();
        std::mt19937 rng(12);
        std::normal_distribution<double> normal(0.0, 1.0);
        std::vector<double> r(static_cast<std::size_t>(batch.tokens()) * static_cast<std::size_t>(c.hidden_size));
        for (double& x : r) x = normal(rng);
        gate_values gv;
        gv.heads = {{1.0, 0.6, 0.0}, {1.0, 1.0, 0.8, 1.0}};
        gv.mlps = {0.7, 1.0};
        training_options o;
        o.dropout = dropout;
        o.hidden_dropout = 0.2f;
        o.attention_dropout = 0.3f;
        o.seed = 5;
        training_workspace<double> ws;
        basic_weights<double> g = zeros_like(w);
        hidden_loss(w, batch, gv, ws, r, &g, o);
        const gate_gradients gates = ws.gates();
        auto loss = [&](const gate_values& gates_now) {
            training_workspace<double> w2;
            return hidden_loss(w, batch, gates_now, w2, r, nullptr, o);
        };
        const double h = 1e-6;
        std::vector<double*> params, grads_of;
        std::vector<std::size_t> sizes;
        for_each_tensor(w, [&](auto& t) { params.push_back(t.data()); sizes.push_back(static_cast<std::size_t>(t.size())); });
        for_each_tensor(g, [&](auto& t) { grads_of.push_back(t.data()); });
        int checked = 0;
        for (std::size_t p = 0; p < params.size() - 4; ++p) {  // not the pooler / classifier (unused)
            if (sizes[p] == 0) continue;
            for (int s = 0; s < 4; ++s) {
                std::size_t i = std::uniform_int_distribution<std::size_t>(0, sizes[p] - 1)(rng);
                if (p == 0) i = static_cast<std::size_t>(5 * c.hidden_size + s);  // a word that occurs
                const double saved = params[p][i];
                params[p][i] = saved + h;
                const double up = loss(gv);
                params[p][i] = saved - h;
                const double down = loss(gv);
                params[p][i] = saved;
                const double fd = (up - down) / (2 * h);
                INFO("tensor " << p << " element " << i);
                CHECK(grads_of[p][i] == Approx(fd).epsilon(1e-5).margin(1e-8));
                ++checked;
            }
        }
        CHECK(checked > 60);
        // The pooler and classifier take no gradient.
        for (std::size_t p = params.size() - 4; p < params.size(); ++p)
            for (std::size_t i = 0; i < sizes[p]; ++i) CHECK(grads_of[p][i] == 0.0);
        std::size_t flat = 0;
        for (std::size_t l = 0; l < w.layers.size(); ++l) {
            for (int hh = 0; hh < w.layers[l].heads; ++hh, ++flat) {
                gate_values up = gv, down = gv;
                up.heads[l][static_cast<std::size_t>(hh)] += h;
                down.heads[l][static_cast<std::size_t>(hh)] -= h;
                INFO("head gate " << l << "," << hh);
                CHECK(gates.head_total(flat) == Approx((loss(up) - loss(down)) / (2 * h)).epsilon(1e-5).margin(1e-9));
            }
            gate_values up = gv, down = gv;
            up.mlps[l] += h;
            down.mlps[l] -= h;
            INFO("mlp gate " << l);
            CHECK(gates.mlp_total(l) == Approx((loss(up) - loss(down)) / (2 * h)).epsilon(1e-5).margin(1e-9));
        }
    }
}

TEST_CASE("encoder_rows::cls gives the [CLS] rows and gradients of the full pass", "[backward]") {
    for (const int layers : {0, 1, 2}) {
        config c = tiny_config(2);
        c.num_hidden_layers = std::max(layers, 1);
        INFO(layers << " layers");
        basic_weights<double> w = cast_weights<double>(random_weights(c, 13, 0.4f));
        if (layers == 0) w.layers.clear();  // the embeddings alone (a config cannot say 0 layers)
        const packed_batch batch = tiny_batch();
        const auto B = static_cast<std::size_t>(batch.sequences());
        const auto H = static_cast<std::size_t>(c.hidden_size);
        const auto T = static_cast<std::size_t>(batch.tokens());
        training_options o;
        o.dropout = true;
        o.seed = 17;
        training_workspace<double> full_ws, cls_ws;
        const auto full = encode_for_training(w, batch, nullptr, full_ws, o);
        const auto cls = encode_for_training(w, batch, nullptr, cls_ws, o, encoder_rows::cls);
        REQUIRE(full.size() == T * H);
        REQUIRE(cls.size() == B * H);
        std::vector<double> d_full(T * H, 0.0), d_cls(B * H);
        std::mt19937 rng(3);
        std::normal_distribution<double> normal(0.0, 1.0);
        for (std::size_t b = 0; b < B; ++b) {
            const auto row = static_cast<std::size_t>(batch.offsets[b]);
            for (std::size_t k = 0; k < H; ++k) {
                CHECK(cls[b * H + k] == Approx(full[row * H + k]).epsilon(1e-12).margin(1e-12));
                d_cls[b * H + k] = d_full[row * H + k] = normal(rng);
            }
        }
        basic_weights<double> g_full = zeros_like(w), g_cls = zeros_like(w);
        backward_from_hidden(w, batch, nullptr, full_ws, std::span<const double>(d_full), &g_full, o);
        backward_from_hidden(w, batch, nullptr, cls_ws, std::span<const double>(d_cls), &g_cls, o);
        // The same sums in double: every element to 1e-10.
        compare_gradients(g_cls, cls_ws.gates(), g_full, full_ws.gates(), {tolerance::per_element, 1e-10, 1e-12, 1e-10, 1e-12});
    }
}

TEST_CASE("backward_from_hidden rejects a gradient or batch that is not the encoded one", "[backward]") {
    const config cfg = tiny_config(2);
    const weights w = random_weights(cfg, 7);
    const packed_batch batch = tiny_batch();
    training_workspace<float> ws;
    std::vector<float> d(static_cast<std::size_t>(batch.tokens() * cfg.hidden_size), 0.0f);
    weights g = zeros_like(w);
    CHECK_THROWS_AS(backward_from_hidden(w, batch, nullptr, ws, std::span<const float>(d), &g, {}), prune::shape_error);
    const auto h = encode_for_training(w, batch, nullptr, ws, {});
    CHECK(h.size() == d.size());
    CHECK_THROWS_AS(backward_from_hidden(w, batch, nullptr, ws, std::span<const float>(d).first(d.size() - 1), &g, {}),
                    prune::shape_error);
    packed_batch other = batch;
    other.add(std::vector<std::int32_t>{2, 3});
    CHECK_THROWS_AS(backward_from_hidden(w, other, nullptr, ws, std::span<const float>(d), &g, {}), prune::shape_error);
    CHECK_NOTHROW(backward_from_hidden(w, batch, nullptr, ws, std::span<const float>(d), &g, {}));
}
