#!/usr/bin/env bash
# The perplexity table of docs/sparsify.md: a small Llama pre-trained on WordNet's text, pruned
# once by magnitude, Wanda and SparseGPT at 50% unstructured, 4:8 and 2:4, and Wanda / magnitude
# masks with SparseGPT's reconstruction; held-out perplexity of each, as a Markdown table.
#
# Usage: scripts/sparsify-table.sh [--model DIR] [--data DIR] [--out DIR] [--threads N]
#   --data  a `prune-data wordnet` directory (default: made in OUT/data)
#   --model a causal-LM directory (default: `prune-pretrain --arch llama` on DATA, in OUT/llm)
# Calibration: the first 66,000 bytes of pretrain/train.txt in windows of 128 tokens (about 128
# windows); evaluation: the first 120,000 bytes of pretrain/dev.txt (held out), same windows.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${PRUNE_BIN:-$here/build/bin}"
out=/tmp/prune-sparsify-table
data=""
model=""
threads=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) echo "sparsify-table.sh: unknown argument '$1' (expected --model, --data, --out or --threads)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
if [[ -z "$data" ]]; then
  data="$out/data"
  [[ -d "$data" ]] || "$bin/prune-data" wordnet --seed 1 --train-rows 400 --dev-rows 200 --out "$data"
fi
if [[ -z "$model" ]]; then
  model="$out/llm"
  [[ -d "$model" ]] || "$bin/prune-pretrain" --arch llama --data "$data" --out "$model" --threads "$threads"
fi
head -c 66000 "$data/pretrain/train.txt" > "$out/calib.txt"
head -c 120000 "$data/pretrain/dev.txt" > "$out/eval.txt"

run() {  # name, then prune-sparsify flags
  local name="$1"; shift
  rm -rf "$out/$name"
  "$bin/prune-sparsify" --model "$model" --calib "$out/calib.txt" --eval "$out/eval.txt" --context 128 \
    --threads "$threads" --out "$out/$name" "$@" 2> "$out/$name.log" || { cat "$out/$name.log" >&2; exit 1; }
}
for method in magnitude wanda sparsegpt; do
  run "$method-50" --method "$method" --sparsity 0.5
  run "$method-4of8" --method "$method" --nm 4:8
  run "$method-2of4" --method "$method" --nm 2:4
done
for method in magnitude wanda; do
  run "$method-50-rec" --method "$method" --sparsity 0.5 --reconstruct
  run "$method-2of4-rec" --method "$method" --nm 2:4 --reconstruct
done

/usr/bin/env python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def ppl(name, key="perplexity_after"):
    r = json.load(open(f"{out}/{name}/report.json"))
    return r[key] if not isinstance(r[key], dict) else r[key]["perplexity"]
dense = ppl("magnitude-50", "perplexity_before")
print(f"dense model: perplexity {dense:.2f}\n")
print("| method | 50% unstructured | 4:8 | 2:4 |")
print("|---|---|---|---|")
for m in ["magnitude", "wanda", "sparsegpt"]:
    print(f"| {m} | {ppl(m + '-50'):.2f} | {ppl(m + '-4of8'):.2f} | {ppl(m + '-2of4'):.2f} |")
for m in ["magnitude", "wanda"]:
    print(f"| {m} + reconstruction | {ppl(m + '-50-rec'):.2f} | | {ppl(m + '-2of4-rec'):.2f} |")
PY
