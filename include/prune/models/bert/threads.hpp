// prune/models/bert/threads.hpp: the small fixed thread pool the forward pass runs on.
//
// `thread_pool::run(f)` calls f(t) for t = 0 .. size()-1 at once (t = 0 on the calling
// thread) and returns when all have finished. Idle workers sleep on a futex (C++20
// atomic wait), so they do not steal the cores from other work between calls.
// Jobs must not throw (kernels only; input is validated before).
#pragma once

#include <prune/error.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace prune::bert {

/// A fixed set of threads that run one job at a time, each thread with its own index.
class thread_pool {
public:
    /// A pool of `threads` threads in total (the caller counts as one); 0 = hardware concurrency.
    explicit thread_pool(int threads = 0) {
        if (threads <= 0) {
            threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        }
        size_ = threads;
        for (int t = 1; t < threads; ++t) {
            workers_.emplace_back([this, t] { loop(t); });
        }
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() {
        stop_.store(true);
        generation_.fetch_add(1);
        generation_.notify_all();
        for (auto& w : workers_) {
            w.join();
        }
    }

    /// Threads in the pool, the caller included.
    [[nodiscard]] int size() const noexcept { return size_; }

    /// Runs job(t) for every thread index t concurrently; returns when all are done.
    void run(const std::function<void(int)>& job) {
        if (size_ == 1) {
            job(0);
            return;
        }
        job_ = &job;
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

    /// Splits [0, n) into size() contiguous chunks and runs body(begin, end) on each (empty ones skipped).
    void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& body) {
        if (n <= 0) {
            return;
        }
        const int parts = static_cast<int>(std::min<std::int64_t>(size_, n));
        if (parts == 1) {
            body(0, n);
            return;
        }
        run([&](int t) {
            if (t < parts) {
                body(n * t / parts, n * (t + 1) / parts);
            }
        });
    }

    /// Runs body(i) for i in [0, n), handing indices out dynamically (for uneven tasks).
    void parallel_tasks(std::int64_t n, const std::function<void(std::int64_t, int)>& body) {
        if (n <= 0) {
            return;
        }
        std::atomic<std::int64_t> next{0};
        run([&](int t) {
            for (std::int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
                body(i, t);
            }
        });
    }

private:
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
            (*job_)(t);
            if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                remaining_.notify_one();
            }
        }
    }

    int size_ = 1;
    std::vector<std::thread> workers_;
    const std::function<void(int)>* job_ = nullptr;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> remaining_{0};
    std::atomic<bool> stop_{false};
};

}  // namespace prune::bert
