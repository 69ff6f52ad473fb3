#!/bin/sh
# benchmarks/sparsify_layer_vs_torch.sh: the whole per-layer work of one-shot pruning on one
# decoder layer of TinyLlama-1.1B's shape (hidden 2048, 32 heads, 4 KV heads, head_dim 64,
# intermediate 5632) with 16 x 512 calibration tokens -- the calibration pass collecting each
# method's statistics, the masks of the 7 linears (50% unstructured per row, and 2:4), and the
# pass through the pruned layer -- prune (bench_sparsify_layer, 2 threads, batches of 8
# sequences) against the PyTorch port of the reference code (torch_sparsify_layer.py: forward
# hooks on every linear, batches of 1 sequence), float32 both, on the same weights and tokens,
# in the same run. Each (method, pattern) runs in its own processes, so each peak RSS growth is
# its own. Prints per method and pattern: the median and spread (min-max) of both, torch's
# best configuration, the ratio of the medians torch / prune, the peak RSS growth of both, and
# the process CPU time of both (every thread; the fair measure when the machine is shared).
# Usage: benchmarks/sparsify_layer_vs_torch.sh [BUILD_DIR]
#   REPEAT=n (default 3): runs per side and configuration; METHODS="wanda sparsegpt" (default both)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
repeat=${REPEAT:-3}
methods=${METHODS:-wanda sparsegpt}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir "$out/data"
/usr/bin/python3 "$here/torch_sparsify_layer.py" --write "$out/data"
for method in $methods; do
  m=0; [ "$method" = sparsegpt ] && m=1
  for nm in 0 1; do
    pattern=0.5; [ "$nm" = 1 ] && pattern=2:4
    PRUNE_SPARSIFY_LAYER_DATA="$out/data" "$build/bin/bench_sparsify_layer" \
      --benchmark_filter="method:$m/nm:$nm/" --benchmark_repetitions="$repeat" \
      --benchmark_format=json > "$out/ours-$method-$nm.json"
    # torch at its best (two configurations, the faster median counts): 2 torch threads with
    # passive waiting, and 1 torch thread over a 2-thread OpenBLAS
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/torch_sparsify_layer.py" --data "$out/data" \
      --method "$method" --pattern "$pattern" --threads 2 --repeat "$repeat" >> "$out/torch.jsonl"
    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 "$here/torch_sparsify_layer.py" --data "$out/data" \
      --method "$method" --pattern "$pattern" --threads 1 --repeat "$repeat" >> "$out/torch.jsonl"
  done
done
/usr/bin/python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
ours = {}
for path in glob.glob(os.path.join(out, "ours-*.json")):
    runs = [b for b in json.load(open(path))["benchmarks"] if b.get("run_type") == "iteration"]
    a = dict(kv.split(":") for kv in runs[0]["name"].split("/")[1:] if ":" in kv)
    key = ("wanda" if a["method"] == "0" else "sparsegpt", "2:4" if a["nm"] == "1" else "0.5")
    ours[key] = ([r["real_time"] / 1000.0 for r in runs], runs[0]["peak_rss_growth_MB"],
                 [r["cpu_time"] / 1000.0 for r in runs])
torch = {}
for line in open(os.path.join(out, "torch.jsonl")):
    t = json.loads(line)
    key = (t["method"], t["pattern"])
    label = ("2 torch threads, OMP_WAIT_POLICY=PASSIVE" if t["threads"] == 2
             else "1 torch thread, OPENBLAS_NUM_THREADS=2")
    if key not in torch or statistics.median(t["seconds"]) < statistics.median(torch[key][0]):
        torch[key] = (t["seconds"], label, t["peak_rss_growth_mb"], t["cpu_seconds"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"CPU: {cpu}")
def text(s):
    return f"median {statistics.median(s):.2f} s (min {min(s):.2f}, max {max(s):.2f}, {len(s)} runs)"
for key in sorted(torch):
    mine, mine_rss, mine_cpu = ours[key]
    theirs, label, rss, theirs_cpu = torch[key]
    print(f"{key[0]} {key[1]}: prune {text(mine)}; torch {text(theirs)} ({label}); "
          f"ratio torch/prune = {statistics.median(theirs) / statistics.median(mine):.2f}; "
          f"peak RSS growth prune {mine_rss:.0f} MB, torch {rss:.0f} MB")
    print(f"    process CPU time: prune {text(mine_cpu)}, torch {text(theirs_cpu)}; "
          f"ratio {statistics.median(theirs_cpu) / statistics.median(mine_cpu):.2f}")
PY
