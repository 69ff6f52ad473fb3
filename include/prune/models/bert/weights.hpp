// prune/models/bert/weights.hpp: the parameters of a BERT sequence classifier in memory, one
// struct per layer, as float Eigen row-major matrices in Hugging Face's [out, in]
// orientation, with each tensor's HF name, and deterministic random initialisation.
//
// Layers may differ in kept heads and feed-forward width (pruned shapes). A layer's
// query, key and value weights are stored stacked in one [3 * A, hidden] matrix
// (A = kept heads x head size; rows [0, A) query, [A, 2A) key, [2A, 3A) value) so that the
// forward pass does one GEMM; `query()`, `key()`, `value()` give the blocks, which are
// contiguous in row-major storage.
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/models/bert/config.hpp>
#include <prune/error.hpp>

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace prune::bert {

/// A row-major float matrix ([out, in] for weights, [tokens, features] for activations).
using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A float column vector (biases, LayerNorm parameters).
using vector = Eigen::VectorXf;

/// A dense layer y = x W^T + b, W of shape [out, in].
struct linear {
    matrix weight;  ///< [out, in]
    vector bias;    ///< [out]
    /// Output features.
    [[nodiscard]] int out() const { return static_cast<int>(weight.rows()); }
    /// Input features.
    [[nodiscard]] int in() const { return static_cast<int>(weight.cols()); }
};

/// LayerNorm's scale and shift.
struct layer_norm {
    vector weight;  ///< gamma, [hidden]
    vector bias;    ///< beta, [hidden]
};

/// One encoder layer: self-attention (stacked Q/K/V), attention output + LayerNorm, feed-forward + LayerNorm.
struct layer_weights {
    int heads = 0;                  ///< kept heads in this layer
    int head_size = 0;              ///< width of one head
    std::vector<int> head_ids;      ///< original index of each kept head (for masks and pruned_heads)
    linear qkv;                     ///< [3 * heads * head_size, hidden]: query rows, then key, then value
    linear attention_output;        ///< [hidden, heads * head_size]; its bias stays when every head is gone
    layer_norm attention_norm;      ///< attention.output.LayerNorm
    linear intermediate;            ///< [ffn, hidden]; ffn = 0 when the MLP is removed
    linear output;                  ///< [hidden, ffn]; empty (bias too) when the MLP is removed
    layer_norm output_norm;         ///< output.LayerNorm

    /// Width of the attention context (kept heads x head size).
    [[nodiscard]] int attention_width() const { return heads * head_size; }
    /// Feed-forward width (0 when the MLP is removed).
    [[nodiscard]] int ffn() const { return static_cast<int>(intermediate.weight.rows()); }
    /// True when the layer still has its feed-forward block.
    [[nodiscard]] bool has_mlp() const { return ffn() > 0; }
    /// The query weight rows [A, hidden].
    [[nodiscard]] auto query() { return qkv.weight.topRows(attention_width()); }
    /// The key weight rows [A, hidden].
    [[nodiscard]] auto key() { return qkv.weight.middleRows(attention_width(), attention_width()); }
    /// The value weight rows [A, hidden].
    [[nodiscard]] auto value() { return qkv.weight.bottomRows(attention_width()); }
};

/// Every parameter of a BertForSequenceClassification (pooler and classifier may be empty).
struct weights {
    config cfg;                       ///< the shape these weights have
    matrix word_embeddings;           ///< [vocab, hidden]
    matrix position_embeddings;       ///< [max_positions, hidden]
    matrix token_type_embeddings;     ///< [type_vocab, hidden]
    layer_norm embedding_norm;        ///< embeddings.LayerNorm
    std::vector<layer_weights> layers;  ///< encoder layers
    linear pooler;                    ///< [hidden, hidden], tanh on [CLS]; empty when absent
    linear classifier;                ///< [num_labels, hidden]; empty when absent

    /// True when the pooler and the classifier are present.
    [[nodiscard]] bool has_head() const { return pooler.weight.size() > 0 && classifier.weight.size() > 0; }
    /// Number of float parameters.
    [[nodiscard]] std::size_t parameter_count() const;
};

/// One named parameter: its HF name (with the `bert.` prefix where HF has it), its data and shape.
struct parameter {
    std::string name;                 ///< e.g. "bert.encoder.layer.3.attention.self.query.weight"
    float* data = nullptr;            ///< contiguous row-major storage
    std::vector<std::int64_t> shape;  ///< [out, in] or [n]
    /// Number of elements.
    [[nodiscard]] std::size_t size() const {
        std::size_t n = 1;
        for (auto d : shape) {
            n *= static_cast<std::size_t>(d);
        }
        return n;
    }
    /// The elements as a span.
    [[nodiscard]] std::span<float> values() const { return {data, size()}; }
};

/// Every non-empty parameter of `w`, in HF order, named as BertForSequenceClassification names them.
/// Query, key and value are reported as three tensors (views into the stacked qkv storage).
[[nodiscard]] inline std::vector<parameter> parameters(weights& w) {
    std::vector<parameter> out;
    auto add_matrix = [&](std::string name, float* data, Eigen::Index rows, Eigen::Index cols) {
        if (rows * cols > 0) {
            out.push_back({std::move(name), data, {rows, cols}});
        }
    };
    auto add_vector = [&](std::string name, float* data, Eigen::Index n) {
        if (n > 0) {
            out.push_back({std::move(name), data, {n}});
        }
    };
    auto add_linear = [&](const std::string& name, linear& l) {
        add_matrix(name + ".weight", l.weight.data(), l.weight.rows(), l.weight.cols());
        add_vector(name + ".bias", l.bias.data(), l.bias.size());
    };
    auto add_norm = [&](const std::string& name, layer_norm& n) {
        add_vector(name + ".weight", n.weight.data(), n.weight.size());
        add_vector(name + ".bias", n.bias.data(), n.bias.size());
    };
    add_matrix("bert.embeddings.word_embeddings.weight", w.word_embeddings.data(), w.word_embeddings.rows(),
               w.word_embeddings.cols());
    add_matrix("bert.embeddings.position_embeddings.weight", w.position_embeddings.data(),
               w.position_embeddings.rows(), w.position_embeddings.cols());
    add_matrix("bert.embeddings.token_type_embeddings.weight", w.token_type_embeddings.data(),
               w.token_type_embeddings.rows(), w.token_type_embeddings.cols());
    add_norm("bert.embeddings.LayerNorm", w.embedding_norm);
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        auto& layer = w.layers[l];
        const std::string p = "bert.encoder.layer." + std::to_string(l) + ".";
        const Eigen::Index a = layer.attention_width();
        const Eigen::Index hidden = layer.qkv.weight.cols();
        const char* parts[3] = {"query", "key", "value"};
        for (int k = 0; k < 3; ++k) {
            add_matrix(p + "attention.self." + parts[k] + ".weight", layer.qkv.weight.data() + k * a * hidden, a,
                       hidden);
            add_vector(p + "attention.self." + parts[k] + ".bias", layer.qkv.bias.data() + k * a, a);
        }
        if (a == 0) {  // keep the attention-output bias even when every head is gone
            add_vector(p + "attention.output.dense.bias", layer.attention_output.bias.data(),
                       layer.attention_output.bias.size());
        } else {
            add_linear(p + "attention.output.dense", layer.attention_output);
        }
        add_norm(p + "attention.output.LayerNorm", layer.attention_norm);
        add_linear(p + "intermediate.dense", layer.intermediate);
        add_linear(p + "output.dense", layer.output);
        add_norm(p + "output.LayerNorm", layer.output_norm);
    }
    add_linear("bert.pooler.dense", w.pooler);
    add_linear("classifier", w.classifier);
    return out;
}

