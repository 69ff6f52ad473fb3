#!/bin/bash
# fuzz/run.sh SECONDS [TARGET...]: builds the libFuzzer targets with clang++ into
# build-fuzz/ (or $PRUNE_FUZZ_BUILD) and runs each for SECONDS (default 30), PRUNE_FUZZ_JOBS
# targets at a time (default: nproc), from a seed corpus made by fuzz/make_corpus.py plus
# what earlier runs found (build-fuzz/corpus/<target>). Every fuzz_*.cpp of fuzz/ is a target
# (10: gguf, safetensors, safetensors_index, config, tokenizer, bpe, jsonl, glue_tsv,
# structure_mask, element_masks); the whole run takes about ceil(targets / jobs) * SECONDS.
# Prints wall seconds, executions and coverage (cov: edges, ft: features) per target, in the
# order of the targets, once all have finished; the full libFuzzer log is
# build-fuzz/<target>.log. Exits 1 when any target crashed (the reproducer is left in
# build-fuzz/artifacts/<target>/).
set -euo pipefail
seconds=${1:-30}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PRUNE_FUZZ_BUILD:-$root/build-fuzz}
python=${PRUNE_TEST_PYTHON:-/usr/bin/python3}
jobs=${PRUNE_FUZZ_JOBS:-$(nproc)}
if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz/run.sh: PRUNE_FUZZ_JOBS must be a whole number of at least 1, got '$jobs'" >&2
  exit 2
fi

mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DPRUNE_BUILD_FUZZERS=ON -DPRUNE_BUILD_TESTS=OFF \
  -DPRUNE_BUILD_EXAMPLES=OFF -DPRUNE_BUILD_BENCHMARKS=OFF -DPRUNE_WITH_TORCH=OFF -DPRUNE_INSTALL=OFF >"$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; exit 1; }
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(cd "$root/fuzz" && ls fuzz_*.cpp | sed 's/\.cpp$//'))
fi
cmake --build "$build" --target "${targets[@]}" -j2

seeds="$build/seeds"
rm -rf "$seeds" && "$python" "$root/fuzz/make_corpus.py" "$seeds"

# fuzz_one TARGET: runs TARGET for SECONDS (in the background) and writes its table row to
# $build/<target>.row and its exit code to $build/<target>.rc.
fuzz_one() {
  local target=$1 corpus="$build/corpus/$1" artifacts="$build/artifacts/$1" log="$build/$1.log"
  local started rc execs cov ft result
  mkdir -p "$corpus" "$artifacts" "$seeds/$target"
  started=$(date +%s)
  "$build/bin/$target" -max_total_time="$seconds" -dict="$root/fuzz/dict.txt" -max_len=65536 \
    -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" "$seeds/$target" >"$log" 2>&1 && rc=0 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -oE '(DONE|#[0-9]+).*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || echo '?')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
  if [ $rc -eq 0 ]; then result=ok; else result="CRASH (rc $rc, see $log)"; fi
  printf '%-26s %8s %12s %8s %8s %s\n' "$target" "$(( $(date +%s) - started ))" "$execs" "$cov" "$ft" "$result" \
    >"$build/$target.row"
  echo $rc >"$build/$target.rc"
}

echo "fuzz/run.sh: ${#targets[@]} targets, $seconds s each, $jobs at a time" >&2
running=0
for target in "${targets[@]}"; do
  rm -f "$build/$target.row" "$build/$target.rc"
  if [ $running -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
wait

status=0
printf '%-26s %8s %12s %8s %8s %s\n' target seconds executions cov ft result
for target in "${targets[@]}"; do
  if [ -f "$build/$target.rc" ] && [ -f "$build/$target.row" ]; then
    cat "$build/$target.row"
    [ "$(cat "$build/$target.rc")" = 0 ] || status=1
  else
    printf '%-26s %s\n' "$target" "NO RESULT (the runner failed; see $build/$target.log)"
    status=1
  fi
done
exit $status
