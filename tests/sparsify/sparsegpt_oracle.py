# tests/sparsify/sparsegpt_oracle.py: the independent truth for test_sparsify_sparsegpt_torch.cpp:
# SparseGPT's fasterprune as ported in reference_ports.py, run in float64 and in float32 on the
# same weights and calibration inputs the test gives the library. Writes raw little-endian files
# into OUT_DIR and a manifest `cases.txt` (one line per case: name rows columns samples):
#   <case>.w.f32 [rows, columns]   the weight (float32, as a model stores it)
#   <case>.gram.f64 [columns, columns]   sum over every calibration token of x x^T, in float64
#   <case>.wanda.u8   a Wanda 50% row mask (1 = KEPT) from |w| sqrt(diag gram), for reconstruction
#   <case>.<config>.<f64|f32>.w  the port's weight (f64 / f32 values) and
#   <case>.<config>.<f64|f32>.u8 its mask (1 = KEPT; the port returns True = pruned)
# configs: u50 (s = 0.5, the reference's `<=`), x50 (s = 0.5, exactly int(numel s) per block,
# stable), nm24 / nm48 (2 of 4 / 4 of 8 pruned, ties by column), rec (the Wanda mask given).
# The port's H is the reference's own running mean 2 x x^T / nsamples over samples added one at a
# time (SparseGPT.add_batch), accumulated in the run's dtype: float32 is the reference exactly.
# Cases: random (full rank, 200 columns = 128 + 72), dead (264 = 128 + 128 + 8 columns, 60 tokens:
# rank deficient, 5 zero input columns (three in one N:M group) and two equal columns), tied
# (weights on a 0.25 grid, H = 18 I: equal scores within and across columns, 72 columns), grid
# (weights on a 0.25 grid with a random H, 136 columns).
# usage: sparsegpt_oracle.py OUT_DIR
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import reference_ports as ref  # noqa: E402

out = sys.argv[1]
torch.manual_seed(2020)
manifest = []


def save(name, tensor, dtype):
    tensor.contiguous().numpy().astype(dtype).tofile(f"{out}/{name}")


def hessian(x, dtype):
    acc = ref.SparseGPTHessian(x.shape[-1], dtype)
    for sample in x:
        acc.add_batch(sample.unsqueeze(0))
    return acc.H


def case(name, w, x):
    rows, columns = w.shape
    manifest.append(f"{name} {rows} {columns} {x.shape[0]}")
    flat = x.reshape(-1, columns).double()
    gram = flat.t() @ flat
    save(f"{name}.w.f32", w, "<f4")
    save(f"{name}.gram.f64", gram, "<f8")
    wanda = ref.wanda_pruned(ref.wanda_metric(w, torch.sqrt(torch.diag(gram)).float()), 0.5)
    save(f"{name}.wanda.u8", (~wanda).to(torch.uint8), "u1")
    configs = {
        "u50": dict(sparsity=0.5),
        "x50": dict(sparsity=0.5, exact=True),
        "nm24": dict(sparsity=0, prune_n=2, prune_m=4, stable_nm=True),
        "nm48": dict(sparsity=0, prune_n=4, prune_m=8, stable_nm=True),
        "rec": dict(sparsity=0, mask=wanda),
    }
    for dtype, label, fmt in ((torch.float64, "f64", "<f8"), (torch.float32, "f32", "<f4")):
        H = hessian(x, dtype)
        for config, kwargs in configs.items():
            new, pruned = ref.fasterprune(w.to(dtype), H, dtype=dtype, **kwargs)
            save(f"{name}.{config}.{label}.w", new, fmt)
            save(f"{name}.{config}.{label}.u8", (~pruned).to(torch.uint8), "u1")


def scaled(samples, tokens, columns):
    return torch.randn(samples, tokens, columns) * torch.exp(0.5 * torch.randn(columns))


case("random", torch.randn(48, 200), scaled(8, 40, 200))

x = scaled(3, 20, 264)
x[:, :, [5, 6, 7, 130, 263]] = 0
x[:, :, 21] = x[:, :, 20]
case("dead", torch.randn(40, 264), x)

case("tied", torch.round(torch.randn(32, 72) * 4) / 4, (3 * torch.eye(72)).unsqueeze(0))
case("grid", torch.round(torch.randn(24, 136) * 4) / 4, scaled(4, 48, 136))

with open(f"{out}/cases.txt", "w") as f:
    f.write("\n".join(manifest) + "\n")
