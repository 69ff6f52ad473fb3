#!/bin/bash
# fuzz/run.sh SECONDS [TARGET...]: builds the libFuzzer targets with clang++ into
# build-fuzz/ (or $PRUNE_FUZZ_BUILD) and runs each for SECONDS (default 30), one after the
# other, from a seed corpus made by fuzz/make_corpus.py plus what earlier runs found
# (build-fuzz/corpus/<target>). Every fuzz_*.cpp of fuzz/ is a target (10: gguf, safetensors,
# safetensors_index, config, tokenizer, bpe, jsonl, glue_tsv, structure_mask, element_masks).
# Prints wall seconds, executions and coverage (cov: edges, ft: features) per target; the
# full libFuzzer log is build-fuzz/<target>.log. Exits 1 when any target crashed (the
# reproducer is left in build-fuzz/artifacts/<target>/).
set -euo pipefail
seconds=${1:-30}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PRUNE_FUZZ_BUILD:-$root/build-fuzz}
python=${PRUNE_TEST_PYTHON:-/usr/bin/python3}

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
status=0
printf '%-26s %8s %12s %8s %8s %s\n' target seconds executions cov ft result
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  mkdir -p "$corpus" "$artifacts" "$seeds/$target"
  log="$build/$target.log"
  started=$(date +%s)
  set +e
  "$build/bin/$target" -max_total_time="$seconds" -dict="$root/fuzz/dict.txt" -max_len=65536 \
    -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" "$seeds/$target" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -oE '(DONE|#[0-9]+).*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || echo '?')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
  if [ $rc -eq 0 ]; then result=ok; else result="CRASH (rc $rc, see $log)"; status=1; fi
  printf '%-26s %8s %12s %8s %8s %s\n' "$target" "$(( $(date +%s) - started ))" "$execs" "$cov" "$ft" "$result"
done
exit $status
