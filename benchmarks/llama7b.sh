#!/bin/bash
# benchmarks/llama7b.sh: prune's binaries on a Llama-2-7B-shaped checkpoint (random bf16
# weights, 6.74B parameters, 13.5 GB in 3 shards; benchmarks/make_llama.py writes it) against
# PyTorch doing the same work (benchmarks/torch_llama7b.py: the model loaded into memory,
# pruned, saved), each task in its own process, in the same run. Prints per task wall time
# and peak RSS of both sides, their status (ok / out_of_memory / rss_limit / timeout / failed)
# and the ratio torch seconds / prune seconds.
#
# Usage: benchmarks/llama7b.sh [--preset 7b|tiny] [--model DIR] [--work DIR] [--build DIR]
#          [--tasks "global_magnitude magnitude wanda sparsegpt nm24"] [--no-torch] [--no-prune]
#          [--rss-gib N] [--torch-gib N] [--timeout SECONDS] [--threads N]
#   --model   the checkpoint directory, generated when it has no model.safetensors.index.json
#             (default $LLAMA7B_DIR, else /work/scratch/llama7b; --preset tiny: a temporary one)
#   --work    where the pruned outputs go, each deleted after its task (default $LLAMA7B_WORK,
#             else /work/scratch/llama7b-work); results.jsonl and the logs stay there
#   --rss-gib the prune binaries' limit of anonymous memory in GiB (default 12): see "Memory limits"
#   --torch-gib  torch's address-space cap in GiB (default 20)
#   --timeout per process, seconds (default 3600)
# --preset tiny runs everything end to end in seconds on a 2-layer model (and checks that
# prune-eval loads every pruned output).
#
# Memory limits. A non-streaming binary must not take the machine down, and the kernel's OOM
# killer must not pick a victim among other people's processes. A cap on the address space
# (prlimit --as / ulimit -v) would wrongly fail a streaming binary that mmaps its 13.5 GB of
# shards (a mapping counts in full against RLIMIT_AS, resident or not), and even the resident
# size (VmRSS) counts the touched pages of such a mapping, which are clean page cache the
# kernel can drop at any time. So a watchdog (benchmarks/rss_watchdog.py) polls /proc/PID/status
# every 0.05 s and kills the binary when its anonymous memory (RssAnon + RssShmem: what cannot
# be dropped) passes --rss-gib; the table reports the kernel's peak VmRSS (/usr/bin/time -v "Maximum resident set
# size", file pages included) and the watchdog's sampled peak of anonymous memory. PyTorch
# reads the weights into its own memory (anonymous), so for it RLIMIT_AS is the right tool:
# an allocation past --torch-gib fails inside torch and is reported as out_of_memory; the same
# watchdog (limit --torch-gib) guards it too.
#
# Threads: prune --threads 2; torch torch.set_num_threads(2) with OMP_WAIT_POLICY=PASSIVE.
# The page cache is warmed (the shards read to /dev/null) before every process, and that read
# is not timed: times are "once the file is in the page cache" (the torch process evicts much
# of it: it holds 13.5 GB itself).
#
# Measured (2026-12-07, AMD EPYC, 2 vCPUs, 24.7 GB RAM, shared: other people's compilers ran
# throughout, load average 4.4-5.4; each figure is one run, so read them as orders of magnitude):
#   make_llama.py --preset 7b: 6,738,415,616 parameters, 13,476,831,232 bytes in 3 shards,
#     139 s, peak RSS 744 MiB.
#   prune binaries of commit 8de441b (before streaming), --rss-gib 12: every task killed by the
#     watchdog. prune-sparsify (magnitude, wanda, sparsegpt, 2:4) loads the model into float32
#     memory and reached 12 GiB of anonymous memory after 10.1 / 9.9 / 16.2 / 10.6 s.
#     prune-magnitude (global) finished its selection ("step 1 pruned 3238002688 of 6476005376")
#     and was killed while writing: after 102 s (peak VmRSS 20.8 GiB, file pages included);
#     again at --rss-gib 14 after 127 s.
#   PyTorch 1.13 (2 threads, OMP_WAIT_POLICY=PASSIVE), seconds = load + prune + save:
#     global magnitude  out of memory: global_unstructured asked for 12.95 GB (the concatenated
#                       scores) after a 21.8 s load; peak RSS 13,067 MiB (--torch-gib 20)
#     magnitude         984.5 s (load 12.7, l1_unstructured 947.4, save 24.4), peak RSS 14,246 MiB,
#                       46% of one core's time on average (the machine was shared)
#     wanda             1480.6 s (load 19.9, prune 1451.7, save 9.0), peak RSS 14,653 MiB, 71%
#     2:4               298.0 s (load 14.0, prune 263.9, save 20.1), peak RSS 13,494 MiB, 57%
#   No ratio yet: no prune task finished on the 7B with the binaries of that commit. The
#   streaming prune-magnitude of commit d2fdabe was built and checked on --preset tiny (3
#   shards in, 3 out, prune-eval loads them) but not run on the 7B: its output (13.5 GB of
#   shards + masks.safetensors) would have left less than 20 GB of the disk free that day.
#   --preset tiny (2 layers, hidden 64): every task ok; prune-eval loads every output; torch's
#   Wanda zeros the same weights as prune-sparsify's (0 of 92,160 differ); per-matrix magnitude
#   and 2:4 differ in 64 and 134 positions, all at ties of |w| in bf16.
# Measured since, with the streaming binaries (2 threads; docs/large-models.md has the details):
#   prune-magnitude global 50%: 77 s quiet, peak RSS 1.69 GB (PyTorch: out of memory).
#   prune-sparsify magnitude 117 s / 1.92 GB (PyTorch 984.5 s, 8.4x as long); wanda + --eval
#   760 s / 2.48 GB (PyTorch 1480.6 s without an evaluation, 1.9x); 2:4 151 s / 1.90 GB quiet
#   (PyTorch 298.0 s, 2.0x); sparsegpt 933 s / 3.96 GB quiet (PyTorch not run). Magnitude,
#   wanda and every PyTorch run shared the machine: read the ratios as orders of magnitude.
#   prune-eval on the 7B (2 x 64 tokens, 1 thread): 71-84 s, 1.36 GB (layer by layer).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

