// bench_forward: the reference BERT's forward pass (prune/models/bert/forward.hpp) at tiny, mini and
// base dims, batch 8 x 128 tokens, on random weights; plus the GEMM back-ends alone.
// benchmarks/compare_forward.py runs this and torch (benchmarks/torch_forward.py) in the same
// run and prints the ratios; docs/bert.md reports them.
//
// Arguments: size (0 tiny, 1 mini, 2 base), threads.
//   BM_encode          all 8 x 128 tokens through every layer (what nn.TransformerEncoder does)
//   BM_classify        logits only: last layer for [CLS] rows only
//   BM_encode_varlen   8 sequences of lengths 16..128 (mean ~72), packed, all tokens
//   BM_encode_pruned   half the heads of every layer and half the MLPs physically removed
//   BM_gemm            C[1024, 3072] = A[1024, 768] B^T, backend 0 = OpenBLAS, 1 = Eigen
#include <prune/nn/process.hpp>
#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/pruning.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>

using namespace prune::bert;
namespace nn = prune::nn;

namespace {

config dims(int size) {
    switch (size) {
        case 0: return config::tiny();
        case 1: return config::mini();
        default: return config::base();
    }
}

const weights& model(int size) {
    static weights cache[3];
    static bool made[3] = {false, false, false};
    if (!made[size]) {
        cache[size] = random_weights(dims(size), 1234 + static_cast<std::uint64_t>(size));
        made[size] = true;
    }
    return cache[size];
}

packed_batch fixed_batch(int vocab, int batch = 8, int length = 128) {
    std::mt19937_64 rng(5);
    packed_batch b;
    for (int i = 0; i < batch; ++i) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(length));
        for (auto& id : ids) id = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
        b.add(ids);
    }
    return b;
}

/// Lengths used by the variable-length cases (the torch script uses the same list).
const std::vector<int> varlen_lengths{128, 16, 96, 40, 72, 120, 24, 80};

packed_batch varlen_batch(int vocab) {
    std::mt19937_64 rng(6);
    packed_batch b;
    for (int len : varlen_lengths) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(len));
        for (auto& id : ids) id = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
        b.add(ids);
    }
    return b;
}

double encoder_flops(const weights& w, const packed_batch& b) {
    double f = 0;
    for (const auto& L : w.layers) {
        const double T = static_cast<double>(b.tokens());
        const double H = w.cfg.hidden_size;
        f += 2 * T * H * (4.0 * L.attention_width() + 2.0 * L.ffn());
        for (int s = 0; s < b.sequences(); ++s) {
            f += 4.0 * b.length(s) * b.length(s) * L.attention_width();
        }
    }
    return f;
}

void run(benchmark::State& state, const weights& w, const packed_batch& batch, bool cls_only) {
    workspace ws(static_cast<int>(state.range(1)));
    forward_options opt;
    opt.cls_only = cls_only;
    if (cls_only) {
        classify(w, batch, ws, opt);
    } else {
        encode(w, batch, ws, opt);
    }
    for (auto _ : state) {
        if (cls_only) {
            benchmark::DoNotOptimize(classify(w, batch, ws, opt).data());
        } else {
            encode(w, batch, ws, opt);
            benchmark::DoNotOptimize(ws.hidden().data());
        }
    }
    state.counters["GFLOPs"] = benchmark::Counter(encoder_flops(w, batch) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_encode(benchmark::State& state) {
    const auto& w = model(static_cast<int>(state.range(0)));
    run(state, w, fixed_batch(w.cfg.vocab_size), false);
}

void BM_classify(benchmark::State& state) {
    const auto& w = model(static_cast<int>(state.range(0)));
    run(state, w, fixed_batch(w.cfg.vocab_size), true);
}

void BM_encode_varlen(benchmark::State& state) {
    const auto& w = model(static_cast<int>(state.range(0)));
    run(state, w, varlen_batch(w.cfg.vocab_size), false);
}

void BM_classify_varlen(benchmark::State& state) {
    const auto& w = model(static_cast<int>(state.range(0)));
    run(state, w, varlen_batch(w.cfg.vocab_size), true);
}

void BM_encode_pruned(benchmark::State& state) {
    const int size = static_cast<int>(state.range(0));
    static weights pruned[3];
    static bool made[3] = {false, false, false};
    if (!made[size]) {
        pruned[size] = model(size);
        const int heads = pruned[size].cfg.num_attention_heads;
        for (std::size_t l = 0; l < pruned[size].layers.size(); ++l) {
            std::vector<int> drop;
            for (int h = 0; h < heads / 2; ++h) drop.push_back(2 * h + static_cast<int>(l % 2));
            remove_heads(pruned[size], l, drop);
            if (l % 2 == 1) remove_mlp(pruned[size], l);
        }
        made[size] = true;
    }
    run(state, pruned[size], fixed_batch(pruned[size].cfg.vocab_size), false);
}

void BM_gemm(benchmark::State& state) {
    const int m = 1024, n = 3072, k = 768;
    const bool blas = state.range(0) == 0;
    nn::thread_pool pool(static_cast<int>(state.range(1)));
    matrix a = matrix::Random(m, k), b = matrix::Random(n, k), c(m, n);
    for (auto _ : state) {
        pool.parallel_for(m, [&](std::int64_t r0, std::int64_t r1) {
            nn::gemm_on<float>(blas, false, true, static_cast<int>(r1 - r0), n, k, 1.0f, a.data() + r0 * k, k, b.data(),
                               k, 0.0f, c.data() + r0 * n, n);
        });
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GFLOPs"] = benchmark::Counter(2.0 * m * n * k * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_gemm_blas_threads(benchmark::State& state) {  // OpenBLAS threading its own call
    const int m = 1024, n = 3072, k = 768;
    nn::blas_threads(static_cast<int>(state.range(1)));
    matrix a = matrix::Random(m, k), b = matrix::Random(n, k), c(m, n);
    for (auto _ : state) {
        nn::gemm_on<float>(true, false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
        benchmark::DoNotOptimize(c.data());
    }
    nn::blas_single_threaded();
    state.counters["GFLOPs"] = benchmark::Counter(2.0 * m * n * k * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void sizes(benchmark::internal::Benchmark* b) {
    for (int size : {0, 1, 2}) {
        for (int threads : {1, 2}) {
            b->Args({size, threads});
        }
    }
}

}  // namespace

BENCHMARK(BM_encode)->Apply(sizes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_classify)->Apply(sizes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encode_varlen)->Apply(sizes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_classify_varlen)->Apply(sizes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encode_pruned)->Apply(sizes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gemm)->Args({0, 1})->Args({0, 2})->Args({1, 1})->Args({1, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gemm_blas_threads)->Args({0, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
    nn::setup_process(argv);  // re-exec for OpenBLAS's AVX-512 kernels unless OPENBLAS_CORETYPE / PRUNE_NO_REEXEC is set
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    std::fprintf(stderr, "bench_forward: OpenBLAS kernels %s, dense GEMM back-end %s\n", nn::blas_core().c_str(),
                 workspace(1).dense_backend() == nn::gemm_backend::blas ? "OpenBLAS" : "Eigen");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
