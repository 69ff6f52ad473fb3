// bench_select: one global magnitude step at BERT-base scale must run near memory speed in
// little extra memory. The work: BERT-base's 72 encoder matrices (12 layers x [4 x 768x768,
// 3072x768, 768x3072] floats = 84,934,656 weights, 340 MB), random normal, every mask full.
//   select/step1/T     prune_global(magnitude, amount 0.1) from full masks, T threads
//   select/step8/T     the 8th 10% step (masks at sparsity 1 - 0.9^7), T threads
//   select/random/T    the same first step with seeded random scores
//   stream_sum/T       one streaming pass summing |w| over the same weights: the memory-speed floor
//   nth_element_copy   for reference: copy all |w| into one vector and std::nth_element (1 thread)
// Counters: peak_extra_MB = the most heap memory a step allocated beyond what existed before it
// (a counting operator new), mask_MB = the masks' own size.
// Run: build/bin/bench_select [--benchmark_format=json]; benchmarks/select_vs_torch.sh prints
// the ratios against the streaming pass and against torch's global_unstructured.
#include <prune/importance/scores.hpp>
#include <prune/select.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include <malloc.h>

namespace {

std::atomic<std::size_t> live_bytes{0};
std::atomic<std::size_t> peak_bytes{0};

void note_allocation(std::size_t n) {
    const std::size_t now = live_bytes.fetch_add(n) + n;
    std::size_t peak = peak_bytes.load();
    while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
    }
}

}  // namespace

// A counting allocator (glibc's malloc_usable_size gives the size back on delete). GCC cannot
// see that this operator new pairs with this free, hence the pragma.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
__attribute__((noinline)) void* operator new(std::size_t n) {
    void* p = std::malloc(n == 0 ? 1 : n);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    note_allocation(malloc_usable_size(p));
    return p;
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
    if (p != nullptr) {
        live_bytes.fetch_sub(malloc_usable_size(p));
        std::free(p);
    }
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
#pragma GCC diagnostic pop

namespace {

/// The 72 encoder matrices of BERT-base and their score sources.
struct bert_base_set {
    std::vector<std::vector<float>> weights;
    std::vector<prune::shape> shapes;
    std::vector<prune::score_source> magnitudes;
    std::vector<prune::score_source> random;

    bert_base_set() {
        for (int layer = 0; layer < 12; ++layer) {
            for (int m = 0; m < 4; ++m) {
                shapes.push_back(prune::shape{768, 768});
            }
            shapes.push_back(prune::shape{3072, 768});
            shapes.push_back(prune::shape{768, 3072});
        }
        std::mt19937_64 rng(20201116);
        std::normal_distribution<float> normal(0.0f, 0.02f);
        for (const prune::shape& s : shapes) {
            weights.emplace_back(s.numel());
            for (float& w : weights.back()) {
                w = normal(rng);
            }
        }
        for (std::size_t t = 0; t < shapes.size(); ++t) {
            magnitudes.push_back(prune::magnitude(prune::make_view(weights[t].data(), shapes[t])));
            random.push_back(prune::random_scores(shapes[t], 7));
        }
    }

    [[nodiscard]] std::vector<prune::element_mask> full_masks() const {
        std::vector<prune::element_mask> masks;
        for (const prune::shape& s : shapes) {
            masks.emplace_back(s);
        }
        return masks;
    }
};

const bert_base_set& model() {
    static const bert_base_set set;
    return set;
}

double mask_megabytes(const std::vector<prune::element_mask>& masks) {
    std::size_t words = 0;
    for (const auto& m : masks) {
        words += m.words().size();
    }
    return static_cast<double>(words * 8) / 1e6;
}

void run_step(benchmark::State& state, const std::vector<prune::score_source>& scores, int previous_steps) {
    const auto& set = model();
    const unsigned threads = static_cast<unsigned>(state.range(0));
    auto start = set.full_masks();
    for (int s = 0; s < previous_steps; ++s) {
        prune::prune_global(scores, start, 0.1, {threads});
    }
    double peak_extra = 0;
    std::size_t pruned = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto masks = start;
        const std::size_t before = live_bytes.load();
        peak_bytes.store(before);
        state.ResumeTiming();
        pruned = prune::prune_global(scores, masks, 0.1, {threads}).pruned;
        benchmark::DoNotOptimize(masks.data());
        state.PauseTiming();
        peak_extra = std::max(peak_extra, static_cast<double>(peak_bytes.load() - before) / 1e6);
        state.ResumeTiming();
    }
    state.counters["peak_extra_MB"] = peak_extra;
    state.counters["mask_MB"] = mask_megabytes(start);
    state.counters["pruned"] = static_cast<double>(pruned);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 84934656 * 4);
}

void select_step1(benchmark::State& state) { run_step(state, model().magnitudes, 0); }
void select_step8(benchmark::State& state) { run_step(state, model().magnitudes, 7); }
void select_random(benchmark::State& state) { run_step(state, model().random, 0); }

void stream_sum(benchmark::State& state) {
    const auto& set = model();
    const unsigned threads = static_cast<unsigned>(state.range(0));
    for (auto _ : state) {
        std::vector<double> partial(threads, 0.0);
        auto body = [&](unsigned t) {
            double sum = 0;
            const std::size_t n = set.weights.size();
            for (std::size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) {
                // 16 independent accumulators so that the loop vectorises: memory speed, not add latency
                const std::vector<float>& w = set.weights[i];
                float lanes[16] = {};
                const std::size_t full = w.size() / 16 * 16;
                for (std::size_t j = 0; j < full; j += 16) {
                    for (std::size_t l = 0; l < 16; ++l) {
                        lanes[l] += std::fabs(w[j + l]);
                    }
                }
                for (std::size_t j = full; j < w.size(); ++j) {
                    lanes[0] += std::fabs(w[j]);
                }
                for (float l : lanes) {
                    sum += l;
                }
            }
            partial[t] = sum;
        };
        std::vector<std::thread> workers;
        for (unsigned t = 1; t < threads; ++t) {
            workers.emplace_back(body, t);
        }
        body(0);
        for (auto& w : workers) {
            w.join();
        }
        benchmark::DoNotOptimize(partial.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 84934656 * 4);
}

void nth_element_copy(benchmark::State& state) {
    const auto& set = model();
    for (auto _ : state) {
        std::vector<float> all;
        all.reserve(84934656);
        for (const auto& w : set.weights) {
            for (float x : w) {
                all.push_back(std::fabs(x));
            }
        }
        std::nth_element(all.begin(), all.begin() + 8493466, all.end());
        benchmark::DoNotOptimize(all[8493466]);
    }
}

}  // namespace

BENCHMARK(select_step1)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(select_step8)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(select_random)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(stream_sum)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(nth_element_copy)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

BENCHMARK_MAIN();
