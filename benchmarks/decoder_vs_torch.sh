#!/bin/sh
# benchmarks/decoder_vs_torch.sh: the decoder reference models (bench_decoder, 2 threads) against
# the same math in PyTorch (torch_decoder.py), float32 both, same shapes, in the same run: 2-layer
# slices of TinyLlama-1.1B and GPT-2 small, vocabulary 2048; prefill (8 x 128 tokens),
# forward + backward (causal-LM cross-entropy, every weight's gradient) and one decode step of
# batch 1 after a 512-token KV cache. Rounds alternate the two sides; per case it prints the
# median and the spread (min..max) of every timed run of each side, torch's faster set-up and
# the ratio torch / prune (> 1: prune is faster).
# Usage: benchmarks/decoder_vs_torch.sh [BUILD_DIR]   (ROUNDS=3 REPS=5 by default)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
rounds=${ROUNDS:-3}
reps=${REPS:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Both sides on the same OpenBLAS kernels: those bench_decoder runs on (OpenBLAS 0.3.21 falls
# back to SSE3 kernels on CPUs it does not know; bench_decoder then re-executes itself with
# OPENBLAS_CORETYPE set), given to torch by OPENBLAS_CORETYPE.
"$build/bin/bench_decoder" --benchmark_filter=none 2> "$out/core.txt" > /dev/null
core=$(sed -n 's/^bench_decoder: OpenBLAS kernels //p' "$out/core.txt")
echo "OpenBLAS kernels: ${core:-none} (both sides)"
if [ -n "$core" ]; then export OPENBLAS_CORETYPE="$core"; fi
i=0
while [ "$i" -lt "$rounds" ]; do
  "$build/bin/bench_decoder" --benchmark_format=json --benchmark_repetitions="$reps" \
    --benchmark_min_time=0.01 > "$out/ours$i.json"
  # torch at its best (two set-ups, the faster one counts): 2 torch threads with passive
  # waiting, and 1 torch thread over a 2-thread OpenBLAS
  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/torch_decoder.py" --threads 2 --reps "$reps" \
    > "$out/torch2-$i.jsonl"
  OPENBLAS_NUM_THREADS=2 /usr/bin/python3 "$here/torch_decoder.py" --threads 1 --reps "$reps" \
    > "$out/torch1-$i.jsonl"
  i=$((i + 1))
done
/usr/bin/python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
ARCH = {"0": "llama", "1": "gpt2"}
CASE = {"BM_prefill": "prefill", "BM_train": "train", "BM_decode": "decode"}
ours = {}
for name in glob.glob(os.path.join(out, "ours*.json")):
    for b in json.load(open(name))["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        parts = b["run_name"].split("/")
        a = dict(kv.split(":") for kv in parts[1:] if ":" in kv)
        ours.setdefault((ARCH[a["arch"]], CASE[parts[0]]), []).append(b["real_time"])
torch = {}
for name in glob.glob(os.path.join(out, "torch*.jsonl")):
    for line in open(name):
        t = json.loads(line)
        label = ("2 torch threads, OMP_WAIT_POLICY=PASSIVE" if t["threads"] == 2
                 else "1 torch thread, OPENBLAS_NUM_THREADS=2")
        torch.setdefault((t["arch"], t["case"]), {}).setdefault(label, []).extend(t["times_ms"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"CPU: {cpu}, {os.cpu_count()} cores; load average before the summary: {open('/proc/loadavg').read().split()[:3]}")
print(f"{'case':<16} {'prune ms (median, min..max, n)':<36} {'torch ms (median, min..max, n)':<36} ratio  torch set-up")
spread = lambda v: f"{statistics.median(v):9.2f}  {min(v):.2f}..{max(v):.2f}  n={len(v)}"
for arch in ("llama", "gpt2"):
    for case in ("prefill", "train", "decode"):
        mine = ours.get((arch, case))
        setups = torch.get((arch, case))
        if not mine or not setups:
            continue
        label, theirs = min(setups.items(), key=lambda kv: statistics.median(kv[1]))
        ratio = statistics.median(theirs) / statistics.median(mine)
        print(f"{arch + ' ' + case:<16} {spread(mine):<36} {spread(theirs):<36} {ratio:5.2f}  {label}")
        for other, times in setups.items():
            if other != label:
                print(f"{'':<16} {'':<36} {spread(times):<36} {'':5}  ({other})")
PY
