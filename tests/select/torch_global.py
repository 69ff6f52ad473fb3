# tests/select/torch_global.py: the independent truth for test_select_torch.cpp.
# Writes random-normal weights of several tensors (raw little-endian float32), then applies
# torch.nn.utils.prune.global_unstructured(L1Unstructured, amount) repeatedly and writes the
# masks after the requested step counts (raw uint8, 1 = kept); also the number pruned by
# global RandomUnstructured after each of those step counts.
# usage: torch_global.py OUT_DIR SEED AMOUNT STEPS_CSV   (e.g. /tmp/x 7 0.1 1,3,7)
import os
import sys

import torch
import torch.nn.utils.prune as prune

out, seed, amount, steps = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
wanted = sorted(int(s) for s in steps.split(","))
shapes = [(300, 200), (777,), (64, 129), (1,), (5, 7, 3), (3000, 11)]

torch.manual_seed(seed)
modules = []
with open(os.path.join(out, "shapes.txt"), "w") as f:
    for i, shape in enumerate(shapes):
        m = torch.nn.Module()
        m.weight = torch.nn.Parameter(torch.randn(*shape, dtype=torch.float32))
        m.weight.detach().numpy().astype("<f4").tofile(os.path.join(out, f"w{i}.f32"))
        f.write(" ".join(str(d) for d in shape) + "\n")
        modules.append(m)

params = [(m, "weight") for m in modules]
for step in range(1, wanted[-1] + 1):
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    if step in wanted:
        for i, m in enumerate(modules):
            m.weight_mask.detach().to(torch.uint8).numpy().tofile(os.path.join(out, f"l1_{step}_{i}.u8"))

# RandomUnstructured on fresh copies: the count pruned after each step count
random_modules = []
for m in modules:
    r = torch.nn.Module()
    r.weight = torch.nn.Parameter(m.weight_orig.detach().clone())
    random_modules.append(r)
rparams = [(m, "weight") for m in random_modules]
with open(os.path.join(out, "random_counts.txt"), "w") as f:
    for step in range(1, wanted[-1] + 1):
        prune.global_unstructured(rparams, pruning_method=prune.RandomUnstructured, amount=amount)
        if step in wanted:
            pruned = sum(int((m.weight_mask == 0).sum()) for m in random_modules)
            f.write(f"{step} {pruned}\n")
