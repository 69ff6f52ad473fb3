#!/bin/bash
# benchmarks/bpe_vs_hf.sh TOKENIZER_JSON TEXT_FILE [ROUNDS=5] [CHUNK_BYTES=4096]: byte-level BPE
# encoding speed, prune (build/bin/bench_bpe) against Hugging Face's tokenizers (the Rust
# library as the npm addon, benchmarks/hf_tokenize.js), alternating one pass of each per
# round on the same chunks, one thread each. Checks both produced the same number of tokens;
# prints each round, the medians and the ratio of the medians (prune / HF tokens per second).
# The npm package is installed once into build/npm (tests/io/npm_install.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${PRUNE_BUILD:-$root/build}" && pwd)
tok=$1
text=$2
rounds=${3:-5}
chunk=${4:-4096}
bash "$root/tests/io/npm_install.sh" "$build/npm" tokenizers@0.23.2
ours=() theirs=()
for r in $(seq "$rounds"); do
  a=$("$build/bin/bench_bpe" "$tok" "$text" "$chunk")
  b=$(node "$root/benchmarks/hf_tokenize.js" "$build/npm" "$tok" "$text" "$chunk")
  echo "round $r: $a | $b"
  ta=$(sed 's/.*tokens=\([0-9]*\) .*/\1/' <<<"$a"); tb=$(sed 's/.*tokens=\([0-9]*\) .*/\1/' <<<"$b")
  [ "$ta" = "$tb" ] || { echo "token counts differ: prune $ta, hf $tb" >&2; exit 1; }
  ours+=("$(sed 's/.*tokens_per_s=//' <<<"$a")"); theirs+=("$(sed 's/.*tokens_per_s=//' <<<"$b")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
echo "median tokens/s: prune $mo, hf $mt, ratio $(awk -v a="$mo" -v b="$mt" 'BEGIN {printf "%.2f", a/b}')x"
