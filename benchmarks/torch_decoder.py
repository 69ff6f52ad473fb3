# benchmarks/torch_decoder.py: the work of bench_decoder in PyTorch, float32, for
# decoder_vs_torch.sh: 2-layer slices of TinyLlama-1.1B (RMSNorm, RoPE, GQA, SwiGLU, untied
# lm_head) and GPT-2 small (LayerNorm, learned positions, GELU tanh, biases, tied lm_head),
# vocabulary 2048, random weights N(0, 0.02^2); Hugging Face's math written out with torch ops
# (q/k/v stacked in one linear and gate/up in one, as prune stores them; the torch 1.13 of
# Debian has no scaled_dot_product_attention, so attention is Hugging Face's eager form).
#   prefill  forward of 8 x 128 tokens: logits and the causal-LM cross-entropy (no grad)
#   train    forward + backward of the same: loss.backward() gives every weight's gradient
#   decode   batch 1, one new token after a 512-token KV cache (keys/values concatenated as
#            Hugging Face's cache does), its logits (no grad)
# Prints one JSON line per arch and case: the times in ms of --reps runs after one warm-up.
# Run with /usr/bin/python3 (Debian's python3-torch); thread settings: see decoder_vs_torch.sh.
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--reps", type=int, default=5)
parser.add_argument("--archs", default="llama,gpt2")
parser.add_argument("--cases", default="prefill,train,decode")
args = parser.parse_args()
torch.set_num_threads(args.threads)

VOCAB, LAYERS, BATCH, LENGTH, CACHED = 2048, 2, 8, 128, 512
SHAPES = {
    "llama": dict(hidden=2048, heads=32, kv_heads=4, head_dim=64, inter=5632),
    "gpt2": dict(hidden=768, heads=12, kv_heads=12, head_dim=64, inter=3072),
}


def make_weights(arch, s):
    g = torch.Generator().manual_seed(19)
    H, d, F_ = s["hidden"], s["head_dim"], s["inter"]
    rows = (s["heads"] + 2 * s["kv_heads"]) * d

    def rnd(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).requires_grad_()

    def scale():
        return (1 + torch.randn(H, generator=g) * 0.02).requires_grad_()

    w = {"embed": rnd(VOCAB, H), "final_norm": scale(), "layers": []}
    llama = arch == "llama"
    if llama:
        w["lm_head"] = rnd(VOCAB, H)
    else:
        w["wpe"] = rnd(1024, H)
        w["final_norm_bias"] = rnd(H)
    for _ in range(LAYERS):
        L = {"norm1": scale(), "norm2": scale(), "qkv": rnd(rows, H), "out": rnd(H, s["heads"] * d),
             "up": rnd(2 * F_ if llama else F_, H), "down": rnd(H, F_)}
        if not llama:
            L.update(norm1_bias=rnd(H), norm2_bias=rnd(H), qkv_bias=rnd(rows), out_bias=rnd(H),
                     up_bias=rnd(F_), down_bias=rnd(H))
        w["layers"].append(L)
    return w


def rope_tables(d, positions):
    inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    freqs = torch.outer(torch.arange(positions, dtype=torch.float32), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rms_norm(x, weight):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))


def layer(arch, s, L, h, cos, sin, cache=None):
    """One decoder layer on h [B, T, H]; with cache (k, v) the new keys/values are appended."""
    B, T, H = h.shape
    nh, nkv, d = s["heads"], s["kv_heads"], s["head_dim"]
    llama = arch == "llama"
    x = rms_norm(h, L["norm1"]) if llama else F.layer_norm(h, (H,), L["norm1"], L["norm1_bias"], 1e-5)
    qkv = F.linear(x, L["qkv"], L.get("qkv_bias"))
    q, k, v = qkv.split([nh * d, nkv * d, nkv * d], dim=-1)
    q = q.view(B, T, nh, d).transpose(1, 2)
    k = k.view(B, T, nkv, d).transpose(1, 2)
    v = v.view(B, T, nkv, d).transpose(1, 2)
    if llama:
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
    if cache is not None:
        k = torch.cat((cache[0], k), dim=2)
        v = torch.cat((cache[1], v), dim=2)
    if nkv != nh:  # Hugging Face's repeat_kv
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d)
    if T > 1:
        scores = scores + torch.full((T, T), float("-inf")).triu(1)
    ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, T, nh * d)
    h = h + F.linear(ctx, L["out"], L.get("out_bias"))
    x = rms_norm(h, L["norm2"]) if llama else F.layer_norm(h, (H,), L["norm2"], L["norm2_bias"], 1e-5)
    pre = F.linear(x, L["up"], L.get("up_bias"))
    if llama:
        gate, up = pre.chunk(2, dim=-1)
        act = F.silu(gate) * up
    else:
        act = F.gelu(pre, approximate="tanh")
    return h + F.linear(act, L["down"], L.get("down_bias"))


def model(arch, s, w, ids, start=0, caches=None):
    """Logits [B, T, V] of ids [B, T] at positions start..; caches: per layer (k, v) or None."""
    T = ids.shape[1]
    h = F.embedding(ids, w["embed"])
    cos = sin = None
    if arch == "llama":
        cos, sin = rope_tables(s["head_dim"], start + T)
        cos, sin = cos[start:], sin[start:]
    else:
        h = h + w["wpe"][start:start + T]
    for i, L in enumerate(w["layers"]):
        h = layer(arch, s, L, h, cos, sin, None if caches is None else caches[i])
    if arch == "llama":
        return F.linear(rms_norm(h, w["final_norm"]), w["lm_head"])
    return F.linear(F.layer_norm(h, (s["hidden"],), w["final_norm"], w["final_norm_bias"], 1e-5), w["embed"])


def causal_lm_loss(logits, ids):
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))


def timed(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def run(arch, case):
    s = SHAPES[arch]
    w = make_weights(arch, s)
    params = [t for t in [w["embed"], w["final_norm"], w.get("lm_head"), w.get("wpe"), w.get("final_norm_bias")]
              if t is not None] + [t for L in w["layers"] for t in L.values()]
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH), generator=g)
    if case == "prefill":
        def fn():
            with torch.no_grad():
                causal_lm_loss(model(arch, s, w, ids), ids)
    elif case == "train":
        def fn():
            for p in params:
                p.grad = None
            causal_lm_loss(model(arch, s, w, ids), ids).backward()
    else:
        with torch.no_grad():
            caches = [(torch.randn(1, s["kv_heads"], CACHED, s["head_dim"], generator=g),
                       torch.randn(1, s["kv_heads"], CACHED, s["head_dim"], generator=g)) for _ in range(LAYERS)]
        nxt = torch.randint(0, VOCAB, (1, 1), generator=g)

        def fn():
            with torch.no_grad():
                model(arch, s, w, nxt, CACHED, caches)
    return timed(fn, args.reps)


for arch in args.archs.split(","):
    for case in args.cases.split(","):
        times = run(arch, case)
        print(json.dumps({"arch": arch, "case": case, "threads": args.threads, "times_ms": times}), flush=True)
