#!/usr/bin/python3
"""tests/nn/oracle.py OUT_DIR: PyTorch ground truth for include/prune/nn/ (kernels and attention).

Every case is built from torch's own operations, independently of the library: F.layer_norm,
Hugging Face Llama's RMSNorm (x * rsqrt(mean(x^2) + eps) * w in float32), F.gelu (erf and
tanh), F.silu, torch.softmax, HF's rotate_half RoPE, F.cross_entropy, and attention written
per sequence and head with matmul + softmax and an explicit causal mask. Inputs are random
float32 values; outputs and autograd gradients are computed twice from those same values,
in float32 and in float64, so the C++ test checks its float path against torch's float32 and
its double path against torch's float64. Each case goes to OUT_DIR/<name>.json
({"inputs": {...}, "float32": {...}, "float64": {...}}; arrays flattened row-major, numbers
printed exactly).
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale).float()


def grads_of(fn, inputs, upstream, dtype):
    """Runs fn on leaf copies of `inputs` in `dtype`; returns (outputs, d<name> for each input)
    for the loss sum(output * upstream)."""
    leaves = {k: v.to(dtype).clone().requires_grad_(True) for k, v in inputs.items()}
    out = fn(**leaves)
    (out * upstream.to(dtype)).sum().backward()
    result = {"y": flat(out)}
    for k, v in leaves.items():
        result["d_" + k] = flat(v.grad)
    return result


def kernel_cases():
    rows, n = 5, 37  # 37: a lane-sum tail and an odd width
    cases = {}
    x = randn(rows, n)
    w = randn(n, scale=0.5) + 1.0
    b = randn(n, scale=0.5)
    dy = randn(rows, n)
    eps = 1e-5

    def rms(x, w):
        variance = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(variance + eps))

    defs = {
        "layer_norm": (lambda x, w, b: F.layer_norm(x, (n,), w, b, eps), {"x": x, "w": w, "b": b}),
        "layer_norm_nobias": (lambda x, w: F.layer_norm(x, (n,), w, None, eps), {"x": x, "w": w}),
        "rms_norm": (rms, {"x": x, "w": w}),
        "gelu": (lambda x: F.gelu(x * 3.0), {"x": x}),
        "gelu_tanh": (lambda x: F.gelu(x * 3.0, approximate="tanh"), {"x": x}),
        "silu": (lambda x: F.silu(x * 3.0), {"x": x}),
        "swiglu": (lambda g, u: F.silu(g) * u, {"g": x * 2.0, "u": b.expand(rows, n) + x}),
        "softmax": (lambda x: torch.softmax(x * 4.0, dim=-1), {"x": x}),
    }
    for name, (fn, inputs) in defs.items():
        case = {"inputs": {k: flat(v) for k, v in inputs.items()}, "rows": rows, "n": n, "eps": eps,
                "dy": flat(dy)}
        for dtype, key in ((torch.float32, "float32"), (torch.float64, "float64")):
            case[key] = grads_of(fn, inputs, dy, dtype)
        cases[name] = case
    return cases


def rope_case():
    rows, heads, d, theta = 6, 3, 16, 10000.0
    positions = torch.tensor([0, 1, 2, 7, 300, 4095])
    x = randn(rows, heads * d)
    dy = randn(rows, heads * d)
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))  # HF, float32
    angle = positions.float()[:, None] * inv_freq[None, :]  # float32, as HF's matmul of a 1-term sum

    def rotate_half(t):
        return torch.cat((-t[..., d // 2:], t[..., : d // 2]), dim=-1)

    case = {"inputs": {"x": flat(x)}, "dy": flat(dy), "rows": rows, "heads": heads, "d": d, "theta": theta,
            "positions": positions.tolist(), "inv_freq": flat(inv_freq)}
    for dtype, key in ((torch.float32, "float32"), (torch.float64, "float64")):
        a = angle if dtype == torch.float32 else angle.double()  # float64: cos of the float32 angle
        emb = torch.cat((a, a), dim=-1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]

        def fn(x):
            t = x.view(rows, heads, d)
            return (t * cos + rotate_half(t) * sin).reshape(rows, heads * d)

        case[key] = grads_of(fn, {"x": x}, dy, dtype)
    return case


def cross_entropy_case():
    rows, vocab = 4, 611  # 611: several 256-element chunks and a tail
    z = randn(rows, vocab, scale=3.0)
    targets = torch.tensor([0, 610, 17, 300])
    scale = 0.25
    case = {"inputs": {"z": flat(z)}, "rows": rows, "vocab": vocab, "targets": targets.tolist(), "scale": scale}
    for dtype, key in ((torch.float32, "float32"), (torch.float64, "float64")):
        leaf = z.to(dtype).clone().requires_grad_(True)
        loss = F.cross_entropy(leaf, targets, reduction="none")
        (loss.sum() * scale).backward()
        case[key] = {"loss": flat(loss), "d_z": flat(leaf.grad)}
    return case


def attention_case(name, lengths, q_heads, kv_heads, d, causal, seed, query_rows=None, positions=None):
    """lengths[b] keys per sequence; query_rows[b] (default: all) query rows at positions
    positions[b] + i (default 0)."""
    torch.manual_seed(seed)
    B = len(lengths)
    query_rows = query_rows or lengths
    positions = positions or [0] * B
    q_off = [0]
    kv_off = [0]
    for b in range(B):
        q_off.append(q_off[-1] + query_rows[b])
        kv_off.append(kv_off[-1] + lengths[b])
    q = randn(q_off[-1], q_heads * d)
    k = randn(kv_off[-1], kv_heads * d)
    v = randn(kv_off[-1], kv_heads * d)
    gates = torch.tensor([[1.0, 0.5, 0.0, 1.5, 0.75, 1.0, 2.0, 0.25][h % 8] for h in range(q_heads)])
    dgated = randn(q_off[-1], q_heads * d)
    scale = 1.0 / math.sqrt(d)
    group = q_heads // kv_heads
    case = {"lengths": lengths, "query_rows": query_rows, "positions": positions, "q_heads": q_heads,
            "kv_heads": kv_heads, "d": d, "causal": causal,
            "inputs": {"q": flat(q), "k": flat(k), "v": flat(v), "gates": flat(gates), "d_gated": flat(dgated)}}
    for dtype, key in ((torch.float64, "float64"), (torch.float32, "float32")):
        Q = q.to(dtype).clone().requires_grad_(True)
        K = k.to(dtype).clone().requires_grad_(True)
        V = v.to(dtype).clone().requires_grad_(True)
        G = gates.to(dtype)[None, :].repeat(B, 1).clone().requires_grad_(True)  # per-sequence gates
        ctx_rows, gated_rows = [], []
        for b in range(B):
            qb = Q[q_off[b]:q_off[b + 1]].view(-1, q_heads, d).transpose(0, 1)  # [Hq, rows, d]
            kb = K[kv_off[b]:kv_off[b + 1]].view(-1, kv_heads, d).transpose(0, 1)
            vb = V[kv_off[b]:kv_off[b + 1]].view(-1, kv_heads, d).transpose(0, 1)
            kb = kb.repeat_interleave(group, dim=0)  # query head h uses K/V head h // group
            vb = vb.repeat_interleave(group, dim=0)
            scores = torch.matmul(qb, kb.transpose(-1, -2)) * scale
            if causal:
                qpos = torch.arange(query_rows[b])[:, None] + positions[b]
                kpos = torch.arange(lengths[b])[None, :]
                scores = scores.masked_fill(kpos > qpos, float("-inf"))
            probs = torch.softmax(scores, dim=-1)
            ctx = torch.matmul(probs, vb)  # [Hq, rows, d]
            gated = ctx * G[b][:, None, None]
            ctx_rows.append(ctx.transpose(0, 1).reshape(-1, q_heads * d))
            gated_rows.append(gated.transpose(0, 1).reshape(-1, q_heads * d))
        ctx_all = torch.cat(ctx_rows)
        gated_all = torch.cat(gated_rows)
        (gated_all * dgated.to(dtype)).sum().backward()
        case[key] = {"context": flat(ctx_all), "gated": flat(gated_all), "d_q": flat(Q.grad), "d_k": flat(K.grad),
                     "d_v": flat(V.grad), "d_gates": flat(G.grad)}
    return case


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1)
    cases = kernel_cases()
    cases["rope"] = rope_case()
    cases["cross_entropy"] = cross_entropy_case()
    # Attention: bidirectional and causal, GQA ratios 1, 2 and 4, gates, packed lengths with a 1.
    cases["attn_bidirectional_mha"] = attention_case("", [5, 1, 9], 4, 4, 8, False, 2)
    cases["attn_causal_mha"] = attention_case("", [6, 1, 11], 4, 4, 8, True, 3)
    cases["attn_causal_gqa2"] = attention_case("", [7, 1, 4], 4, 2, 8, True, 4)
    cases["attn_causal_gqa4"] = attention_case("", [3, 1, 10], 8, 2, 6, True, 5)
    cases["attn_bidirectional_gqa4"] = attention_case("", [4, 1, 8], 4, 1, 8, False, 6)
    # One query row per sequence: BERT's [CLS] rows (position 0, every key) and a decoder's
    # decode step (the last position, causal).
    cases["attn_first_rows"] = attention_case("", [5, 1, 9], 4, 4, 8, False, 7, query_rows=[1, 1, 1])
    cases["attn_decode_gqa2"] = attention_case("", [5, 1, 9], 4, 2, 8, True, 8, query_rows=[1, 1, 1],
                                               positions=[4, 0, 8])
    for name, case in cases.items():
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(case, f)


if __name__ == "__main__":
    main()
