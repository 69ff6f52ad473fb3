#!/usr/bin/python3
"""benchmarks/torch_forward.py: torch 1.13's nn.TransformerEncoder on the work of
bench_forward.cpp (BM_encode / BM_encode_varlen), timed in this process.

  /usr/bin/python3 torch_forward.py --size base --case fixed --threads 2 --reps 5

--size tiny|mini|base (2x128x2x512, 4x256x4x1024, 12x768x12x3072), batch 8 x 128 tokens;
--case fixed (no mask) or varlen (the lengths of bench_forward's varlen case, with
src_key_padding_mask, so torch's nested-tensor fast path skips the padding too).
Thread set-up comes from the environment (OMP_WAIT_POLICY, OPENBLAS_*) and
--threads (torch.set_num_threads). Prints one JSON line: the median and all wall times in ms, and CPU times (process, all threads).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn

SIZES = {"tiny": (2, 128, 2, 512), "mini": (4, 256, 4, 1024), "base": (12, 768, 12, 3072)}
VARLEN = [128, 16, 96, 40, 72, 120, 24, 80]  # bench_forward.cpp's varlen_lengths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="base", choices=SIZES)
    ap.add_argument("--case", default="fixed", choices=["fixed", "varlen"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mode", default="inference", choices=["inference", "no_grad"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    layers, hidden, heads, ffn = SIZES[a.size]
    layer = nn.TransformerEncoderLayer(hidden, heads, ffn, dropout=0.0, activation="gelu", batch_first=True)
    model = nn.TransformerEncoder(layer, layers, enable_nested_tensor=True).eval()
    x = torch.randn(8, 128, hidden)
    mask = None
    if a.case == "varlen":
        mask = torch.ones(8, 128, dtype=torch.bool)
        for i, n in enumerate(VARLEN):
            mask[i, :n] = False  # True = padding
    ctx = torch.inference_mode if a.mode == "inference" else torch.no_grad
    times, cpu = [], []
    with ctx():
        model(x, src_key_padding_mask=mask)  # warm-up
        for _ in range(a.reps):
            t0, c0 = time.perf_counter(), time.process_time()
            model(x, src_key_padding_mask=mask)
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    # cpu_ms: CPU time of the whole process (all threads) per forward; on a loaded machine the
    # 1-thread CPU time is the steadier measure of work done.
    print(json.dumps({"median_ms": statistics.median(times), "times_ms": times,
                      "median_cpu_ms": statistics.median(cpu), "cpu_ms": cpu}))


if __name__ == "__main__":
    main()
