// prune/nn/threads.hpp: the one thread pool of the runtime, and the allocation-free ways work is
// shared out over it.
//
// `thread_pool::run(job)` calls job(t) for t = 0 .. size()-1 at once (t = 0 on the calling
// thread) and returns when all have finished. Idle workers sleep on a futex (C++20 atomic
// wait), so they do not steal the cores from other work between calls. The job is passed by
// reference and called through a plain function pointer: nothing is allocated per call (the
// importance pass over a data set relies on that). Jobs must not throw (kernels only: input is
// validated before), and one job runs at a time per pool.
//
// Determinism: parallel_for cuts [0, n) into size() contiguous chunks, so which thread does
// what depends on the pool's size; code that must give the same bits at any size makes each
// element's arithmetic independent of the chunking (row-wise work, column sums split by
// columns), as the kernels of this runtime do.
#pragma once

#include <prune/error.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

namespace prune::nn {

/// A fixed set of threads that run one job at a time, each thread with its own index.
class thread_pool {
public:
    /// A pool of `threads` threads in total (the caller counts as one); 0 = hardware concurrency.
    /// prune::resource_error when a thread cannot be started (the ones started are stopped
    /// first; a std::thread left running would abort the process).
    explicit thread_pool(int threads = 0) {
        if (threads <= 0) {
            threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        }
        size_ = threads;
        workers_.reserve(static_cast<std::size_t>(threads - 1));
        for (int t = 1; t < threads; ++t) {
            try {
                workers_.emplace_back([this, t] { loop(t); });
            } catch (const std::system_error& e) {
                stop();
                throw resource_error("prune::nn::thread_pool: cannot start thread " + std::to_string(t + 1) + " of " +
                                     std::to_string(threads) + ": " + e.what() + " (expected fewer threads)");
            }
        }
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() { stop(); }

    /// Threads in the pool, the caller included.
    [[nodiscard]] int size() const noexcept { return size_; }

    /// Runs job(t) for every thread index t concurrently; returns when all are done.
    template <class Job>
    void run(Job&& job) {
        if (size_ == 1) {
            job(0);
            return;
        }
        using J = std::remove_reference_t<Job>;
        job_ = const_cast<void*>(static_cast<const void*>(std::addressof(job)));
        invoke_ = [](void* j, int t) { (*static_cast<J*>(j))(t); };
        remaining_.store(size_ - 1);
        generation_.fetch_add(1);
        generation_.notify_all();
        job(0);
        for (int spin = 0; spin < 2000 && remaining_.load(std::memory_order_acquire) != 0; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        for (int left = remaining_.load(std::memory_order_acquire); left != 0;
             left = remaining_.load(std::memory_order_acquire)) {
            remaining_.wait(left);
        }
        job_ = nullptr;
    }

    /// Splits [0, n) into min(size(), n) contiguous chunks [n t / parts, n (t + 1) / parts) and runs
    /// body(begin, end) on each (on the caller when there is one chunk).
    template <class Body>
    void parallel_for(std::int64_t n, Body&& body) {
        if (n <= 0) {
            return;
        }
        const int parts = static_cast<int>(std::min<std::int64_t>(size_, n));
        if (parts == 1) {
            body(std::int64_t{0}, n);
            return;
        }
        run([&body, n, parts](int t) {
            if (t < parts) {
                body(n * t / parts, n * (t + 1) / parts);
            }
        });
    }

    /// Runs body(i, thread) for i in [0, n), handing indices out dynamically (for uneven tasks;
    /// each task's result must not depend on the thread that runs it).
    template <class Body>
    void parallel_tasks(std::int64_t n, Body&& body) {
        if (n <= 0) {
            return;
        }
        if (size_ == 1) {
            for (std::int64_t i = 0; i < n; ++i) {
                body(i, 0);
            }
            return;
        }
        std::atomic<std::int64_t> next{0};
        run([&body, &next, n](int t) {
            for (std::int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
                body(i, t);
            }
        });
    }

    /// Calls row(r) for r in [0, rows) (rows independent), split over the pool when rows x width
    /// is large enough (65,536 elements) to pay for waking the workers.
    template <class Row>
    void for_rows(std::size_t rows, std::size_t width, Row&& row) {
        if (size_ == 1 || rows * width < 65536) {
            for (std::size_t r = 0; r < rows; ++r) {
                row(r);
            }
            return;
        }
        parallel_for(static_cast<std::int64_t>(rows), [&row](std::int64_t r0, std::int64_t r1) {
            for (auto r = static_cast<std::size_t>(r0); r < static_cast<std::size_t>(r1); ++r) {
                row(r);
            }
        });
    }

    /// Runs block(c0, c1) over column ranges of [0, cols) in whole 16-column units, split over the
    /// pool when rows x cols is large (column reductions: each column is summed over the rows in
    /// order whatever the split, so the bits do not depend on the pool's size).
    template <class Block>
    void for_columns(std::size_t rows, int cols, Block&& block) {
        const std::int64_t blocks = (cols + 15) / 16;
        auto chunk = [&block, cols](std::int64_t b0, std::int64_t b1) {
            block(static_cast<int>(b0 * 16), static_cast<int>(std::min<std::int64_t>(cols, b1 * 16)));
        };
        if (size_ == 1 || rows * static_cast<std::size_t>(cols) < 65536) {
            chunk(0, blocks);
            return;
        }
        parallel_for(blocks, chunk);
    }

private:
    /// Wakes every worker to exit and joins them.
    void stop() noexcept {
        stop_.store(true);
        generation_.fetch_add(1);
        generation_.notify_all();
        for (auto& w : workers_) {
            w.join();
        }
        workers_.clear();
    }

    void loop(int t) {
        std::uint64_t seen = 0;
        for (;;) {
            for (std::uint64_t g = generation_.load(std::memory_order_acquire); g == seen;
                 g = generation_.load(std::memory_order_acquire)) {
                generation_.wait(g);
            }
            seen = generation_.load(std::memory_order_acquire);
            if (stop_.load()) {
                return;
            }
            invoke_(job_, t);
            if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                remaining_.notify_one();
            }
        }
    }

    int size_ = 1;
    std::vector<std::thread> workers_;
    void* job_ = nullptr;
    void (*invoke_)(void*, int) = nullptr;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> remaining_{0};
    std::atomic<bool> stop_{false};
};

}  // namespace prune::nn
