# tests/nm/nm_oracle.py: the independent truth for test_nm_torch.cpp, computed with torch.
# Writes raw little-endian files into OUT_DIR:
#   w.f32                 a [rows, cols] weight (random normal, every 7th row rounded to a few
#                         levels so that equal scores occur inside groups and blocks)
#   nm_<kept>_<group>.u8  the N:M mask (1 = kept) of |w|: per group of `group` columns the
#                         `group - kept` smallest |w| pruned, equal |w| by column (torch.sort stable)
#   blocks_<br>_<bc>_<reduce>.f32   the block scores of |w| (sum, mean, max, l2) over the
#                         [ceil(rows/br), ceil(cols/bc)] grid, edge blocks partial, float64 then float32
#   global_<br>_<bc>_<reduce>.u8    the element mask after pruning round(0.3 * blocks) blocks of
#                         the two tensors w and w2 (w2.f32: [rows2, cols]) together, lowest first,
#                         ties by (tensor, block index); w's mask then w2's mask concatenated
# usage: nm_oracle.py OUT_DIR
import sys

import torch

out = sys.argv[1]
torch.manual_seed(11)
rows, cols, rows2 = 37, 48, 21
w = torch.randn(rows, cols, dtype=torch.float32)
w[::7] = torch.round(w[::7] * 2) / 2  # ties
w2 = torch.randn(rows2, cols, dtype=torch.float32)
w.numpy().astype("<f4").tofile(f"{out}/w.f32")
w2.numpy().astype("<f4").tofile(f"{out}/w2.f32")


def nm_mask(scores, kept, group):
    r, c = scores.shape
    grouped = scores.reshape(r, c // group, group)
    order = torch.sort(grouped, dim=-1, stable=True)[1]
    mask = torch.ones_like(grouped, dtype=torch.uint8)
    mask.scatter_(-1, order[..., : group - kept], 0)
    return mask.reshape(r, c)


for kept, group in [(2, 4), (4, 8), (1, 4), (3, 8), (5, 16), (1, 2)]:
    nm_mask(w.abs(), kept, group).numpy().tofile(f"{out}/nm_{kept}_{group}.u8")


def block_scores(scores, br, bc, reduce):
    r, c = scores.shape
    gr, gc = -(-r // br), -(-c // bc)
    result = torch.zeros(gr, gc, dtype=torch.float64)
    s = scores.double()
    for i in range(gr):
        for j in range(gc):
            b = s[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            if reduce == "sum":
                result[i, j] = b.sum()
            elif reduce == "mean":
                result[i, j] = b.mean()
            elif reduce == "max":
                result[i, j] = b.max()
            else:
                result[i, j] = b.pow(2).sum().sqrt()
    return result.float()


def round_half_even(x):
    return int(round(x))  # Python's round: half to even


for br, bc in [(4, 4), (8, 16), (5, 7), (1, 8)]:
    for reduce in ["sum", "mean", "max", "l2"]:
        s1 = block_scores(w.abs(), br, bc, reduce)
        s2 = block_scores(w2.abs(), br, bc, reduce)
        s1.numpy().astype("<f4").tofile(f"{out}/blocks_{br}_{bc}_{reduce}.f32")
        flat = torch.cat([s1.flatten(), s2.flatten()])
        k = round_half_even(0.3 * flat.numel())
        order = torch.sort(flat, stable=True)[1]
        keep = torch.ones(flat.numel(), dtype=torch.uint8)
        keep[order[:k]] = 0
        masks = []
        for s, (r, c), offset in [(s1, w.shape, 0), (s2, w2.shape, s1.numel())]:
            kb = keep[offset:offset + s.numel()].reshape(s.shape)
            m = kb.repeat_interleave(br, 0).repeat_interleave(bc, 1)[:r, :c]
            masks.append(m.flatten())
        torch.cat(masks).numpy().tofile(f"{out}/global_{br}_{bc}_{reduce}.u8")
