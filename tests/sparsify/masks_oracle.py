# tests/sparsify/masks_oracle.py: the independent truth for test_sparsify_masks_torch.cpp,
# from the PyTorch ports of the reference code (reference_ports.py). Writes raw little-endian
# files into OUT_DIR (masks as u8 with 1 = KEPT, the library's convention; the ports' masks are
# True = pruned and are inverted here):
#   w1.f32 [40, 96], w2.f32 [24, 96], w3.f32 [40, 64]   weights (w1, w2 read input x1; w3 reads x3)
#   wt.f32 [40, 96]   weights on a grid of 0.25 (many equal |w|)   nt.f32 [96] norms in {0.5, 1, 2}
#   x1.f32 [5, 16, 96], x3.f32 [5, 16, 64]   calibration: 5 samples of 16 tokens (column 7 of x1 dead)
#   x1_sum2.f64 [96], x1_gram.f64 [96, 96]    sum x^2 and sum x x^T over all 80 tokens, in float64
#   x1_norm_ref.f32 [96]   sqrt(scaler_row) of the reference's running-mean statistic (batches of 1 sample)
#   wanda_ref_<s>.u8      Wanda unstructured on w1 with x1_norm_ref, s in 0.3, 0.5, 0.7
#   wanda_nm_<n>_<m>.u8   Wanda N:M on w1 with x1_norm_ref (reference topk; n pruned of m)
#   wanda_clean_0.5.u8    Wanda on w1 with sqrt(float64 sum x^2) as float32 (the library's statistic)
#   tie_row_0.5.u8, tie_nm_2_4.u8   Wanda on wt with nt: stable sort (row), stable N:M
#   mag_ref_<s>.u8, mag_exact_<s>.u8   magnitude on w1 and on wt (name prefix t_): the reference's
#                         `<=` rule, and exactly int(numel * s) by (|w|, flat index)
#   layer_0.5.u8          Wanda, layer group: {w1, w2} (layer 0) and {w3} (layer 1), masks concatenated
#   global_0.5.u8         Wanda, global group over w1, w2, w3
#   matrix_0.5.u8         Wanda, matrix group, each matrix alone
# usage: masks_oracle.py OUT_DIR
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import reference_ports as ref  # noqa: E402

out = sys.argv[1]
torch.manual_seed(20)


def save(name, tensor, dtype):
    tensor.contiguous().numpy().astype(dtype).tofile(f"{out}/{name}")


def save_kept(name, pruned):
    save(name, (~pruned).to(torch.uint8), "u1")


w1 = torch.randn(40, 96)
w2 = torch.randn(24, 96)
w3 = torch.randn(40, 64)
wt = torch.round(torch.randn(40, 96) * 4) / 4
nt = torch.tensor([0.5, 1.0, 2.0])[torch.randint(0, 3, (96,))]
scale1 = torch.exp(torch.randn(96))
scale1[7] = 0.0
x1 = torch.randn(5, 16, 96) * scale1
x3 = torch.randn(5, 16, 64) * torch.exp(torch.randn(64))
for name, t in [("w1", w1), ("w2", w2), ("w3", w3), ("wt", wt), ("nt", nt), ("x1", x1), ("x3", x3)]:
    save(f"{name}.f32", t, "<f4")

flat1 = x1.reshape(-1, 96).double()
save("x1_sum2.f64", (flat1 ** 2).sum(0), "<f8")
save("x1_gram.f64", flat1.t() @ flat1, "<f8")

stat = ref.WandaStatistic(96)
for sample in x1:
    stat.add_batch(sample.unsqueeze(0))
norm_ref = torch.sqrt(stat.scaler_row)
save("x1_norm_ref.f32", norm_ref, "<f4")
metric1 = ref.wanda_metric(w1, norm_ref)
for s in (0.3, 0.5, 0.7):
    save_kept(f"wanda_ref_{s}.u8", ref.wanda_pruned(metric1, s))
for n, m in [(2, 4), (4, 8), (1, 4)]:
    save_kept(f"wanda_nm_{n}_{m}.u8", ref.nm_pruned(metric1, n, m))

norm_clean = torch.sqrt((flat1 ** 2).sum(0)).float()
save_kept("wanda_clean_0.5.u8", ref.wanda_pruned(ref.wanda_metric(w1, norm_clean), 0.5))

metric_t = ref.wanda_metric(wt, nt)
save_kept("tie_row_0.5.u8", ref.wanda_pruned(metric_t, 0.5))
save_kept("tie_nm_2_4.u8", ref.nm_pruned(metric_t, 2, 4, stable_nm=True))

for s in (0.3, 0.5):
    for prefix, w in [("", w1), ("t_", wt)]:
        save_kept(f"{prefix}mag_ref_{s}.u8", ref.magnitude_pruned_reference(w, s))
        save_kept(f"{prefix}mag_exact_{s}.u8", ref.lowest_together([w.abs()], s)[0])

flat3 = x3.reshape(-1, 64).double()
norm3 = torch.sqrt((flat3 ** 2).sum(0)).float()
metrics = [ref.wanda_metric(w1, norm_clean), ref.wanda_metric(w2, norm_clean), ref.wanda_metric(w3, norm3)]
layer = ref.lowest_together(metrics[:2], 0.5) + ref.lowest_together(metrics[2:], 0.5)
save_kept("layer_0.5.u8", torch.cat([m.flatten() for m in layer]))
save_kept("global_0.5.u8", torch.cat([m.flatten() for m in ref.lowest_together(metrics, 0.5)]))
matrix = [ref.lowest_together([m], 0.5)[0] for m in metrics]
save_kept("matrix_0.5.u8", torch.cat([m.flatten() for m in matrix]))
