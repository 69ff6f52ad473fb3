// bench_backward: one forward + backward pass of the reference BERT training pass
// (prune/models/bert/backward.hpp: cross-entropy, every parameter gradient and the gate gradients,
// dropout off) at BERT-mini (4 x 256, 4 heads, ffn 1024) and BERT-base (12 x 768, 12 heads,
// ffn 3072) dims on 8 sequences of 128 tokens. benchmarks/torch_backward.py runs torch autograd
// on the same model and shapes in the same run and prints the ratio.
// Threads: the pass's pool runs on PRUNE_BENCH_THREADS threads (default 2); OpenBLAS single-threaded.
#include <prune/nn/process.hpp>
#include <prune/models/bert/backward.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <vector>

namespace {
prune::bert::config dims(int which) {
    prune::bert::config c;
    c.vocab_size = 30522;
    c.max_position_embeddings = 512;
    c.num_labels = 2;
    if (which == 0) {
        c.hidden_size = 256;
        c.num_hidden_layers = 4;
        c.num_attention_heads = 4;
        c.intermediate_size = 1024;
    } else {
        c.hidden_size = 768;
        c.num_hidden_layers = 12;
        c.num_attention_heads = 12;
        c.intermediate_size = 3072;
    }
    return c;
}

void forward_backward(benchmark::State& state) {
    const int threads = std::getenv("PRUNE_BENCH_THREADS") ? std::atoi(std::getenv("PRUNE_BENCH_THREADS")) : 2;
    const prune::bert::config cfg = dims(static_cast<int>(state.range(0)));
    const prune::bert::weights w = prune::bert::random_weights(cfg, 1);
    prune::bert::weights grads = prune::bert::zeros_like(w);
    prune::bert::packed_batch batch;
    std::vector<std::int32_t> ids(128);
    for (int b = 0; b < 8; ++b) {
        for (int t = 0; t < 128; ++t) ids[static_cast<std::size_t>(t)] = (b * 131 + t * 7919) % cfg.vocab_size;
        batch.add(ids);
    }
    const std::vector<int> labels{0, 1, 0, 1, 1, 0, 1, 0};
    prune::bert::training_workspace<float> ws(threads);
    prune::bert::training_options o;
    // One untimed pass grows the workspace (torch_backward.py also runs one step before timing).
    benchmark::DoNotOptimize(prune::bert::train_pass(w, batch, {labels, {}}, nullptr, ws, &grads, o));
    for (auto _ : state) {
        const double loss = prune::bert::train_pass(w, batch, {labels, {}}, nullptr, ws, &grads, o);
        benchmark::DoNotOptimize(loss);
        benchmark::ClobberMemory();
    }
    state.counters["threads"] = threads;
}
}  // namespace

// Each size reports the median of single passes, the statistic torch_backward.py takes of
// torch's steps: 9 at mini, 3 at base.
BENCHMARK(forward_backward)
    ->Arg(0)
    ->Name("forward_backward/mini")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(9)
    ->ReportAggregatesOnly(true)
    ->UseRealTime();
BENCHMARK(forward_backward)
    ->Arg(1)
    ->Name("forward_backward/base")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(3)
    ->ReportAggregatesOnly(true)
    ->UseRealTime();

int main(int argc, char** argv) {
    // OpenBLAS single-threaded (the pool does the threading), as loaded: no re-exec, so that
    // torch_backward.py's "eigen" set-up (no OPENBLAS_CORETYPE) keeps OpenBLAS's SSE3 kernels
    // out of the products (prune/nn/gemm.hpp then picks Eigen).
    prune::nn::blas_single_threaded();
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
