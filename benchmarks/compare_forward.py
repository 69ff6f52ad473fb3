#!/usr/bin/python3
"""benchmarks/compare_forward.py: prune's BERT forward (bench_forward) against torch 1.13's
nn.TransformerEncoder (torch_forward.py) on the same work, in the same run, alternating,
and prints medians and ratios (torch time / our time: > 1 means we are faster).

  /usr/bin/python3 benchmarks/compare_forward.py --bin build/bin/bench_forward --sizes tiny,mini,base --rounds 3

Each round runs, for every size, our binary (2 threads, Eigen back-end; and with
OPENBLAS_CORETYPE=SkylakeX so that OpenBLAS uses its AVX-512 kernels) and torch in the
set-ups (OMP_WAIT_POLICY=PASSIVE + 2 torch threads; 1 torch thread +
OPENBLAS_NUM_THREADS=2; each also with OPENBLAS_CORETYPE=SkylakeX), then reports the best
set-up of each side by median. Also prints ours-only ratios: classification with the [CLS]-only
last layer vs the full encoder, variable-length packed vs fixed, pruned (half the heads and MLPs) vs dense.
Finally a 1-thread CPU-time comparison (ours vs torch, both OpenBLAS SkylakeX kernels): on a
machine shared with other jobs, CPU time per forward is far steadier than wall time.
--cpu-only runs just that.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE_ARG = {"tiny": 0, "mini": 1, "base": 2}

OURS = {"eigen": {"PRUNE_NO_REEXEC": "1"}, "openblas-skx": {"OPENBLAS_CORETYPE": "SkylakeX"}}
TORCH = {
    "passive+2threads": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "1thread+openblas2": ({"OPENBLAS_NUM_THREADS": "2"}, 1),
    "passive+2threads+skx": ({"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_CORETYPE": "SkylakeX"}, 2),
    "1thread+openblas2+skx": ({"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_CORETYPE": "SkylakeX"}, 1),
}


def run_ours(binary, env_extra, pattern, reps, field="real_time"):
    env = dict(os.environ, **env_extra)
    out = subprocess.run([binary, f"--benchmark_filter={pattern}", "--benchmark_format=json",
                          f"--benchmark_repetitions={reps}", "--benchmark_min_time=0.01"],
                         env=env, capture_output=True, text=True, check=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") == "iteration":
            res.setdefault(b["run_name"], []).append(b[field])
    return res


def run_torch(env_extra, threads, size, case, reps, field="times_ms"):
    env = dict(os.environ, **env_extra)
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_forward.py"), "--size", size, "--case", case,
                          "--threads", str(threads), "--reps", str(reps)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)[field]


def cpu_time_ratio(binary, size, rounds, reps):
    """1 thread each: CPU time per forward (steady on a loaded machine, where wall time is not)."""
    s = SIZE_ARG[size]
    ours, torch_t = [], []
    for _ in range(rounds):
        r = run_ours(binary, {"OPENBLAS_CORETYPE": "SkylakeX"}, f"BM_encode/{s}/1/", reps, "cpu_time")
        ours.extend(next(iter(r.values())))
        torch_t.extend(run_torch({"OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "SkylakeX"}, 1, size, "fixed",
                                 reps, "cpu_ms"))
    o, t = statistics.median(ours), statistics.median(torch_t)
    print(f"  RATIO 1-thread CPU time, fixed-length encoder: torch {t:.2f} ms / ours {o:.2f} ms = {t / o:.2f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin/bench_forward")
    ap.add_argument("--sizes", default="tiny,mini,base")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cpu-only", action="store_true", help="only the 1-thread CPU-time comparison")
    a = ap.parse_args()
    if a.cpu_only:
        for size in a.sizes.split(","):
            print(f"== {size}: 8 x 128 tokens, 1 thread each, CPU time per forward, medians of {a.rounds * a.reps}")
            cpu_time_ratio(a.bin, size, a.rounds, a.reps)
            sys.stdout.flush()
        return
    for size in a.sizes.split(","):
        s = SIZE_ARG[size]
        ours, torch_t = {}, {}
        for _ in range(a.rounds):
            for name, env in OURS.items():
                pat = f"BM_(encode|classify|encode_varlen|classify_varlen|encode_pruned)/{s}/2/"
                for k, v in run_ours(a.bin, env, pat, a.reps).items():
                    ours.setdefault((name, k.split("/")[0]), []).extend(v)
            for name, (env, threads) in TORCH.items():
                for case in ["fixed", "varlen"]:
                    torch_t.setdefault((name, case), []).extend(run_torch(env, threads, size, case, a.reps))
        med = {k: statistics.median(v) for k, v in ours.items()}
        tmed = {k: statistics.median(v) for k, v in torch_t.items()}
        print(f"== {size}: 8 sequences x 128 tokens, 2 threads, medians of {a.rounds * a.reps} runs (ms)")
        for k, v in sorted(med.items()):
            print(f"  ours  {k[0]:>14} {k[1]:>16}: {v:9.2f}")
        for k, v in sorted(tmed.items()):
            print(f"  torch {k[0]:>22} {k[1]:>7}: {v:9.2f}")

        def best(d, case):
            return min(((v, k[0]) for k, v in d.items() if k[1] == case))
        for ours_case, torch_case, label in [("BM_encode", "fixed", "fixed-length encoder"),
                                             ("BM_encode_varlen", "varlen", "variable-length encoder (both skip padding)"),
                                             ("BM_classify", "fixed", "classification ([CLS]-only last layer) vs torch full encoder"),
                                             ("BM_classify_varlen", "varlen", "variable-length classification vs torch nested-tensor encoder")]:
            o, oname = best(med, ours_case)
            t, tname = best(tmed, torch_case)
            print(f"  RATIO {label}: torch {t:.2f} ms ({tname}) / ours {o:.2f} ms ({oname}) = {t / o:.2f}x")
        o_dense, _ = best(med, "BM_encode")
        o_pruned, _ = best(med, "BM_encode_pruned")
        print(f"  RATIO pruned (half heads, half MLPs) / dense time: {o_pruned / o_dense:.3f}")
        o_fix, _ = best(med, "BM_classify")
        o_var, _ = best(med, "BM_classify_varlen")
        print(f"  RATIO varlen / fixed classification time: {o_var / o_fix:.3f} (token ratio {sum([128, 16, 96, 40, 72, 120, 24, 80]) / 1024:.3f})")
        cpu_time_ratio(a.bin, size, a.rounds, a.reps)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
