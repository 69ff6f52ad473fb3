// prune/models/bert/kernels.hpp: the element-wise and row-wise pieces of the BERT forward pass,
// written so the compiler vectorises them: GELU (erf form) with the bias add fused,
// bias + LayerNorm over rows that already hold the residual sum, and a row softmax.
//
// GELU is prune/nn/kernels.hpp's (a vectorisable erf).
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/nn/kernels.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace prune::bert::kernels {

/// GELU, erf form (prune/nn/kernels.hpp's).
[[nodiscard]] inline float gelu(float x) noexcept { return nn::gelu(x); }

/// row[i] = gelu(row[i]) in place for n elements; if pre is not null it receives row[i] first.
inline void gelu_in_place(float* __restrict row, int n, float* __restrict pre) noexcept {
    if (pre != nullptr) {
        for (int i = 0; i < n; ++i) {
            pre[i] = row[i];
            row[i] = gelu(row[i]);
        }
    } else {
        for (int i = 0; i < n; ++i) {
            row[i] = gelu(row[i]);
        }
    }
}

/// Copies bias (n floats) into each of `rows` rows of out (leading dimension ld): the C operand
/// of a beta = 1 GEMM, so the product lands on the bias without a separate pass.
inline void fill_rows(float* __restrict out, std::ptrdiff_t ld, std::ptrdiff_t rows, const float* __restrict bias,
                      int n) noexcept {
    for (std::ptrdiff_t r = 0; r < rows; ++r) {
        float* row = out + r * ld;
        for (int i = 0; i < n; ++i) {
            row[i] = bias[i];
        }
    }
}

/// row[i] = gelu(row[i] + bias[i]) for n elements; if pre is not null it receives row[i] + bias[i].
inline void bias_gelu(float* __restrict row, const float* __restrict bias, int n, float* __restrict pre) noexcept {
    if (pre != nullptr) {
        for (int i = 0; i < n; ++i) {
            const float v = row[i] + bias[i];
            pre[i] = v;
            row[i] = gelu(v);
        }
    } else {
        for (int i = 0; i < n; ++i) {
            row[i] = gelu(row[i] + bias[i]);
        }
    }
}

/// row[i] += bias[i] for n elements.
inline void add_bias(float* __restrict row, const float* __restrict bias, int n) noexcept {
    for (int i = 0; i < n; ++i) {
        row[i] += bias[i];
    }
}

/// row = LayerNorm(row + bias_scale * bias) with gamma, beta (bias may be null); optionally
/// records the pre-norm sum into `pre` and 1/sqrt(var + eps) into *rstd_out.
inline void bias_layer_norm(float* __restrict row, const float* __restrict bias, float bias_scale,
                            const float* __restrict gamma, const float* __restrict beta, int n, float eps,
                            float* __restrict pre, float* rstd_out) noexcept {
    if (bias != nullptr) {
        for (int i = 0; i < n; ++i) {
            row[i] += bias_scale * bias[i];
        }
    }
    if (pre != nullptr) {
        for (int i = 0; i < n; ++i) {
            pre[i] = row[i];
        }
    }
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) {
        sum += row[i];
    }
    const float mean = sum / static_cast<float>(n);
    float sq = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float d = row[i] - mean;
        sq += d * d;
    }
    const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
    if (rstd_out != nullptr) {
        *rstd_out = rstd;
    }
    for (int i = 0; i < n; ++i) {
        row[i] = (row[i] - mean) * rstd * gamma[i] + beta[i];
    }
}

/// row = gate * softmax(row) over n elements (vectorised exp through Eigen).
inline void softmax(float* row, int n, float gate) noexcept {
    Eigen::Map<Eigen::ArrayXf> r(row, n);
    const float max = r.maxCoeff();
    r = (r - max).exp();
    r *= gate / r.sum();
}

}  // namespace prune::bert::kernels
