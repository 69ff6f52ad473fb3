#!/bin/bash
# benchmarks/magnitude_process.sh: what a whole prune-magnitude process costs next to the least
# any tool must do with the same data -- read the checkpoint once and write it once (cp + fsync)
# -- and next to PyTorch doing the same pruning (benchmarks/torch_llama7b.py --task
# global_magnitude: load, torch.nn.utils.prune.global_unstructured, save). Prints the best of
# --repeat runs of each and the ratios.
#
# Usage: benchmarks/magnitude_process.sh [--work DIR] [--build DIR] [--repeat N] [--threads N]
#                                       [--mask-format bytes|bits]
#   --work    scratch directory (default /tmp/prune-magnitude-process); the model is generated
#             there once (benchmarks/make_llama.py: 8 layers, hidden 512, intermediate 1408,
#             vocab 32000, bf16: 25.7M candidate weights, 58M parameters, 117 MB)
#   --mask-format  prune-magnitude's --mask-format (default bytes; bits packs 8 a byte)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=/tmp/prune-magnitude-process; build=$repo/build; repeat=5; threads=2; mask_format=bytes
die() { echo "magnitude_process.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --mask-format) mask_format=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -x "$build/bin/prune-magnitude" ] || die "no $build/bin/prune-magnitude (build it first)"
mkdir -p "$work"
model=$work/model
if [ ! -f "$model/model.safetensors.index.json" ]; then
  rm -rf "$model"
  /usr/bin/python3 "$here/make_llama.py" --out "$model" --preset tiny --layers 8 --hidden 512 --heads 8 --kv-heads 8 \
    --intermediate 1408 --vocab 32000 --max-positions 512 --shard-gb 0.05 >/dev/null
fi
include='model\.layers\.[0-9]+\.(self_attn|mlp)\.[a-z_]+_proj\.weight$'
now() { date +%s.%N; }
best() { sort -g | head -1; }

cat "$model"/*.safetensors >/dev/null  # page cache warm
copy_times=() prune_times=() torch_times=()
for _ in $(seq "$repeat"); do
  rm -rf "$work/copy" "$work/out" "$work/torch"
  t0=$(now); cp -r "$model" "$work/copy"; sync "$work"/copy/*; t1=$(now)
  copy_times+=("$(echo "$t1 - $t0" | bc)")
  t0=$(now)
  "$build/bin/prune-magnitude" --model "$model" --include "$include" --amount 0.5 --steps 1 --threads "$threads" \
    --mask-format "$mask_format" --out "$work/out" 2>"$work/prune.err"
  t1=$(now)
  prune_times+=("$(echo "$t1 - $t0" | bc)")
  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/torch_llama7b.py" --model "$model" --task global_magnitude \
    --threads "$threads" --save "$work/torch" >"$work/torch.json"
  torch_times+=("$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["seconds"])' "$work/torch.json")")
done
copy=$(printf '%s\n' "${copy_times[@]}" | best)
prune=$(printf '%s\n' "${prune_times[@]}" | best)
torch=$(printf '%s\n' "${torch_times[@]}" | best)
size=$(du -sb "$model" | cut -f1)
masks=$(du -b "$work/out/masks.safetensors" | cut -f1)
printf 'model %s (%d MB), best of %d runs, %d threads\n' "$model" $((size / 1000000)) "$repeat" "$threads"
printf '  cp -r + fsync (one read, one write of the model):  %8.3f s\n' "$copy"
printf '  prune-magnitude, whole process (model + %d bytes of masks, --mask-format %s): %8.3f s   %.2fx the copy\n' \
  "$masks" "$mask_format" "$prune" "$(echo "$prune / $copy" | bc -l)"
printf '  PyTorch global_unstructured (load + prune + save):  %8.3f s   %.2fx prune-magnitude\n' \
  "$torch" "$(echo "$torch / $prune" | bc -l)"
rm -rf "$work/copy" "$work/out" "$work/torch"
