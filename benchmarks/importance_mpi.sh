#!/bin/sh
# benchmarks/importance_mpi.sh: prune-importance as two MPI ranks of one thread each against one
# process of two threads, in the same run, on the same 2 cores (docs/distributed.md): a Llama of
# 4 layers x 8 query heads on 2 K/V heads, width 256, made by prune-pretrain (1 step), and 192
# random sequences of 64 tokens in batches of 8 (24 batches, 12 per rank). Rounds alternate the
# two set-ups; it prints every time, the medians, the ratio one-process / two-ranks (> 1: the
# ranks are faster) and checks that both wrote the same bytes.
# Usage: benchmarks/importance_mpi.sh [BUILD_DIR]   (ROUNDS=3; MPIEXEC=mpiexec)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
rounds=${ROUNDS:-3}
mpiexec=${MPIEXEC:-mpiexec}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OPENBLAS_NUM_THREADS=1
/usr/bin/python3 - "$out" <<'PY'
import json, os, random, sys
d = sys.argv[1]
rng = random.Random(1)
words = ["w%d" % i for i in range(600)]
os.makedirs(d + "/data/pretrain")
for name, lines in (("train", 400), ("dev", 50)):
    with open(d + "/data/pretrain/%s.txt" % name, "w") as f:
        for _ in range(lines):
            f.write(" ".join(rng.choice(words) for _ in range(40)) + "\n")
with open(d + "/rows.jsonl", "w") as f:
    for _ in range(192):
        f.write(json.dumps({"input_ids": [rng.randrange(500) for _ in range(64)]}) + "\n")
PY
"$build/bin/prune-pretrain" --arch llama --data "$out/data" --layers 4 --hidden 256 --heads 8 --kv-heads 2 \
  --intermediate 512 --vocab-size 500 --max-length 64 --steps 1 --batch-size 8 --threads 2 --out "$out/lm" 2> "$out/pretrain.txt"
flags="--model $out/lm --data $out/rows.jsonl --batch-size 8"
seconds() {  # the wall time of "$@", in seconds
  start=$(date +%s.%N)
  "$@" 2> "$out/err.txt" || { cat "$out/err.txt" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}
one="" two=""
i=0
while [ "$i" -lt "$rounds" ]; do
  # shellcheck disable=SC2086
  one="$one $(seconds "$build/bin/prune-importance" $flags --threads 2 --json "$out/one.json")"
  # shellcheck disable=SC2086
  two="$two $(seconds "$mpiexec" -n 2 "$build/bin/prune-importance" $flags --threads 1 --json "$out/two.json")"
  i=$((i + 1))
done
median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
m1=$(median $one)
m2=$(median $two)
echo "one process, --threads 2 (s):   $one   median $m1"
echo "mpiexec -n 2, --threads 1 (s): $two   median $m2"
echo "ratio one-process / two-ranks: $(awk -v a="$m1" -v b="$m2" 'BEGIN { printf "%.2f", a / b }')"
if cmp -s "$out/one.json" "$out/two.json"; then echo "outputs: identical bytes"; else echo "outputs: DIFFERENT" >&2; exit 1; fi
