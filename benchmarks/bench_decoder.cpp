// bench_decoder: the decoder reference models (prune/models/decoder/) on 2-layer slices of real
// shapes, random weights (N(0, 0.02^2), float32), vocabulary 2048 (see docs/decoders.md, Speed):
//   arch 0  TinyLlama-1.1B: hidden 2048, 32 heads, 4 KV heads, head_dim 64, intermediate 5632,
//           RMSNorm, SwiGLU, RoPE, untied lm_head
//   arch 1  GPT-2 small: hidden 768, 12 heads, intermediate 3072, LayerNorm, GELU (tanh), biases,
//           learned positions, lm_head tied to the embeddings
// benchmarks/decoder_vs_torch.sh runs this and the same math in PyTorch (torch_decoder.py) in the
// same run and prints medians, spreads and the ratios.
//
// Arguments: arch, threads.
//   BM_prefill   forward (logits and the NLL) of 8 sequences x 128 tokens
//   BM_train     forward + backward of the same batch: causal-LM cross-entropy (mean over every
//                predicted token), gradients of every weight (decoder::train_pass)
//   BM_decode    one decode step of batch 1: one new token after a 512-token KV cache
//                (decoder::decode), its logits
// Each first runs the work once untimed (the workspaces grow), as torch_decoder.py warms up.
#include <prune/models/decoder/backward.hpp>
#include <prune/models/decoder/generate.hpp>
#include <prune/nn/process.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <vector>

namespace decoder = prune::decoder;

namespace {

constexpr int vocab = 2048;
constexpr int batch = 8, length = 128, cached = 512;

decoder::config shape(int arch) {
    decoder::config c;
    c.vocab_size = vocab;
    c.num_hidden_layers = 2;
    c.max_position_embeddings = 2048;
    if (arch == 0) {
        c.arch = decoder::architecture::llama;
        c.hidden_size = 2048;
        c.num_attention_heads = 32;
        c.num_key_value_heads = 4;
        c.head_dim = 64;
        c.intermediate_size = 5632;
        c.act = decoder::activation::silu;
        c.tie_word_embeddings = false;
    } else {
        c.arch = decoder::architecture::gpt2;
        c.hidden_size = 768;
        c.num_attention_heads = 12;
        c.num_key_value_heads = 12;
        c.head_dim = 64;
        c.intermediate_size = 3072;
        c.act = decoder::activation::gelu_tanh;
        c.tie_word_embeddings = true;
        c.attention_bias = true;
        c.mlp_bias = true;
    }
    return c;
}

const decoder::weights& model(int arch) {
    static decoder::weights cache[2];
    static bool made[2] = {false, false};
    if (!made[arch]) {
        cache[arch] = decoder::random_weights(shape(arch), 19 + static_cast<std::uint64_t>(arch));
        made[arch] = true;
    }
    return cache[arch];
}

std::vector<std::int32_t> random_ids(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::int32_t> ids(n);
    for (auto& id : ids) id = static_cast<std::int32_t>(rng() % vocab);
    return ids;
}

decoder::sequences fixed_batch() {
    decoder::sequences seq;
    for (int b = 0; b < batch; ++b) seq.add(random_ids(length, 100 + static_cast<std::uint64_t>(b)));
    return seq;
}

void BM_prefill(benchmark::State& state) {
    const decoder::weights& w = model(static_cast<int>(state.range(0)));
    const decoder::sequences seq = fixed_batch();
    decoder::workspace ws(static_cast<int>(state.range(1)));
    (void)decoder::forward(w, seq, ws);  // warm-up: the workspace grows once
    for (auto _ : state) benchmark::DoNotOptimize(decoder::forward(w, seq, ws));
}

void BM_train(benchmark::State& state) {
    const decoder::weights& w = model(static_cast<int>(state.range(0)));
    const decoder::sequences seq = fixed_batch();
    decoder::workspace ws(static_cast<int>(state.range(1)));
    decoder::training_workspace tw;
    decoder::weights grads = decoder::zero_gradients(w);
    (void)decoder::train_pass(w, seq, ws, tw, &grads);  // warm-up: the workspaces grow once
    for (auto _ : state) benchmark::DoNotOptimize(decoder::train_pass(w, seq, ws, tw, &grads));
}

void BM_decode(benchmark::State& state) {
    const decoder::weights& w = model(static_cast<int>(state.range(0)));
    decoder::workspace ws(static_cast<int>(state.range(1)));
    decoder::kv_cache cache = decoder::make_kv_cache(w, cached + 1);
    decoder::decode(w, random_ids(cached, 7), cache, ws);  // the prompt fills the cache
    const std::vector<std::int32_t> next = random_ids(1, 8);
    decoder::decode(w, next, cache, ws);  // warm-up
    for (auto _ : state) {
        cache.length = cached;  // the same step again: rows 0..511 cached, the new token at 512
        decoder::decode(w, next, cache, ws);
        benchmark::DoNotOptimize(ws.logits().data());
    }
}

void cases(benchmark::internal::Benchmark* b) {
    for (int arch : {0, 1}) b->Args({arch, 2});
}

}  // namespace

BENCHMARK(BM_prefill)->ArgNames({"arch", "threads"})->Apply(cases)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_train)->ArgNames({"arch", "threads"})->Apply(cases)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_decode)->ArgNames({"arch", "threads"})->Apply(cases)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
    prune::nn::setup_process(argv);  // OpenBLAS single-threaded under the pool (and its fast kernels)
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    std::fprintf(stderr, "bench_decoder: OpenBLAS kernels %s\n", prune::nn::blas_core().c_str());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
