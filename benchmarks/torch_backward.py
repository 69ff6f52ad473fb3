"""Forward + backward of BertForSequenceClassification in torch autograd (float32, dropout off,
head and MLP gates as leaf tensors requiring grad, cross-entropy) on 8 x 128 tokens at BERT-mini
and BERT-base dims, against build/bin/bench_backward in the same run; prints the ratio
torch / ours per dims (> 1: ours is faster).

usage: /usr/bin/python3 benchmarks/torch_backward.py [--bench build/bin/bench_backward] [--cpu-only]
Torch is measured in its best configurations (2 threads with
OMP_WAIT_POLICY=PASSIVE; 1 torch thread with OPENBLAS_NUM_THREADS=2), each also with
OPENBLAS_CORETYPE=SkylakeX (OpenBLAS 0.3.21 otherwise falls back to SSE3 kernels on this CPU),
and the best is used; ours runs with Eigen products and with OpenBLAS's AVX-512 kernels, best used.
With --rounds N it also prints each round's ratio (their median, min, max) and
median_ratio_best_configs: every set-up's median over the rounds, the best set-up of each side.

--cpu-only compares instead the CPU time of one thread on each side (torch: 1 thread,
OPENBLAS_NUM_THREADS=1; ours: PRUNE_BENCH_THREADS=1; both OPENBLAS_CORETYPE=SkylakeX): steadier
than wall-clock time when other work shares the machine.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

DIMS = {"mini": (4, 256, 4, 1024), "base": (12, 768, 12, 3072)}


def torch_time(dims, threads, reps, clock=time.perf_counter):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    L, H, nh, F = DIMS[dims]
    d = H // nh
    V, P, B, T = 30522, 512, 8, 128

    def p(*shape):
        return (torch.randn(*shape) * 0.02).requires_grad_()

    params = {"word": p(V, H), "pos": p(P, H), "type": p(2, H), "eg": p(H), "eb": p(H)}
    layers = []
    for _ in range(L):
        layers.append({k: p(*s) for k, s in {
            "wq": (H, H), "bq": (H,), "wk": (H, H), "bk": (H,), "wv": (H, H), "bv": (H,), "wo": (H, H), "bo": (H,),
            "g1": (H,), "b1n": (H,), "w1": (F, H), "b1": (F,), "w2": (H, F), "b2": (H,), "g2": (H,), "b2n": (H,)}.items()})
    wp, bp, wc, bc = p(H, H), p(H), p(2, H), p(2)
    gh = torch.ones(L, nh, requires_grad=True)
    gm = torch.ones(L, requires_grad=True)
    ids = torch.tensor([[(b * 131 + t * 7919) % V for t in range(T)] for b in range(B)])
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    ln = torch.nn.functional.layer_norm

    def step():
        x = params["word"][ids] + params["pos"][:T][None] + params["type"][0]
        x = ln(x, (H,), params["eg"], params["eb"], 1e-12)
        for l, w in enumerate(layers):
            q = (x @ w["wq"].T + w["bq"]).view(B, T, nh, d).transpose(1, 2)
            k = (x @ w["wk"].T + w["bk"]).view(B, T, nh, d).transpose(1, 2)
            v = (x @ w["wv"].T + w["bv"]).view(B, T, nh, d).transpose(1, 2)
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) * gh[l][None, :, None, None]
            ctx = (probs @ v).transpose(1, 2).reshape(B, T, H)
            a = ln(ctx @ w["wo"].T + w["bo"] + x, (H,), w["g1"], w["b1n"], 1e-12)
            m = torch.nn.functional.gelu(a @ w["w1"].T + w["b1"]) @ w["w2"].T + w["b2"]
            x = ln(gm[l] * m + a, (H,), w["g2"], w["b2n"], 1e-12)
        logits = torch.tanh(x[:, 0] @ wp.T + bp) @ wc.T + bc
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        for t in [gh, gm, wp, bp, wc, bc] + list(params.values()) + [t for w in layers for t in w.values()]:
            t.grad = None

    step()
    times = []
    for _ in range(reps):
        s = clock()
        step()
        times.append(clock() - s)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bin/bench_backward")
    ap.add_argument("--worker", nargs=3, metavar=("DIMS", "THREADS", "REPS"))
    ap.add_argument("--skx-only", action="store_true",
                    help="torch only with OPENBLAS_CORETYPE=SkylakeX (4x faster than without on this CPU)")
    ap.add_argument("--dims", nargs="+", default=["mini", "base"])
    ap.add_argument("--cpu-only", action="store_true",
                    help="one thread on each side, CPU time (process_time / benchmark cpu_time)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat ours-then-torch this many times, each side keeping its best (noisy machines)")
    ap.add_argument("--ours-configs", nargs="+", default=["eigen", "openblas-skx"],
                    help="which of our back-ends to run (eigen, openblas-skx)")
    ap.add_argument("--cpu-clock", action="store_true", help=argparse.SUPPRESS)  # worker: process CPU time
    args = ap.parse_args()
    if args.worker:
        clock = time.process_time if args.cpu_clock else time.perf_counter
        print(json.dumps({"seconds": torch_time(args.worker[0], int(args.worker[1]), int(args.worker[2]), clock)}))
        return
    if args.cpu_only:
        cpu_only(args)
        return
    # Ours: Eigen products (OpenBLAS 0.3.21 runs SSE3 kernels on CPUs it does not know), and
    # OpenBLAS told to use its AVX-512 kernels; the best is reported.
    ours_configs = [c for c in (("eigen", {}), ("openblas-skx", {"OPENBLAS_CORETYPE": "SkylakeX"}))
                    if c[0] in args.ours_configs]
    configs = [("2 threads, OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, 2),
               ("1 torch thread, OPENBLAS_NUM_THREADS=2", {"OPENBLAS_NUM_THREADS": "2"}, 1),
               ("2 threads, PASSIVE, OPENBLAS_CORETYPE=SkylakeX",
                {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_CORETYPE": "SkylakeX"}, 2),
               ("1 torch thread, OPENBLAS_NUM_THREADS=2, OPENBLAS_CORETYPE=SkylakeX",
                {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_CORETYPE": "SkylakeX"}, 1)]
    if args.skx_only:
        configs = [c for c in configs if "SkylakeX" in c[0]]
    round_ratios = {d: [] for d in args.dims}  # per round: that round's best torch / that round's best ours
    samples = {}  # (side, config, dims) -> every round's time

    def fastest(side, dims, stat):
        """(stat of the times, config) of the side's configuration with the smallest stat."""
        return min((stat(v), cfg) for (sd, cfg, d), v in samples.items() if sd == side and d == dims)

    for rnd in range(args.rounds):  # rounds alternate the two sides; each side keeps its best
        ours_round = {}
        torch_round = {}
        for name, env in ours_configs:
            filt = "--benchmark_filter=" + "|".join(args.dims)
            out = json.loads(subprocess.run([args.bench, "--benchmark_format=json", filt], check=True,
                                            capture_output=True, text=True, env=dict(os.environ, **env)).stdout)
            for b in out["benchmarks"]:
                if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                    continue  # base reports the median of its repetitions (torch: the median of its steps)
                dims = b["name"].split("/")[1]
                seconds = b["real_time"] / 1000.0  # ms -> s
                print(f"ours {dims} [{name}]: {seconds * 1000:.1f} ms", file=sys.stderr)
                samples.setdefault(("ours", name, dims), []).append(seconds)
                ours_round[dims] = min(seconds, ours_round.get(dims, seconds))
        for dims in args.dims:
            for name, env, threads in configs:
                e = dict(os.environ, **env)
                reps = "9" if dims == "mini" else "3"
                r = subprocess.run([sys.executable, __file__, "--worker", dims, str(threads), reps], env=e, check=True,
                                   capture_output=True, text=True)
                s = json.loads(r.stdout)["seconds"]
                print(f"torch {dims} [{name}]: {s * 1000:.1f} ms", file=sys.stderr)
                samples.setdefault(("torch", name, dims), []).append(s)
                torch_round[dims] = min(s, torch_round.get(dims, s))
        for d in args.dims:
            round_ratios[d].append(torch_round[d] / ours_round[d])
        if args.rounds > 1:
            print(f"round {rnd + 1}: " + ", ".join(f"{d} {round_ratios[d][-1]:.3f}" for d in args.dims) +
                  "; best so far: " +
                  ", ".join(f"{d} {fastest('torch', d, min)[0] / fastest('ours', d, min)[0]:.3f}" for d in args.dims), file=sys.stderr)
    for dims in args.dims:
        r = sorted(round_ratios[dims])
        best = {side: fastest(side, dims, min) for side in ("ours", "torch")}
        # the reported statistic: each configuration's median over the rounds, the
        # best configuration of each side.
        med = {side: fastest(side, dims, statistics.median) for side in ("ours", "torch")}
        print(json.dumps({"dims": dims, "ours_ms": best["ours"][0] * 1000, "ours_config": best["ours"][1],
                          "torch_ms": best["torch"][0] * 1000, "torch_config": best["torch"][1],
                          "ratio_torch_over_ours": best["torch"][0] / best["ours"][0],
                          "round_ratios": [round(x, 3) for x in round_ratios[dims]],
                          "round_ratio_median": statistics.median(r), "round_ratio_min": r[0],
                          "round_ratio_max": r[-1],
                          "median_ours_ms": med["ours"][0] * 1000, "median_torch_ms": med["torch"][0] * 1000,
                          "median_torch_config": med["torch"][1],
                          "median_ratio_best_configs": med["torch"][0] / med["ours"][0]}))