preset=7b; model=${LLAMA7B_DIR:-}; work=${LLAMA7B_WORK:-}; build=$repo/build
tasks="global_magnitude magnitude wanda sparsegpt nm24"
run_torch=1; run_prune=1; rss_gib=12; torch_gib=20; timeout_s=3600; threads=2
die() { echo "llama7b.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --preset) preset=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --no-torch) run_torch=0; shift ;;
    --no-prune) run_prune=0; shift ;;
    --rss-gib) rss_gib=$2; shift 2 ;;
    --torch-gib) torch_gib=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case $preset in 7b|tiny) ;; *) die "--preset must be 7b or tiny (got '$preset')" ;; esac
for t in $tasks; do
  case $t in global_magnitude|magnitude|wanda|sparsegpt|nm24) ;;
    *) die "unknown task '$t' (expected global_magnitude magnitude wanda sparsegpt nm24)" ;; esac
done
py=/usr/bin/python3
if [ "$run_prune" = 1 ]; then   # the binaries the tasks need
  needed=""; [ "$preset" = tiny ] && needed=prune-eval
  for t in $tasks; do
    if [ "$t" = global_magnitude ]; then needed="$needed prune-magnitude"; else needed="$needed prune-sparsify"; fi
  done
  for b in $needed; do
    [ -x "$build/bin/$b" ] || die "$build/bin/$b not built (cmake --build build --target $b)"
  done
fi

tmp_root=
cleanup() { [ -n "$tmp_root" ] && rm -rf "$tmp_root"; return 0; }
trap cleanup EXIT
if [ "$preset" = tiny ]; then
  tmp_root=$(mktemp -d)
  model=${model:-$tmp_root/model}; work=${work:-$tmp_root/work}
else
  model=${model:-/work/scratch/llama7b}; work=${work:-/work/scratch/llama7b-work}
