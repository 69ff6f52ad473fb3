// bench_sparsify_layer: the whole per-layer work of prune/sparsify/calibrate.hpp (prune_layers)
// on one decoder layer of TinyLlama-1.1B's shape: every calibration batch through the dense
// layer with its linears' input statistics summed (Wanda: sum x_j^2; SparseGPT: sum x x^T),
// the masks of the 7 linears chosen and applied (SparseGPT: with its reconstruction), and every
// batch through the pruned layer (the next layer's inputs). float32 weights, as the reference.
// benchmarks/sparsify_layer_vs_torch.sh writes the work with torch_sparsify_layer.py --write,
// runs this and the PyTorch port of the reference code on the same files, and prints the ratios.
//
// The work comes from the directory in PRUNE_SPARSIFY_LAYER_DATA: config.json,
// model.safetensors (a 1-layer Llama) and calib.i32 (16 x 512 token ids). Arguments: method
// (0 Wanda, 1 SparseGPT), pattern (0: 50% unstructured per row, 1: 2:4), threads, batch (calibration
// sequences per batch). Counter peak_rss_growth_MB: the process's peak RSS growth over the
// first run, from a baseline holding the model and the calibration streams (every token's
// residual stream at the layer: the reference's `inps`). CPU time: the whole process's (every thread).
#include <prune/models/decoder/calibration.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/nn/process.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dec = prune::decoder;
namespace sp = prune::sparsify;

namespace {

constexpr std::size_t samples = 16, tokens = 512;

std::vector<dec::sequences> calibration_batches(const std::string& dir, std::size_t per_batch) {
    std::vector<std::int32_t> ids(samples * tokens);
    std::ifstream in(dir + "/calib.i32", std::ios::binary);
    in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(ids.size() * sizeof(std::int32_t)));
    if (!in) throw std::runtime_error("bench_sparsify_layer: cannot read " + dir + "/calib.i32 (run sparsify_layer_vs_torch.sh)");
    std::vector<dec::sequences> batches;
    for (std::size_t s = 0; s < samples; ++s) {
        if (s % per_batch == 0) batches.emplace_back();
        batches.back().add(std::span<const std::int32_t>(ids.data() + s * tokens, tokens));
    }
    return batches;
}

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void BM_sparsify_layer(benchmark::State& state) {
    const char* dir = std::getenv("PRUNE_SPARSIFY_LAYER_DATA");
    if (dir == nullptr) {
        state.SkipWithError("set PRUNE_SPARSIFY_LAYER_DATA (benchmarks/sparsify_layer_vs_torch.sh does)");
        return;
    }
    const dec::weights dense = dec::load_model(dir);
    const auto batches = calibration_batches(dir, static_cast<std::size_t>(state.range(3)));
    const int threads = static_cast<int>(state.range(2));
    sp::calibration_options options;
    options.how = state.range(0) == 0 ? sp::method::wanda : sp::method::sparsegpt;
    options.target.sparsity = 0.5;
    if (state.range(1) == 1) options.target.nm = prune::two_four;
    double growth = -1;
    for (auto _ : state) {
        state.PauseTiming();
        dec::weights w = dense;
        std::optional<dec::calibration_run> run;
        run.emplace(w, batches, threads);
        options.sparsegpt.pool = &run->pool();
        const double before = peak_rss_mb();
        state.ResumeTiming();
        benchmark::DoNotOptimize(sp::prune_layers(*run, options));
        if (growth < 0) growth = peak_rss_mb() - before;
    }
    state.counters["peak_rss_growth_MB"] = growth;
}

}  // namespace

BENCHMARK(BM_sparsify_layer)
    ->ArgNames({"method", "nm", "threads", "batch"})
    ->ArgsProduct({{0, 1}, {0, 1}, {2}, {8}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Iterations(1);  // repetitions: --benchmark_repetitions (the script's REPEAT)

int main(int argc, char** argv) {
    prune::nn::setup_process(argv);  // OpenBLAS single-threaded under the pool (and its fast kernels)
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    std::fprintf(stderr, "bench_sparsify_layer: OpenBLAS kernels %s\n", prune::nn::blas_core().c_str());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
