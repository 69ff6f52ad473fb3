# benchmarks/torch_sparsegpt.py: the PyTorch port of the reference SparseGPT fasterprune
# (tests/sparsify/reference_ports.py) on one linear, for sparsegpt_vs_torch.sh.
#   --write DIR   makes the work: for each shape ROWSxCOLUMNS a weight (N(0, 0.02^2), float32)
#                 and the calibration sum X^T X of 16 x 512 tokens whose columns have log-normal
#                 scales (float32 products, stored as float64): DIR/<shape>.w.f32, <shape>.gram.f64
#   --data DIR    times fasterprune (float32, as the reference) on that work from the reference's
#                 H = 2 / 16 x X^T X (its running mean over 16 samples), s = 0.5 and 2:4; prints
#                 one JSON line per shape and pattern: seconds (best of --repeat), peak RSS growth (MB)
# Run with /usr/bin/python3 (Debian's python3-torch); thread settings: see sparsegpt_vs_torch.sh.
import argparse
import json
import os
import resource
import sys
import time

import numpy
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "sparsify"))
import reference_ports as ref  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--write")
parser.add_argument("--data")
parser.add_argument("--shapes", default="4096x4096,2048x5632")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeat", type=int, default=2)
args = parser.parse_args()
torch.set_num_threads(args.threads)
shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
samples, tokens = 16, 512

if args.write:
    torch.manual_seed(20)
    for rows, columns in shapes:
        w = torch.randn(rows, columns) * 0.02
        x = torch.randn(samples * tokens, columns) * torch.exp(0.5 * torch.randn(columns))
        w.numpy().astype("<f4").tofile(f"{args.write}/{rows}x{columns}.w.f32")
        (x.t() @ x).double().numpy().astype("<f8").tofile(f"{args.write}/{rows}x{columns}.gram.f64")
    sys.exit(0)

for rows, columns in shapes:
    stem = f"{args.data}/{rows}x{columns}"
    w = torch.from_numpy(numpy.fromfile(f"{stem}.w.f32", "<f4")).reshape(rows, columns)
    gram = torch.from_numpy(numpy.fromfile(f"{stem}.gram.f64", "<f8"))
    H = (gram.reshape(columns, columns) * (2.0 / samples)).float()
    del gram
    for pattern, kwargs in (("0.5", dict(sparsity=0.5)), ("2:4", dict(sparsity=0, prune_n=2, prune_m=4))):
        best = float("inf")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(args.repeat):
            start = time.perf_counter()
            ref.fasterprune(w, H, **kwargs)
            best = min(best, time.perf_counter() - start)
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0
        print(json.dumps({"shape": f"{rows}x{columns}", "pattern": pattern, "threads": args.threads,
                          "seconds": best, "peak_rss_growth_mb": growth}), flush=True)
