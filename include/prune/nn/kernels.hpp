// prune/nn/kernels.hpp: the element-wise and row-wise kernels every model is made of, forward
// and backward, for float and double: LayerNorm (with or without bias), RMSNorm, GELU (erf and
// tanh forms), SiLU and SwiGLU, softmax, rotary position embeddings (RoPE, Hugging Face's
// rotate_half layout), cross-entropy of a row of logits, and the column reductions of bias and
// norm-parameter gradients.
//
// Rows are contiguous arrays of n elements; a kernel works on one row (the caller runs rows on
// the pool, e.g. thread_pool::for_rows) or on a whole [rows, n] block where it reduces over rows.
// Every reduction runs in an order that depends only on n (lane_sum: 16 lanes by index), never
// on addresses, alignment or threads, so results are bit-identical at any thread count; loops
// are written so that GCC vectorises them at -O2/-O3 (the float GELU uses a rational erf,
// Eigen's, because std::erf does not vectorise; the float tanh-form GELU uses tanh_float, for
// the same reason).
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/nn/threads.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace prune::nn {

/// sum_i term(i) for i < n, accumulated in 16 lanes by index (vectorises; the order, and so the
/// rounding, depends only on n -- not on addresses, alignment or threads).
template <class S, class Term>
[[nodiscard]] S lane_sum(int n, Term&& term) {
    constexpr int lanes = 16;
    S acc[lanes] = {};
    int i = 0;
    for (; i + lanes <= n; i += lanes)
        for (int j = 0; j < lanes; ++j) acc[j] += term(i + j);
    for (int j = 0; i < n; ++i, ++j) acc[j] += term(i);
    S s{};
    for (int j = 0; j < lanes; ++j) s += acc[j];
    return s;
}

/// sum_i a[i] b[i] for i < n (lane order, see lane_sum).
template <class S>
[[nodiscard]] S dot(const S* a, const S* b, int n) {
    return lane_sum<S>(n, [a, b](int i) { return a[i] * b[i]; });
}

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // Eigen's packet types as template arguments
#endif
/// y[i] = exp(x[i]) for i < n with Eigen's vectorised exp; every element (tail included) goes
/// through the same packet code, so its value does not depend on where it sits. y may be x.
template <class S>
void exp_array(const S* x, S* y, int n) {
    using packet = typename Eigen::internal::packet_traits<S>::type;
    constexpr int width = Eigen::internal::packet_traits<S>::size;
    int i = 0;
    for (; i + width <= n; i += width)
        Eigen::internal::pstoreu(y + i, Eigen::internal::pexp(Eigen::internal::ploadu<packet>(x + i)));
    if (i < n) {
        S tail[static_cast<std::size_t>(width)] = {};
        std::copy(x + i, x + n, tail);
        Eigen::internal::pstoreu(tail, Eigen::internal::pexp(Eigen::internal::ploadu<packet>(tail)));
        std::copy(tail, tail + (n - i), y + i);
    }
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

// ---- GELU, erf form -----------------------------------------------------------------------

/// erf(x) for float, to a few ulp (the 13/8-degree rational approximation of Eigen's
/// generic_fast_erf_float: a few ulp on [-4, 4], +-1 outside), vectorisable.
[[nodiscard]] inline float erf_approx(float x) noexcept {
    x = std::min(4.0f, std::max(-4.0f, x));
    const float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    p = x * p;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    return p / q;
}

/// GELU, erf form: x/2 (1 + erf(x / sqrt 2)) (HF's "gelu"); float uses erf_approx, double std::erf.
template <class S>
[[nodiscard]] S gelu(S x) noexcept {
    if constexpr (std::is_same_v<S, float>) return 0.5f * x * (1.0f + erf_approx(x * 0.70710678118654752f));
    else return S{0.5} * x * (S{1} + std::erf(x * S{0.70710678118654752440}));
}

/// d GELU / dx = Phi(x) + x phi(x) (erf form).
template <class S>
[[nodiscard]] S gelu_derivative(S x) noexcept {
    if constexpr (std::is_same_v<S, float>) {
        const float cdf = 0.5f * (1.0f + erf_approx(x * 0.70710678118654752f));
        return cdf + x * 0.39894228040143268f * std::exp(-0.5f * x * x);
    } else {
        return S{0.5} * (S{1} + std::erf(x * S{0.70710678118654752440})) +
               x * S{0.39894228040143267794} * std::exp(S{-0.5} * x * x);
    }
}

/// grad[i] *= GELU'(pre[i]) for n elements (erf form; float: vectorised exp and erf_approx).
template <class S>
void gelu_backward(const S* pre, S* grad, int n) {
    if constexpr (std::is_same_v<S, float>) {
        constexpr int chunk = 256;
        float e[chunk];
        for (int i0 = 0; i0 < n; i0 += chunk) {
            const int m = std::min(chunk, n - i0);
            const float* __restrict x = pre + i0;
            for (int i = 0; i < m; ++i) e[i] = -0.5f * x[i] * x[i];
            exp_array(e, e, m);
            float* __restrict g = grad + i0;
            for (int i = 0; i < m; ++i) {
                const float cdf = 0.5f * (1.0f + erf_approx(x[i] * 0.70710678118654752f));
                g[i] *= cdf + x[i] * 0.39894228040143268f * e[i];
            }
        }
    } else {
        for (int i = 0; i < n; ++i) grad[i] *= gelu_derivative(pre[i]);
    }
}

// ---- GELU, tanh form; SiLU; SwiGLU ---------------------------------------------------------

/// tanh of a float within 1.5 ulp of the exact value (checked on every 37th float below 12
/// against double; the C library's tanhf: 2.1 ulp), with no library call and no branch, so a
/// loop over it vectorises (std::tanh does not: a call of ~20 ns per element). |x| < 0.55: the
/// odd Taylor series to x^17 (truncation below 5e-8 relative); otherwise 1 - 2 / (e^(2|x|) + 1)
/// with e^y = 2^n e^r, n = round(y / ln 2) (read from the bits of y / ln 2 + 1.5 * 2^23), r = y -
/// n ln 2 in two parts (Cody and Waite), e^r by its Taylor series to r^8; 2|x| is capped at 20,
/// where tanh is 1 in float. Odd, tanh(+-0) = +-0, tanh(+-inf) = +-1, NaN stays NaN.
[[nodiscard]] inline float tanh_float(float x) noexcept {
    const float a = std::fabs(x);
    const float b = std::min(a, 0.55f);
    const float z = b * b;
    float p = 443861162.0f / 1856156927625.0f;  // the series' coefficients: 2^2k (2^2k - 1) B_2k / (2k)!
    p = p * z - 929569.0f / 638512875.0f;
    p = p * z + 21844.0f / 6081075.0f;
    p = p * z - 1382.0f / 155925.0f;
    p = p * z + 62.0f / 2835.0f;
    p = p * z - 17.0f / 315.0f;
    p = p * z + 2.0f / 15.0f;
    p = p * z - 1.0f / 3.0f;
    const float small = b + b * z * p;
    const float y = std::min(2.0f * a, 20.0f);
    const float shifted = y * 1.44269504f + 12582912.0f;  // 1.5 * 2^23: the low mantissa bits hold n
    const std::int32_t n = std::bit_cast<std::int32_t>(shifted) - std::bit_cast<std::int32_t>(12582912.0f);
    const float nf = shifted - 12582912.0f;
    const float r = (y - nf * 0.693145751953125f) - nf * 1.428606765330187e-06f;
    float e = 1.0f / 40320.0f;
    e = e * r + 1.0f / 5040.0f;
    e = e * r + 1.0f / 720.0f;
    e = e * r + 1.0f / 120.0f;
    e = e * r + 1.0f / 24.0f;
    e = e * r + 1.0f / 6.0f;
    e = e * r + 0.5f;
    e = e * r + 1.0f;
    e = e * r + 1.0f;
    e *= std::bit_cast<float>((n + 127) << 23);
    const float large = 1.0f - 2.0f / (e + 1.0f);
    const float use_small = static_cast<float>(a < 0.55f);
    return std::copysign(use_small * small + (1.0f - use_small) * large, x);
}

/// tanh: tanh_float for float, std::tanh for double.
template <class S>
[[nodiscard]] S tanh_of(S x) noexcept {
    if constexpr (std::is_same_v<S, float>) {
        return tanh_float(x);
    } else {
        return std::tanh(x);
    }
}

/// GELU, tanh form (HF's "gelu_new", GPT-2): x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <class S>
[[nodiscard]] S gelu_tanh(S x) noexcept {
    const S u = static_cast<S>(0.79788456080286535588) * (x + static_cast<S>(0.044715) * x * x * x);
    return S{0.5} * x * (S{1} + tanh_of(u));
}

/// d gelu_tanh / dx.
template <class S>
[[nodiscard]] S gelu_tanh_derivative(S x) noexcept {
    const S c = static_cast<S>(0.79788456080286535588);
    const S k = static_cast<S>(0.044715);
    const S t = tanh_of(c * (x + k * x * x * x));
    return S{0.5} * (S{1} + t) + S{0.5} * x * (S{1} - t * t) * c * (S{1} + S{3} * k * x * x);
}

/// grad[i] *= gelu_tanh'(pre[i]) for n elements.
template <class S>
void gelu_tanh_backward(const S* pre, S* grad, int n) {
    for (int i = 0; i < n; ++i) grad[i] *= gelu_tanh_derivative(pre[i]);
}

/// SiLU (swish): x sigmoid(x).
template <class S>
[[nodiscard]] S silu(S x) noexcept {
    return x / (S{1} + std::exp(-x));
}

/// d SiLU / dx = s (1 + x (1 - s)), s = sigmoid(x).
template <class S>
[[nodiscard]] S silu_derivative(S x) noexcept {
    const S s = S{1} / (S{1} + std::exp(-x));
    return s * (S{1} + x * (S{1} - s));
}

/// SwiGLU (Llama's MLP activation): out[i] = silu(gate[i]) * up[i] for n elements.
template <class S>
void swiglu(const S* __restrict gate, const S* __restrict up, S* __restrict out, int n) {
    for (int i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

/// SwiGLU backward: from dout, dgate[i] = dout[i] up[i] silu'(gate[i]), dup[i] = dout[i] silu(gate[i]).
/// dgate may alias gate's storage and dup up's only if the inputs are no longer needed (they are
/// read before being written, element by element).
template <class S>
void swiglu_backward(const S* gate, const S* up, const S* dout, S* dgate, S* dup, int n) {
    for (int i = 0; i < n; ++i) {
        const S g = gate[i], u = up[i], d = dout[i];
        dgate[i] = d * u * silu_derivative(g);
        dup[i] = d * silu(g);
    }
}

// ---- Softmax -------------------------------------------------------------------------------

/// row = softmax(row) over n >= 1 elements (max subtracted; Eigen's vectorised exp; lane-order sum).
template <class S>
void softmax_row(S* row, int n) {
    S mx = row[0];
    for (int j = 1; j < n; ++j) mx = std::max(mx, row[j]);
    for (int j = 0; j < n; ++j) row[j] -= mx;
    exp_array(row, row, n);
    const S inv = S{1} / lane_sum<S>(n, [row](int j) { return row[j]; });
    for (int j = 0; j < n; ++j) row[j] *= inv;
}

/// Softmax backward for one row: dz[j] = p[j] (dp[j] - <dp, p>), in place over dp (n elements).
template <class S>
void softmax_backward_row(const S* p, S* dp, int n) {
    const S d = dot(dp, p, n);
    for (int j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - d);
}

// ---- LayerNorm -----------------------------------------------------------------------------

/// y = LayerNorm(x) over n elements with scale gamma and shift beta (null: no shift, HF's
/// `bias=False`); records xhat = (x - mean) rstd (n elements) and rstd = 1/sqrt(var + eps).
/// y may be x (x is read into xhat first).
template <class S>
void layer_norm_forward(const S* x, S* y, S* __restrict xhat, S* rstd, const S* __restrict gamma,
                        const S* __restrict beta, int n, S eps) {
    std::copy(x, x + n, xhat);
    const S mean = lane_sum<S>(n, [xhat](int i) { return xhat[i]; }) / static_cast<S>(n);
    for (int i = 0; i < n; ++i) xhat[i] -= mean;
    const S r = S{1} / std::sqrt(lane_sum<S>(n, [xhat](int i) { return xhat[i] * xhat[i]; }) / static_cast<S>(n) + eps);
    *rstd = r;
    if (beta != nullptr) {
        for (int i = 0; i < n; ++i) {
            xhat[i] *= r;
            y[i] = xhat[i] * gamma[i] + beta[i];
        }
    } else {
        for (int i = 0; i < n; ++i) {
            xhat[i] *= r;
            y[i] = xhat[i] * gamma[i];
        }
    }
}

/// LayerNorm in place over n elements when nothing is recorded: the same arithmetic as
/// layer_norm_forward (the same bits), with `scratch` (n elements) holding xhat.
template <class S>
void layer_norm_inplace(S* x, S* __restrict scratch, const S* __restrict gamma, const S* __restrict beta, int n, S eps) {
    S rstd;
    layer_norm_forward(x, x, scratch, &rstd, gamma, beta, n, eps);
}

/// dx = LayerNorm backward of dy for one row, from the recorded xhat and rstd (dx may be dy).
/// The gamma / beta gradients: add_norm_parameter_grads.
template <class S>
void layer_norm_backward(const S* dy, const S* __restrict xhat, S rstd, const S* __restrict gamma, S* dx, int n) {
    const S mean_g = lane_sum<S>(n, [&](int i) { return dy[i] * gamma[i]; }) / static_cast<S>(n);
    const S mean_gx = lane_sum<S>(n, [&](int i) { return dy[i] * gamma[i] * xhat[i]; }) / static_cast<S>(n);
    for (int i = 0; i < n; ++i) dx[i] = rstd * (dy[i] * gamma[i] - mean_g - xhat[i] * mean_gx);
}

// ---- RMSNorm -------------------------------------------------------------------------------

/// y = RMSNorm(x) over n elements as HF Llama computes it: x * rsqrt(mean(x^2) + eps) * w;
/// records xhat = x * rstd and rstd. y may be x.
template <class S>
void rms_norm_forward(const S* x, S* y, S* __restrict xhat, S* rstd, const S* __restrict weight, int n, S eps) {
    const S r = S{1} / std::sqrt(lane_sum<S>(n, [x](int i) { return x[i] * x[i]; }) / static_cast<S>(n) + eps);
    *rstd = r;
    for (int i = 0; i < n; ++i) {
        xhat[i] = x[i] * r;
        y[i] = xhat[i] * weight[i];
    }
}

/// dx = RMSNorm backward of dy for one row: rstd (dy w - xhat mean(dy w xhat)). dx may be dy.
/// The weight gradient: add_norm_parameter_grads with a null beta gradient.
template <class S>
void rms_norm_backward(const S* dy, const S* __restrict xhat, S rstd, const S* __restrict weight, S* dx, int n) {
    const S mean_gx = lane_sum<S>(n, [&](int i) { return dy[i] * weight[i] * xhat[i]; }) / static_cast<S>(n);
    for (int i = 0; i < n; ++i) dx[i] = rstd * (dy[i] * weight[i] - xhat[i] * mean_gx);
}

// ---- Column reductions (parameter gradients) ------------------------------------------------

/// out[c] += sum over rows r of a[r * lda + c] for c < cols (bias gradients), split by columns
/// over the pool (each column summed over the rows in order: the same bits at any pool size).
template <class S>
void add_column_sums(thread_pool& pool, std::size_t rows, int cols, const S* a, std::size_t lda, S* out) {
    pool.for_columns(rows, cols, [&](int c0, int c1) {
        S* __restrict o = out;
        for (std::size_t r = 0; r < rows; ++r) {
            const S* __restrict row = a + r * lda;
            for (int c = c0; c < c1; ++c) o[c] += row[c];
        }
    });
}

/// dgamma[c] += sum_r dy[r, c] xhat[r, c] and, unless dbeta is null, dbeta[c] += sum_r dy[r, c]
/// (rows of n, contiguous): the scale / shift gradients of LayerNorm and RMSNorm.
template <class S>
void add_norm_parameter_grads(thread_pool& pool, std::size_t rows, int n, const S* dy, const S* xhat, S* dgamma,
                              S* dbeta) {
    const auto ns = static_cast<std::size_t>(n);
    pool.for_columns(rows, n, [&](int c0, int c1) {
        S* __restrict dg = dgamma;
        S* __restrict db = dbeta;
        for (std::size_t r = 0; r < rows; ++r) {
            const S* __restrict g = dy + r * ns;
            const S* __restrict h = xhat + r * ns;
            if (db != nullptr) {
                for (int c = c0; c < c1; ++c) {
                    dg[c] += g[c] * h[c];
                    db[c] += g[c];
                }
            } else {
                for (int c = c0; c < c1; ++c) dg[c] += g[c] * h[c];
            }
        }
    });
}

// ---- Rotary position embeddings -------------------------------------------------------------

/// HF Llama's default inverse frequencies for head_dim d and base theta:
/// inv_freq[i] = 1 / theta^(2i / d), i < d/2, in float as HF computes them.
[[nodiscard]] inline std::vector<float> rope_inverse_frequencies(int head_dim, double theta) {
    std::vector<float> inv(static_cast<std::size_t>(head_dim / 2));
    for (int i = 0; i < head_dim / 2; ++i) {
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
        inv[static_cast<std::size_t>(i)] = 1.0f / static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
    }
    return inv;
}

/// cos / sin of every angle position * inv_freq[i] for positions [0, positions), i < head_dim/2
/// (the angle is rounded to float as HF computes it, its cos / sin taken in double).
template <class S>
struct rope_table {
    int half = 0;        ///< head_dim / 2
    std::vector<S> cos;  ///< [positions, half]
    std::vector<S> sin;  ///< [positions, half]

    /// The table for the given inverse frequencies (one per pair of dimensions) and positions.
    [[nodiscard]] static rope_table make(const std::vector<float>& inv_freq, int positions) {
        rope_table t;
        t.half = static_cast<int>(inv_freq.size());
        const auto size = static_cast<std::size_t>(positions) * inv_freq.size();
        t.cos.resize(size);
        t.sin.resize(size);
        for (int p = 0; p < positions; ++p) {
            for (int i = 0; i < t.half; ++i) {
                const float angle = static_cast<float>(p) * inv_freq[static_cast<std::size_t>(i)];
                const auto at = static_cast<std::size_t>(p) * inv_freq.size() + static_cast<std::size_t>(i);
                t.cos[at] = static_cast<S>(std::cos(static_cast<double>(angle)));
                t.sin[at] = static_cast<S>(std::sin(static_cast<double>(angle)));
            }
        }
        return t;
    }
    /// Positions covered.
    [[nodiscard]] int positions() const { return half == 0 ? 0 : static_cast<int>(cos.size()) / half; }
};

/// Rotates `heads` consecutive heads of width 2 * table.half in `row` to `position` (HF's
/// rotate_half layout: x' = x cos + cat(-x2, x1) sin); `inverse` rotates by -angle (the backward
/// pass: the gradient of a rotation is the opposite rotation of the gradient).
template <class S>
void rope_row(S* row, int heads, const rope_table<S>& table, int position, bool inverse = false) {
    const int half = table.half;
    const S* c = table.cos.data() + static_cast<std::size_t>(position) * static_cast<std::size_t>(half);
    const S* s = table.sin.data() + static_cast<std::size_t>(position) * static_cast<std::size_t>(half);
    const S sign = inverse ? S{-1} : S{1};
    for (int h = 0; h < heads; ++h) {
        S* __restrict x1 = row + static_cast<std::ptrdiff_t>(h) * 2 * half;
        S* __restrict x2 = x1 + half;
        for (int i = 0; i < half; ++i) {
            const S a = x1[i], b = x2[i], si = sign * s[i];
            x1[i] = a * c[i] - b * si;
            x2[i] = b * c[i] + a * si;
        }
    }
}

// ---- Cross-entropy ---------------------------------------------------------------------------

/// Cross-entropy of one row of V logits for class `target`: log sum_v exp(z_v) - z_target, in
/// double. With `grad` (may be z itself: the logits are then replaced), grad[v] = scale *
/// (softmax(z)_v - [v == target]). Without, nothing is written (exp runs in 256-element chunks
/// on the stack), so a [tokens, vocab] loss needs no memory beyond the logits.
template <class S>
double cross_entropy_row(const S* z, int V, int target, S scale, S* grad) {
    S mx = z[0];
    for (int v = 1; v < V; ++v) mx = std::max(mx, z[v]);
    const S target_logit = z[target];
    constexpr int chunk = 256;
    S local[chunk];
    S sum{};
    for (int v0 = 0; v0 < V; v0 += chunk) {
        const int m = std::min(chunk, V - v0);
        S* e = grad != nullptr ? grad + v0 : local;
        for (int v = 0; v < m; ++v) e[v] = z[v0 + v] - mx;
        exp_array(e, e, m);
        sum += lane_sum<S>(m, [e](int v) { return e[v]; });
    }
    if (grad != nullptr) {
        const S factor = scale / sum;
        for (int v = 0; v < V; ++v) grad[v] *= factor;
        grad[target] -= scale;
    }
    return static_cast<double>(std::log(sum) + mx - target_logit);
}

}  // namespace prune::nn
