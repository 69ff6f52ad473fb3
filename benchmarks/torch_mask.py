# benchmarks/torch_mask.py: torch applying element masks to the same work as bench_mask
# (BERT-base's 72 encoder matrices, 84,934,656 float32 weights, random ~50% masks):
#   masked_fill  w.masked_fill_(pruned, 0) with a bool mask (1 byte per weight)
#   mul          w.mul_(mask) with a float32 0/1 mask (what torch.nn.utils.prune does)
# Prints one JSON line: threads and the best seconds (of --repeat) of each.
# Run with /usr/bin/python3 (Debian's python3-torch); mask_vs_torch.sh runs it in torch's
# best configurations.
import argparse
import json
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--repeat", type=int, default=10)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(20201116)

shapes = []
for _ in range(12):
    shapes += [(768, 768)] * 4 + [(3072, 768), (768, 3072)]
weights = [torch.randn(*shape) * 0.02 for shape in shapes]
pruned = [torch.rand(*shape) < 0.5 for shape in shapes]
keep = [(~p).float() for p in pruned]


def best_of(step):
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def masked_fill():
    for w, p in zip(weights, pruned):
        w.masked_fill_(p, 0.0)


def mul():
    for w, k in zip(weights, keep):
        w.mul_(k)


print(json.dumps({"threads": args.threads, "masked_fill": best_of(masked_fill), "mul": best_of(mul)}))