inline std::size_t weights::parameter_count() const {
    std::size_t n = 0;
    for (const auto& p : parameters(const_cast<weights&>(*this))) {
        n += p.size();
    }
    return n;
}

/// Allocates (uninitialised) weights of the shape `cfg` describes, pruned heads and MLPs included.
[[nodiscard]] inline weights allocate(const config& cfg, bool with_head = true) {
    cfg.validate();
    weights w;
    w.cfg = cfg;
    const int hidden = cfg.hidden_size;
    w.word_embeddings.resize(cfg.vocab_size, hidden);
    w.position_embeddings.resize(cfg.max_position_embeddings, hidden);
    w.token_type_embeddings.resize(cfg.type_vocab_size, hidden);
    w.embedding_norm.weight.resize(hidden);
    w.embedding_norm.bias.resize(hidden);
    w.layers.resize(static_cast<std::size_t>(cfg.num_hidden_layers));
    for (int l = 0; l < cfg.num_hidden_layers; ++l) {
        auto& layer = w.layers[static_cast<std::size_t>(l)];
        layer.head_ids = cfg.kept_heads(l);
        layer.heads = static_cast<int>(layer.head_ids.size());
        layer.head_size = cfg.head_size();
        const int a = layer.attention_width();
        const int ffn = cfg.ffn_in_layer(l);
        layer.qkv.weight.resize(3 * a, hidden);
        layer.qkv.bias.resize(3 * a);
        layer.attention_output.weight.resize(hidden, a);
        layer.attention_output.bias.resize(hidden);
        layer.attention_norm.weight.resize(hidden);
        layer.attention_norm.bias.resize(hidden);
        layer.intermediate.weight.resize(ffn, hidden);
        layer.intermediate.bias.resize(ffn);
        layer.output.weight.resize(ffn > 0 ? hidden : 0, ffn);
        layer.output.bias.resize(ffn > 0 ? hidden : 0);
        layer.output_norm.weight.resize(hidden);
        layer.output_norm.bias.resize(hidden);
    }
    if (with_head) {
        w.pooler.weight.resize(hidden, hidden);
        w.pooler.bias.resize(hidden);
        w.classifier.weight.resize(cfg.num_labels, hidden);
        w.classifier.bias.resize(cfg.num_labels);
    }
    return w;
}

