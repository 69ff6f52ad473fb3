// tests/bert/reference.hpp: a deliberately naive double-precision BERT forward pass over
// padded rows with Hugging Face's additive attention mask, written from the HF source
// (modeling_bert.py) independently of prune/models/bert/forward.hpp, to test it against.
#pragma once

#include <prune/models/bert/forward.hpp>

#include <cmath>
#include <vector>

namespace bert_reference {

using rows = std::vector<std::vector<double>>;

inline std::vector<double> layer_norm(const std::vector<double>& x, const prune::bert::layer_norm& n, double eps) {
    double mean = 0;
    for (double v : x) mean += v;
    mean /= static_cast<double>(x.size());
    double var = 0;
    for (double v : x) var += (v - mean) * (v - mean);
    var /= static_cast<double>(x.size());
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        y[i] = (x[i] - mean) / std::sqrt(var + eps) * n.weight[static_cast<Eigen::Index>(i)] +
               n.bias[static_cast<Eigen::Index>(i)];
    }
    return y;
}

/// y = W x + b (W [out, in]); `rows_offset` selects a row block of W and b.
inline std::vector<double> dense(const prune::bert::matrix& w, const prune::bert::vector& b, const std::vector<double>& x,
                                 Eigen::Index row0, Eigen::Index out) {
    std::vector<double> y(static_cast<std::size_t>(out));
    for (Eigen::Index o = 0; o < out; ++o) {
        double s = b.size() ? b[row0 + o] : 0.0;
        for (Eigen::Index i = 0; i < w.cols(); ++i) s += static_cast<double>(w(row0 + o, i)) * x[static_cast<std::size_t>(i)];
        y[static_cast<std::size_t>(o)] = s;
    }
    return y;
}

/// Logits [B][labels] for padded rows (mask 1 = real token), gates as in prune::bert::gates.
inline rows logits(const prune::bert::weights& w, const std::vector<std::vector<int>>& ids,
                   const std::vector<std::vector<int>>& types, const std::vector<std::vector<int>>& mask,
                   const prune::bert::gates& g) {
    const auto& cfg = w.cfg;
    const double eps = cfg.layer_norm_eps;
    rows out;
    for (std::size_t b = 0; b < ids.size(); ++b) {
        const std::size_t n = ids[b].size();
        rows x(n);
        for (std::size_t t = 0; t < n; ++t) {
            std::vector<double> e(static_cast<std::size_t>(cfg.hidden_size));
            for (int c = 0; c < cfg.hidden_size; ++c) {
                e[static_cast<std::size_t>(c)] = static_cast<double>(w.word_embeddings(ids[b][t], c)) +
                                                 w.position_embeddings(static_cast<Eigen::Index>(t), c) +
                                                 w.token_type_embeddings(types[b][t], c);
            }
            x[t] = layer_norm(e, w.embedding_norm, eps);
        }
        for (std::size_t l = 0; l < w.layers.size(); ++l) {
            const auto& L = w.layers[l];
            const int A = L.attention_width(), d = L.head_size;
            rows q(n), k(n), v(n);
            for (std::size_t t = 0; t < n; ++t) {
                q[t] = dense(L.qkv.weight, L.qkv.bias, x[t], 0, A);
                k[t] = dense(L.qkv.weight, L.qkv.bias, x[t], A, A);
                v[t] = dense(L.qkv.weight, L.qkv.bias, x[t], 2 * A, A);
            }
            rows a(n);
            for (std::size_t t = 0; t < n; ++t) {
                std::vector<double> ctx(static_cast<std::size_t>(A), 0.0);
                for (int h = 0; h < L.heads; ++h) {
                    std::vector<double> s(n);
                    double mx = -1e300;
                    for (std::size_t u = 0; u < n; ++u) {
                        double dot = 0;
                        for (int c = 0; c < d; ++c) dot += q[t][static_cast<std::size_t>(h * d + c)] * k[u][static_cast<std::size_t>(h * d + c)];
                        s[u] = dot / std::sqrt(static_cast<double>(d)) + (mask[b][u] ? 0.0 : -1e30);
                        mx = std::max(mx, s[u]);
                    }
                    double z = 0;
                    for (auto& e : s) z += (e = std::exp(e - mx));
                    for (std::size_t u = 0; u < n; ++u) {
                        const double p = s[u] / z * g.head(l, static_cast<std::size_t>(h));
                        for (int c = 0; c < d; ++c) ctx[static_cast<std::size_t>(h * d + c)] += p * v[u][static_cast<std::size_t>(h * d + c)];
                    }
                }
                auto o = dense(L.attention_output.weight, L.attention_output.bias, ctx, 0, cfg.hidden_size);
                for (std::size_t c = 0; c < o.size(); ++c) o[c] += x[t][c];
                a[t] = layer_norm(o, L.attention_norm, eps);
            }
            for (std::size_t t = 0; t < n; ++t) {
                std::vector<double> y = a[t];
                if (L.has_mlp()) {
                    auto h1 = dense(L.intermediate.weight, L.intermediate.bias, a[t], 0, L.ffn());
                    for (auto& e : h1) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
                    auto h2 = dense(L.output.weight, L.output.bias, h1, 0, cfg.hidden_size);
                    for (std::size_t c = 0; c < y.size(); ++c) y[c] += g.mlp(l) * h2[c];
                }
                x[t] = layer_norm(y, L.output_norm, eps);
            }
        }
        auto pooled = dense(w.pooler.weight, w.pooler.bias, x[0], 0, cfg.hidden_size);
        for (auto& e : pooled) e = std::tanh(e);
        out.push_back(dense(w.classifier.weight, w.classifier.bias, pooled, 0, w.classifier.weight.rows()));
    }
    return out;
}

}  // namespace bert_reference
