#!/bin/sh
# benchmarks/mask_vs_torch.sh: runs bench_mask (prune::apply vs plain byte-mask loops, one
# thread) and torch_mask.py (masked_fill_ / mul_ at 1 and 2 threads) in the same run and prints
#   prune / best byte loop   (the issue asks for <= 1.5)
#   torch(best) / prune
# Usage: benchmarks/mask_vs_torch.sh [BUILD_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/bin/bench_mask" --benchmark_repetitions=5 --benchmark_color=false | tee "$out/ours.txt" | grep '^ratio'
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$here/torch_mask.py" --threads 1 > "$out/torch1.json"
OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/torch_mask.py" --threads 2 > "$out/torch2.json"
/usr/bin/python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
text = open(os.path.join(out, "ours.txt")).read()
prune_ms = float(re.search(r"ratio prune/best_byte_loop = [0-9.]+ \(prune ([0-9.]+) ms", text).group(1))
torch = [json.load(open(os.path.join(out, f))) for f in ("torch1.json", "torch2.json")]
for t in torch:
    print(f"torch {t['threads']} thread(s): masked_fill_ {t['masked_fill'] * 1e3:.1f} ms, mul_ {t['mul'] * 1e3:.1f} ms")
best = min(min(t["masked_fill"], t["mul"]) for t in torch) * 1e3
print(f"prune::apply (1 thread) {prune_ms:.1f} ms; ratio torch(best)/prune = {best / prune_ms:.2f}")
PY