/// Elements allocate(cfg, with_head) holds, computed without allocating (a double: exact below
/// 2^53): what a loader checks against the checkpoint before trusting config.json's sizes.
[[nodiscard]] inline double parameter_count(const config& cfg, bool with_head = true) {
    cfg.validate();
    const double H = cfg.hidden_size;
    double n = (static_cast<double>(cfg.vocab_size) + cfg.max_position_embeddings + cfg.type_vocab_size) * H + 2 * H;
    for (int l = 0; l < cfg.num_hidden_layers; ++l) {
        const double a = static_cast<double>(cfg.kept_heads(l).size()) * cfg.head_size();
        const double ffn = cfg.ffn_in_layer(l);
        n += 3 * a * (H + 1) + H * a + H + 2 * H;  // q/k/v, attention output, its LayerNorm
        n += ffn * (H + 1) + (ffn > 0 ? H * ffn + H : 0.0) + 2 * H;  // intermediate, output, its LayerNorm
    }
    if (with_head) n += H * (H + 1) + cfg.num_labels * (H + 1);
    return n;
}

/// Weights with deterministic random values: matrices N(0, stddev), biases N(0, stddev),
/// LayerNorm gamma 1 + N(0, stddev) and beta N(0, stddev) (random, so tests see them).
[[nodiscard]] inline weights random_weights(const config& cfg, std::uint64_t seed, float stddev = 0.02f,
                                            bool with_head = true) {
    weights w = allocate(cfg, with_head);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, stddev);
    for (auto& p : parameters(w)) {
        const bool is_norm_scale = p.name.find("LayerNorm.weight") != std::string::npos;
        for (float& v : p.values()) {
            v = (is_norm_scale ? 1.0f : 0.0f) + normal(rng);
        }
    }
    return w;
}

/// A fresh classifier head (pooler kept if present): N(0, stddev) weights, zero bias, as HF initialises.
inline void reset_classifier(weights& w, int num_labels, std::uint64_t seed, float stddev = 0.02f) {
    if (num_labels <= 0) {
        throw value_error("reset_classifier: num_labels = " + std::to_string(num_labels) + " (expected > 0)");
    }
    const int hidden = w.cfg.hidden_size;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, stddev);
    if (w.pooler.weight.size() == 0) {
        w.pooler.weight = matrix::NullaryExpr(hidden, hidden, [&] { return normal(rng); });
        w.pooler.bias = vector::Zero(hidden);
    }
    w.classifier.weight = matrix::NullaryExpr(num_labels, hidden, [&] { return normal(rng); });
    w.classifier.bias = vector::Zero(num_labels);
    w.cfg.num_labels = num_labels;
}

}  // namespace prune::bert
