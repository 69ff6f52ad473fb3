#!/usr/bin/env bash
# The test command of README.md (and of CI): on a fresh Debian 12 machine it installs what
# is missing, then builds and runs every test twice:
#   1. the `release` preset: warnings are errors, every public header compiles on its own,
#      ctest runs the whole suite (PyTorch oracles, consumer projects, compile-fail tests);
#   2. the `asan` preset: the same ctest suite, every test, under ASan + UBSan + LeakSanitizer,
#      built by clang (the test programs and the example binaries the CLI tests run are all
#      instrumented; the libtorch programs are built by GCC in the `asan-torch` preset),
#      with three deliberate bugs (tests/badinput/sanitizer_canary.cpp) that must be caught;
# and, when the fuzz targets exist and clang is present, runs each one for a bounded time.
# Usage: scripts/test.sh [--no-asan] [--no-fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."

run_asan=1
run_fuzz=1
for arg in "$@"; do
  case "$arg" in
    --no-asan) run_asan=0 ;;
    --no-fuzz) run_fuzz=0 ;;
    --asan-binaries) ;;  # accepted for old scripts: the binaries are always in the ASan stage now
    *) echo "scripts/test.sh: unknown option '$arg' (expected --no-asan or --no-fuzz)" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh
source scripts/ccache.sh

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" >&2; }

step "release build (warnings as errors)"
cmake --preset release
cmake --build --preset release
step "every public header compiles on its own"
cmake --build --preset release --target all_verify_interface_header_sets
step "release tests"
ctest --preset release

# Under the sanitizers: the whole ctest suite of the `asan` preset (ASan + UBSan, LeakSanitizer
# on, every error fatal), built by clang 14 -- so the whole suite also builds and passes with the
# second supported compiler -- at -O0 -g1 without -march=native: clang -O0 compiles a model TU
# under ASan in about a quarter of GCC -Og's CPU time. The example binaries, which the CLI tests
# run on whole jobs, get -O1 (examples/CMakeLists.txt). clang 14 cannot compile libtorch's own
# headers in C++20 mode, so the few test programs that link libtorch (label `libtorch`) are
# built and run under the same sanitizers by GCC in a small second tree, `asan-torch`. The
# tests that ask PyTorch for the truth run it as a separate, uninstrumented python3 process,
# as in the release stage. ASan's and UBSan's options are the preset's (CMakePresets.json),
# repeated here so that they show in the log.
if [ "$run_asan" = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  step "ASan + UBSan build, clang -O0 (every test program and the example binaries)"
  cmake --preset asan
  cmake --build --preset asan -j2
  step "ASan + UBSan + LeakSanitizer: the whole test suite (clang)"
  ctest --preset asan
  step "ASan + UBSan build, GCC -O0: the test programs that link libtorch"
  cmake --preset asan-torch
  cmake --build --preset asan-torch -j2
  step "ASan + UBSan + LeakSanitizer: the libtorch tests (GCC)"
  ctest --preset asan-torch
fi

if [ "$run_fuzz" = 1 ] && [ -x fuzz/run.sh ]; then
  step "fuzzing, bounded"
  fuzz/run.sh "${PRUNE_FUZZ_SECONDS:-30}"
fi
step "all tests passed"
