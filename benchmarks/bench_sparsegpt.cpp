// bench_sparsegpt: SparseGPT (prune/sparsify/sparsegpt.hpp) on one linear, float32 as the
// reference, from the calibration sum X^T X to the pruned and reconstructed weight (damping,
// the inverse Cholesky factor, the block loop and the lazy updates all timed).
// benchmarks/sparsegpt_vs_torch.sh writes the work with torch_sparsegpt.py --write, runs this and
// the PyTorch port of the reference fasterprune on the same files, and prints the ratios.
//
// The work comes from the directory in PRUNE_SPARSEGPT_DATA: <rows>x<columns>.w.f32 and
// <rows>x<columns>.gram.f64. Arguments: rows, columns, pattern (0: 50% unstructured, 1: 2:4),
// threads. Counter peak_rss_growth_MB: the process's peak RSS growth over the first run.
#include <prune/nn/process.hpp>
#include <prune/sparsify/sparsegpt.hpp>

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sp = prune::sparsify;

namespace {

template <class T>
std::vector<T> read_values(const std::string& path, std::size_t count) {
    std::vector<T> values(count);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * sizeof(T)));
    if (!in) throw std::runtime_error("bench_sparsegpt: cannot read " + path + " (run sparsegpt_vs_torch.sh)");
    return values;
}

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void BM_sparsegpt(benchmark::State& state) {
    const auto rows = static_cast<std::size_t>(state.range(0));
    const auto columns = static_cast<std::size_t>(state.range(1));
    const char* dir = std::getenv("PRUNE_SPARSEGPT_DATA");
    if (dir == nullptr) {
        state.SkipWithError("set PRUNE_SPARSEGPT_DATA (benchmarks/sparsegpt_vs_torch.sh does)");
        return;
    }
    const std::string stem = std::string(dir) + "/" + std::to_string(rows) + "x" + std::to_string(columns);
    const std::vector<float> weight = read_values<float>(stem + ".w.f32", rows * columns);
    const std::vector<double> gram = read_values<double>(stem + ".gram.f64", columns * columns);
    prune::nn::thread_pool pool(static_cast<int>(state.range(3)));
    sp::sparsegpt_options options;
    options.pool = &pool;
    options.hessian_scale = 2.0 / 16.0;  // the reference's H over 16 samples
    sp::sparsity_target target{.sparsity = 0.5};
    if (state.range(2) == 1) target.nm = prune::two_four;
    std::vector<float> w;
    double growth = -1;
    for (auto _ : state) {
        state.PauseTiming();
        w = weight;
        const double before = peak_rss_mb();
        state.ResumeTiming();
        auto v = prune::make_view(w.data(), {rows, columns});
        benchmark::DoNotOptimize(sp::sparsegpt_prune(v, gram, target, options));
        if (growth < 0) growth = peak_rss_mb() - before;
    }
    state.counters["peak_rss_growth_MB"] = growth;
}

}  // namespace

BENCHMARK(BM_sparsegpt)
    ->ArgNames({"rows", "columns", "nm", "threads"})
    ->Args({4096, 4096, 0, 2})
    ->Args({4096, 4096, 1, 2})
    ->Args({2048, 5632, 0, 2})
    ->Args({2048, 5632, 1, 2})
    ->Args({4096, 4096, 0, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);

int main(int argc, char** argv) {
    prune::nn::setup_process(argv);  // OpenBLAS single-threaded under the pool (and its fast kernels)
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    std::fprintf(stderr, "bench_sparsegpt: OpenBLAS kernels %s\n", prune::nn::blas_core().c_str());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
