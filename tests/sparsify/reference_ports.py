# tests/sparsify/reference_ports.py: PyTorch ports of the public reference code of Wanda
# (locuslab/wanda, lib/prune.py and lib/layerwrapper.py) and SparseGPT (IST-DASLab/sparsegpt,
# sparsegpt.py), reduced to one linear at a time, for the tests and benchmarks of
# prune/sparsify. Behaviour kept from the reference, including its quirks:
#   * Wanda's statistic is a running mean over *samples* (sequences) kept in float32:
#     scaler <- scaler * n / (n + b); n += b; scaler += ||x_j||^2 / n  per batch of b samples.
#   * Wanda unstructured: per row, the int(in * s) first columns of a stable ascending sort of
#     |W| * sqrt(scaler) are pruned. N:M: per group of M columns, torch.topk(largest=False) of
#     the N pruned (ties unspecified by torch; `stable_nm=True` orders them by column instead).
#   * magnitude: per matrix, every |w| <= the value at sorted position int(numel * s) is pruned.
#   * SparseGPT's H: running mean of 2 x x^T / n in float32 (the scale cancels in the damping).
#   * fasterprune: dead columns, 1% damping, Cholesky of the inverse (upper), blocks of 128,
#     mask per block with `<=` the sorted value at int(numel * s), N:M at each group start,
#     column-by-column OBS update and the lazy update of later blocks; `mask` given = the
#     Wanda paper's ablation (reconstruction of another method's mask).
# Masks are returned with True = PRUNED, as the reference code builds them.
import torch


class WandaStatistic:
    """The reference's scaler_row accumulator (WrappedGPT.add_batch)."""

    def __init__(self, columns):
        self.scaler_row = torch.zeros(columns, dtype=torch.float32)
        self.nsamples = 0

    def add_batch(self, inp):
        if inp.dim() == 2:
            inp = inp.unsqueeze(0)
        batch = inp.shape[0]
        flat = inp.reshape(-1, inp.shape[-1]).t()
        self.scaler_row *= self.nsamples / (self.nsamples + batch)
        self.nsamples += batch
        flat = flat.type(torch.float32)
        self.scaler_row += torch.norm(flat, p=2, dim=1) ** 2 / self.nsamples


def wanda_metric(weight, norms):
    """|W| * norms (norms = sqrt(scaler_row) in the reference), formed in float32."""
    return torch.abs(weight.float()) * norms.reshape(1, -1)


def nm_pruned(metric, prune_n, prune_m, stable_nm=False):
    """The reference's N:M loop: per group of prune_m columns, the prune_n lowest pruned."""
    mask = torch.zeros_like(metric, dtype=torch.bool)
    for start in range(0, metric.shape[1], prune_m):
        group = metric[:, start:start + prune_m].float()
        if stable_nm:
            lowest = torch.sort(group, dim=1, stable=True)[1][:, :prune_n]
        else:
            lowest = torch.topk(group, prune_n, dim=1, largest=False)[1]
        mask.scatter_(1, start + lowest, True)
    return mask


def wanda_pruned(metric, sparsity):
    """Wanda unstructured, per output row: stable sort, the first int(in * s) columns pruned."""
    mask = torch.zeros_like(metric, dtype=torch.bool)
    order = torch.sort(metric, dim=-1, stable=True)[1]
    mask.scatter_(1, order[:, :int(metric.shape[1] * sparsity)], True)
    return mask


def magnitude_pruned_reference(weight, sparsity):
    """The reference magnitude baseline: |w| <= the sorted value at int(numel * s)."""
    metric = torch.abs(weight.float())
    thresh = torch.sort(metric.flatten())[0][int(weight.numel() * sparsity)]
    return metric <= thresh


def lowest_together(metrics, sparsity):
    """The clean group rule over several matrices: the int(total * s) lowest by (value, matrix,
    flat index), from a stable sort of the concatenated flat scores."""
    flat = torch.cat([m.flatten() for m in metrics])
    order = torch.sort(flat, stable=True)[1][:int(flat.numel() * sparsity)]
    pruned = torch.zeros(flat.numel(), dtype=torch.bool)
    pruned[order] = True
    out, at = [], 0
    for m in metrics:
        out.append(pruned[at:at + m.numel()].reshape(m.shape))
        at += m.numel()
    return out


class SparseGPTHessian:
    """The reference's H accumulator (SparseGPT.add_batch) for a linear layer."""

    def __init__(self, columns, dtype=torch.float32):
        self.H = torch.zeros(columns, columns, dtype=dtype)
        self.nsamples = 0

    def add_batch(self, inp):
        if inp.dim() == 2:
            inp = inp.unsqueeze(0)
        batch = inp.shape[0]
        flat = inp.reshape(-1, inp.shape[-1]).t()
        self.H *= self.nsamples / (self.nsamples + batch)
        self.nsamples += batch
        flat = (2 / self.nsamples) ** 0.5 * flat.to(self.H.dtype)
        self.H += flat.matmul(flat.t())


def fasterprune(weight, H, sparsity, prune_n=0, prune_m=0, blocksize=128, percdamp=0.01, mask=None,
                dtype=torch.float32, exact=False, stable_nm=False):
    """SparseGPT's fasterprune on a [rows, columns] weight; returns (new weight, pruned mask).
    `mask` (True = pruned) replaces the adaptive mask choice. Runs in `dtype` (the reference:
    float32). Options beside the reference: `exact` prunes exactly int(numel * s) per block,
    the lowest of a stable sort of the flattened block (ties by row-major position) instead of
    `<=`; `stable_nm` orders N:M ties by column instead of torch.topk's unspecified order."""
    W = weight.clone().to(dtype)
    H = H.clone().to(dtype)
    rows, columns = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    pruned_all = torch.zeros(rows, columns, dtype=torch.bool)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prune_n == 0:
            if mask is not None:
                mask1 = mask[:, i1:i2]
            else:
                tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
                if exact:
                    mask1 = torch.zeros(tmp.numel(), dtype=torch.bool)
                    mask1[torch.sort(tmp.flatten(), stable=True)[1][:int(tmp.numel() * sparsity)]] = True
                    mask1 = mask1.reshape(tmp.shape)
                else:
                    thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
                    mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if prune_n != 0 and i % prune_m == 0:
                tmp = W1[:, i:(i + prune_m)] ** 2 / (torch.diag(Hinv1)[i:(i + prune_m)].reshape((1, -1))) ** 2
                if stable_nm:
                    lowest = torch.sort(tmp, dim=1, stable=True)[1][:, :prune_n]
                else:
                    lowest = torch.topk(tmp, prune_n, dim=1, largest=False)[1]
                mask1.scatter_(1, i + lowest, True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        pruned_all[:, i1:i2] = mask1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, pruned_all
