# benchmarks/torch_select.py: torch's global_unstructured(L1Unstructured, amount=0.1) on the
# same work as bench_select (BERT-base's 72 encoder matrices, 84,934,656 random-normal float32
# weights), one step from full masks. Prints one JSON line: seconds (best of --repeat) and the
# peak RSS growth during the step (MB). Slow (~10 s per step) and memory-hungry (~5 GB).
# Run with /usr/bin/python3 (Debian's python3-torch). Thread settings: the best set-ups (2 threads with passive waiting, or 1 thread);
# select_vs_torch.sh runs this in torch's best configurations.
import argparse
import json
import resource
import time

import torch
import torch.nn.utils.prune as prune

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeat", type=int, default=1)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(20201116)

shapes = []
for _ in range(12):
    shapes += [(768, 768)] * 4 + [(3072, 768), (768, 3072)]


def fresh_modules():
    modules = []
    for shape in shapes:
        m = torch.nn.Module()
        m.weight = torch.nn.Parameter(torch.randn(*shape) * 0.02)
        modules.append(m)
    return modules


best = float("inf")
peak_growth_mb = 0.0
for _ in range(args.repeat):
    modules = fresh_modules()
    params = [(m, "weight") for m in modules]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    start = time.perf_counter()
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.1)
    best = min(best, time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_growth_mb = max(peak_growth_mb, (after - before) / 1024.0)
    pruned = sum(int((m.weight_mask == 0).sum()) for m in modules)
    del modules, params
print(json.dumps({"threads": args.threads, "seconds": best, "peak_rss_growth_mb": peak_growth_mb,
                  "pruned": pruned, "weights": sum(a * b for a, b in shapes)}))
