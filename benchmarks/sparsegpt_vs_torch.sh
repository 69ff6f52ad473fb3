#!/bin/sh
# benchmarks/sparsegpt_vs_torch.sh: SparseGPT on one linear, prune (bench_sparsegpt) against the
# PyTorch port of the reference fasterprune (torch_sparsegpt.py), float32 both, on the same
# weights and calibration sums (4096x4096 and TinyLlama's down_proj 2048x5632; 16 x 512 tokens),
# in the same run. Prints per shape and pattern both times, torch's best configuration and
# the ratio torch / prune at 2 threads, and the peak RSS growth of both.
# Usage: benchmarks/sparsegpt_vs_torch.sh [BUILD_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir "$out/data"
OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/torch_sparsegpt.py" --write "$out/data"
PRUNE_SPARSEGPT_DATA="$out/data" "$build/bin/bench_sparsegpt" --benchmark_format=json > "$out/ours.json"
# torch at its best (two configurations, the faster one counts): 2 torch threads with passive
# waiting, and 1 torch thread over a 2-thread OpenBLAS
OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/torch_sparsegpt.py" --data "$out/data" --threads 2 > "$out/torch2.jsonl"
OPENBLAS_NUM_THREADS=2 /usr/bin/python3 "$here/torch_sparsegpt.py" --data "$out/data" --threads 1 > "$out/torch1.jsonl"
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
ours = {}
for b in json.load(open(os.path.join(out, "ours.json")))["benchmarks"]:
    a = dict(kv.split(":") for kv in b["name"].split("/")[1:] if ":" in kv)
    key = (f"{a['rows']}x{a['columns']}", "2:4" if a["nm"] == "1" else "0.5", int(a["threads"]))
    ours[key] = (b["real_time"] / 1000.0, b.get("peak_rss_growth_MB", float("nan")))
torch = {}
for name in ("torch2.jsonl", "torch1.jsonl"):
    for line in open(os.path.join(out, name)):
        t = json.loads(line)
        key = (t["shape"], t["pattern"])
        label = ("2 torch threads, OMP_WAIT_POLICY=PASSIVE" if t["threads"] == 2
                 else "1 torch thread, OPENBLAS_NUM_THREADS=2")
        if key not in torch or t["seconds"] < torch[key][0]:
            torch[key] = (t["seconds"], label, t["peak_rss_growth_mb"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"CPU: {cpu}")
for (shape, pattern), (seconds, label, rss) in sorted(torch.items()):
    mine, mine_rss = ours[(shape, pattern, 2)]
    print(f"{shape} {pattern}: prune {mine:.2f} s (2 threads), torch {seconds:.2f} s ({label}); "
          f"ratio torch/prune = {seconds / mine:.2f}; peak RSS growth prune {mine_rss:.0f} MB, torch {rss:.0f} MB")
    if (shape, pattern, 1) in ours:
        print(f"    prune at 1 thread: {ours[(shape, pattern, 1)][0]:.2f} s")
PY