fi
model=$(realpath -m "$model"); work=$(realpath -m "$work")
for d in "$model" "$work"; do
  case $d/ in "$repo"/*) die "$d is inside the repository $repo: use a scratch directory" ;; esac
done
mkdir -p "$work" "$(dirname "$model")"

# ---- the checkpoint -------------------------------------------------------------------------
size=$($py "$here/make_llama.py" --preset "$preset" --out "$model" --dry-run |
       $py -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
reserve=$((20 * 1000 ** 3)); [ "$preset" = tiny ] && reserve=0
# one pruned output at a time: the shards and masks.safetensors (a byte per pruned bf16 weight)
need=$((size + size / 2 + reserve))
[ -f "$model/model.safetensors.index.json" ] || need=$((need + size))
avail=$(df -B1 --output=avail "$work" | tail -1)
if [ "$avail" -lt "$need" ]; then
  die "not enough disk on $(df --output=target "$work" | tail -1): $((avail / 1000 ** 3)) GB free, need $((need / 1000 ** 3)) GB (model $((size / 1000 ** 3)) GB, one output with its masks 1.5 times as big, 20 GB kept free)"
fi
if [ ! -f "$model/model.safetensors.index.json" ]; then
  [ -e "$model" ] && [ -n "$(ls -A "$model")" ] && die "$model exists without model.safetensors.index.json (an interrupted generation?): remove it"
  echo "generating $model ($((size / 1000 ** 2)) MB)..." >&2
  start=$(date +%s)
  shard_gb=5; [ "$preset" = tiny ] && shard_gb=0.0001   # tiny: 3 shards, as the 7B has
  $py "$here/make_llama.py" --preset "$preset" --out "$model" --shard-gb "$shard_gb" --force >/dev/null
  echo "generated in $(($(date +%s) - start)) s" >&2
fi
warm() { cat "$model"/model-*-of-*.safetensors > /dev/null; }

# ---- running one process under the limits ---------------------------------------------------
# run_limited LIMIT_MIB NAME CMD...: CMD under /usr/bin/time -v and the watchdog; sets r_status
# (ok, failed, rss_limit, timeout), r_seconds, r_rss (peak VmRSS, MiB), r_anon (sampled peak
# anonymous memory, MiB). Logs: $work/NAME.{out,err,time}.
run_limited() {
  local limit=$1 name=$2; shift 2
  local report
  report=$($py "$here/rss_watchdog.py" --limit-mib "$limit" --timeout "$timeout_s" --log "$work/$name" -- "$@")
  read -r r_status r_seconds r_rss r_anon < <($py -c 'import json,sys; r=json.loads(sys.argv[1])
print(r["status"], r["seconds"], r["peak_rss_mib"], r["peak_anon_mib"])' "$report")
}

# prune_command TASK OUT: the prune binary's command line for a task, into the array cmd
prune_command() {
  local common=(--model "$model" --threads "$threads" --out "$2")
  local calib=(--calib "$model/calib.jsonl")
  case $1 in
    global_magnitude) cmd=("$build/bin/prune-magnitude" "${common[@]}" --amount 0.5 --steps 1
                           --include 'model\.layers\.[0-9]+\.(self_attn|mlp)\.[a-z_]+_proj\.weight$') ;;
    magnitude) cmd=("$build/bin/prune-sparsify" "${common[@]}" --method magnitude --sparsity 0.5) ;;
    wanda) cmd=("$build/bin/prune-sparsify" "${common[@]}" "${calib[@]}" --method wanda --sparsity 0.5) ;;
    sparsegpt) cmd=("$build/bin/prune-sparsify" "${common[@]}" "${calib[@]}" --method sparsegpt --sparsity 0.5) ;;
    nm24) cmd=("$build/bin/prune-sparsify" "${common[@]}" --method magnitude --nm 2:4) ;;
  esac
}

# clean DIR: an output and what a killed binary leaves next to it (prune's binaries write into
# a hidden .NAME.staging-* directory and rename it when done)
clean() { rm -rf "$1" "$(dirname "$1")/.$(basename "$1")".staging-*; }

results=$work/results.jsonl
: > "$results"
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "CPU: $cpu, $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2 / 1e6}' /proc/meminfo) RAM; model $model ($((size / 1000 ** 2)) MB)" >&2
if [ "$preset" = tiny ] && [ "$run_prune" = 1 ]; then
  echo "prune-eval on the dense model: $("$build/bin/prune-eval" --model "$model" --data "$model/eval.jsonl")" >&2
fi
for task in $tasks; do
  out=$work/out-$task
  p_status=-; p_s=; p_rss=; p_anon=
  if [ "$run_prune" = 1 ]; then
    clean "$out"; warm
    prune_command "$task" "$out"
    run_limited $((rss_gib * 1024)) "prune-$task" "${cmd[@]}"
    p_status=$r_status; p_s=$r_seconds; p_rss=$r_rss; p_anon=$r_anon
    [ "$p_status" = ok ] || echo "prune $task: $p_status; last lines of $work/prune-$task.err:" >&2
    [ "$p_status" = ok ] || tail -3 "$work/prune-$task.err" >&2
    if [ "$preset" = tiny ] && [ "$p_status" = ok ]; then
      "$build/bin/prune-eval" --model "$out" --data "$model/eval.jsonl" --json "$work/eval-$task.json" > /dev/null
      echo "prune-eval on the $task output: $($py -c 'import json,sys; print("perplexity %.2f" % json.load(open(sys.argv[1]))["perplexity"])' "$work/eval-$task.json")" >&2
    fi
  fi
  # tiny: torch's pruned weights compared with prune's (zero patterns); the 7B: one output at a time
  compare=(); [ "$preset" = tiny ] && [ -d "$out" ] && compare=(--compare-with "$out")
  [ "$preset" = tiny ] || clean "$out"
  t_status=-; t_s=; t_rss=
  if [ "$run_torch" = 1 ] && [ "$task" != sparsegpt ]; then
    clean "$work/torch-$task"; warm
    OMP_WAIT_POLICY=PASSIVE run_limited $((torch_gib * 1024)) "torch-$task" \
      $py "$here/torch_llama7b.py" --model "$model" --task "$task" --threads "$threads" \
      --max-gib "$torch_gib" --save "$work/torch-$task" "${compare[@]}"
    t_s=$r_seconds; t_rss=$r_rss; t_status=$r_status
    if [ "$r_status" = ok ] || [ "$r_status" = failed ]; then
      # torch's own account: its status, and seconds = load + prune + save (no imports, no checks)
      read -r t_status t_s < <($py -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(r["status"], r["seconds"])' "$work/torch-$task.out" 2>/dev/null || echo failed "$t_s")
    fi
    [ "$t_status" = ok ] || echo "torch $task: $t_status; $(tail -1 "$work/torch-$task.out" 2>/dev/null) $(tail -1 "$work/torch-$task.err")" >&2
    clean "$work/torch-$task"
    $py -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1])
if "compared" in r: print("%s: torch and prune zero different weights at %d of %d positions" % (r["task"], r["zeros_differ"], r["compared"]))' \
      "$work/torch-$task.out" >&2 || true
  fi
  clean "$out"
  $py -c 'import json,sys; a=sys.argv[1:]; print(json.dumps(dict(task=a[0], prune_status=a[1], prune_seconds=a[2], prune_peak_rss_mib=a[3], prune_peak_anon_mib=a[4], torch_status=a[5], torch_seconds=a[6], torch_peak_rss_mib=a[7])))' \
    "$task" "$p_status" "$p_s" "$p_rss" "$p_anon" "$t_status" "$t_s" "$t_rss" >> "$results"
done

$py - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'task':<17} {'prune s':>8} {'peak RSS':>10} {'peak anon':>10} {'status':<9} {'torch s':>8} {'peak RSS':>10} {'status':<13} {'torch/prune':>11}")
for r in rows:
    ratio = ""
    if r["prune_status"] == "ok" and r["torch_status"] == "ok":
        ratio = f"{float(r['torch_seconds']) / float(r['prune_seconds']):.2f}"
    mib = lambda v: f"{float(v):.0f} MiB" if v and v != "None" else "-"
    print(f"{r['task']:<17} {r['prune_seconds'] or '-':>8} {mib(r['prune_peak_rss_mib']):>10} {mib(r['prune_peak_anon_mib']):>10} "
          f"{r['prune_status']:<9} {r['torch_seconds'] or '-':>8} {mib(r['torch_peak_rss_mib']):>10} {r['torch_status']:<13} {ratio:>11}")
PY
echo "(prune s: the process's wall time; torch s: its load + prune + save (the process minus the import of torch); page cache warm before each; peak RSS: /usr/bin/time -v; peak anon: sampled RssAnon+RssShmem; results: $results)" >&2
