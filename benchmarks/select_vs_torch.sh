#!/bin/sh
# benchmarks/select_vs_torch.sh: runs bench_select and torch_select.py in the same run and prints
#   ours / streaming pass   (select_step1 vs stream_sum, same thread count; the memory-speed floor)
#   torch / ours            (torch's best configuration vs our 2-thread step)
# and the peak extra memory of both. Usage: benchmarks/select_vs_torch.sh [BUILD_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/bin/bench_select" --benchmark_filter='select_step|stream_sum' --benchmark_format=json \
    --benchmark_repetitions=3 --benchmark_report_aggregates_only=true > "$out/ours.json"
# torch at its best: 2 threads with passive waiting, and 1 thread
OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/torch_select.py" --threads 2 > "$out/torch2.json"
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$here/torch_select.py" --threads 1 > "$out/torch1.json"
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
ours = json.load(open(os.path.join(out, "ours.json")))["benchmarks"]
def get(name, field="real_time"):
    for b in ours:
        if b["name"] == name + "_median":
            return b[field]
    raise SystemExit("missing " + name)
torch = [json.load(open(os.path.join(out, f))) for f in ("torch1.json", "torch2.json")]
best_torch = min(torch, key=lambda t: t["seconds"])
for threads in (1, 2):
    step = get(f"select_step1/{threads}/min_time:2.000/real_time")
    stream = get(f"stream_sum/{threads}/min_time:2.000/real_time")
    print(f"threads {threads}: select step {step:.1f} ms, streaming pass {stream:.1f} ms, "
          f"ratio ours/stream = {step / stream:.2f}")
step2 = get("select_step1/2/min_time:2.000/real_time")
print(f"torch global_unstructured: " + ", ".join(f"{t['threads']} thread(s) {t['seconds']:.2f} s" for t in torch)
      + f"; best {best_torch['seconds']:.2f} s")
print(f"ratio torch(best)/ours(2 threads) = {best_torch['seconds'] * 1000.0 / step2:.1f}")
peak = get("select_step1/2/min_time:2.000/real_time", "peak_extra_MB")
mask = get("select_step1/2/min_time:2.000/real_time", "mask_MB")
print(f"peak extra memory: ours {peak:.1f} MB (masks {mask:.1f} MB), torch peak RSS growth "
      f"{max(t['peak_rss_growth_mb'] for t in torch):.0f} MB")
PY
