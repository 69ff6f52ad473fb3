// sanitizer_canary: three deliberate bugs, run by ctest only in sanitizer builds
// (PRUNE_SANITIZE, the `asan` preset). Each run must fail with the sanitizer's report:
// a clean ASan + UBSan + LeakSanitizer stage then means the checks were really on
// (instrumented code, LeakSanitizer not disabled by ASAN_OPTIONS, UBSan halting).
//   sanitizer_canary leak             a heap block nobody points to at exit (LeakSanitizer)
//   sanitizer_canary heap-overflow    a read one element past a heap block (AddressSanitizer)
//   sanitizer_canary signed-overflow  INT_MAX + 2 (UndefinedBehaviorSanitizer)
//   sanitizer_canary none             no bug: must exit 0
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
void* volatile sink = nullptr;  // keeps the compiler from dropping the allocation
volatile int big = INT_MAX;     // keeps it from folding the overflow
}  // namespace

int main(int argc, char** argv) {
    const char* bug = argc > 1 ? argv[1] : "none";
    if (std::strcmp(bug, "leak") == 0) {
        sink = std::malloc(4096);
        sink = nullptr;  // the only pointer to the block is gone
        return 0;
    }
    if (std::strcmp(bug, "heap-overflow") == 0) {
        // A size the compiler cannot see (argc is 2: 4 ints), so that AddressSanitizer, not
        // UBSan's object-size check, is the one that reports the read.
        const std::size_t n = static_cast<std::size_t>(argc) + 2;
        int* block = static_cast<int*>(std::malloc(n * sizeof(int)));
        for (std::size_t i = 0; i < n; ++i) block[i] = static_cast<int>(i);
        const int past = block[n];
        std::free(block);
        return past == 12345 ? 3 : 0;
    }
    if (std::strcmp(bug, "signed-overflow") == 0) {
        const int x = big + argc;  // argc is 2: INT_MAX + 2
        return x == 0 ? 3 : 0;
    }
    if (std::strcmp(bug, "none") == 0) return 0;
    std::fprintf(stderr, "sanitizer_canary: unknown bug '%s' (expected leak, heap-overflow, signed-overflow or none)\n", bug);
    return 2;
}
