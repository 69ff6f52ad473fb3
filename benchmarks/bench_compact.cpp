// bench_compact: what physical compaction (prune/models/decoder/compact.hpp) buys on the
// forward pass. A 2-layer slice at TinyLlama-1.1B's shape (hidden 2048, 32 query heads, 4 K/V
// heads, head_dim 64, MLP 5632, RMSNorm, SwiGLU, RoPE, untied lm_head; vocabulary 2048,
// random weights N(0, 0.02^2), float32), dense and compacted with half of the query heads
// removed (the same 4 of 8 in every K/V group: GQA stays uniform) and half of the MLP channels.
//
// Both prefill the same 1 x 256 tokens (logits and NLL), interleaved in the same run after one
// untimed pass each (the workspaces grow); the medians and compacted / dense are printed.
//
// Arguments: [threads (default 2)] [repetitions (default 15)].
#include <prune/models/decoder/compact.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/nn/process.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace decoder = prune::decoder;

namespace {

decoder::config tinyllama_slice() {
    decoder::config c;
    c.arch = decoder::architecture::llama;
    c.vocab_size = 2048;
    c.num_hidden_layers = 2;
    c.max_position_embeddings = 2048;
    c.hidden_size = 2048;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.intermediate_size = 5632;
    c.act = decoder::activation::silu;
    return c;
}

/// Half of the query heads (the first 4 of each group of 8) and every other MLP channel removed.
decoder::unit_masks half_masks(const decoder::weights& w) {
    decoder::unit_masks m;
    for (const auto& L : w.layers) {
        std::vector<float> heads(static_cast<std::size_t>(L.q_heads), 1.0f), channels(static_cast<std::size_t>(L.ffn), 1.0f);
        const int group = L.q_heads / L.kv_heads;
        for (int h = 0; h < L.q_heads; ++h) heads[static_cast<std::size_t>(h)] = h % group < group / 2 ? 0.0f : 1.0f;
        for (std::size_t j = 0; j < channels.size(); j += 2) channels[j] = 0.0f;
        m.heads.push_back(heads);
        m.channels.push_back(channels);
    }
    return m;
}

double seconds(const decoder::weights& w, const decoder::sequences& seq, decoder::workspace& ws) {
    const auto t0 = std::chrono::steady_clock::now();
    (void)decoder::forward(w, seq, ws);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    prune::nn::setup_process(argv);  // OpenBLAS single-threaded under the pool (and its fast kernels)
    const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
    const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 15;
    const decoder::weights dense = decoder::random_weights(tinyllama_slice(), 19);
    const decoder::weights small = decoder::compact(dense, half_masks(dense));
    decoder::sequences seq;
    std::mt19937_64 rng(7);
    std::vector<std::int32_t> ids(256);
    for (auto& id : ids) id = static_cast<std::int32_t>(rng() % 2048);
    seq.add(ids);
    decoder::workspace ws_dense(threads), ws_small(threads);
    (void)seconds(dense, seq, ws_dense);
    (void)seconds(small, seq, ws_small);
    std::vector<double> td, ts;
    for (int r = 0; r < reps; ++r) {
        td.push_back(seconds(dense, seq, ws_dense));
        ts.push_back(seconds(small, seq, ws_small));
    }
    const double d = median(td), s = median(ts);
    std::printf("bench_compact: OpenBLAS kernels %s, %d threads, %d repetitions\n", prune::nn::blas_core().c_str(), threads, reps);
    std::printf("dense      (32 q heads, 4 KV, MLP 5632): prefill 1x256 median %.2f ms (min %.2f)\n", d * 1e3,
                *std::min_element(td.begin(), td.end()) * 1e3);
    std::printf("compacted  (16 q heads, 4 KV, MLP 2816): prefill 1x256 median %.2f ms (min %.2f)\n", s * 1e3,
                *std::min_element(ts.begin(), ts.end()) * 1e3);
    std::printf("compacted / dense: %.3f\n", s / d);
    return 0;
}