def cpu_only(args):
    """One thread each, CPU time: ours (bench cpu_time) vs torch (process_time), in the same run."""
    skx = {"OPENBLAS_CORETYPE": "SkylakeX"}
    filt = "--benchmark_filter=" + "|".join(args.dims)
    out = json.loads(subprocess.run([args.bench, "--benchmark_format=json", filt], check=True, capture_output=True,
                                    text=True, env=dict(os.environ, PRUNE_BENCH_THREADS="1", **skx)).stdout)
    ours = {b["name"].split("/")[1]: b["cpu_time"] / 1000.0 for b in out["benchmarks"]  # ms -> s
            if b.get("run_type") != "aggregate" or b.get("aggregate_name") == "median"}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **skx)
    for dims in args.dims:
        reps = "9" if dims == "mini" else "3"
        r = subprocess.run([sys.executable, __file__, "--worker", dims, "1", reps, "--cpu-clock"], env=env, check=True,
                           capture_output=True, text=True)
        s = json.loads(r.stdout)["seconds"]
        print(f"ours {dims} [1 thread, cpu]: {ours[dims] * 1000:.1f} ms; torch {dims} [1 thread, cpu]: {s * 1000:.1f} ms",
              file=sys.stderr)
        print(json.dumps({"dims": dims, "mode": "1 thread, CPU time, OPENBLAS_CORETYPE=SkylakeX",
                          "ours_cpu_ms": ours[dims] * 1000, "torch_cpu_ms": s * 1000,
                          "ratio_torch_over_ours": s / ours[dims]}))


if __name__ == "__main__":
    main()
