# benchmarks/torch_sparsify_layer.py: one decoder layer of TinyLlama-1.1B's shape pruned the way
# the reference code prunes it (Wanda's prune_wanda, SparseGPT's llama_sequential), with the
# PyTorch ports of tests/sparsify/reference_ports.py, for sparsify_layer_vs_torch.sh.
#   --write DIR   makes the work: DIR/config.json and DIR/model.safetensors (a 1-layer Llama:
#                 hidden 2048, 32 heads, 4 KV heads, head_dim 64, intermediate 5632, vocab 1024;
#                 weights N(0, 0.02^2), norm scales 1 + N(0, 0.02^2), embeddings N(0, 1)) and
#                 DIR/calib.i32 (16 sequences of 512 token ids, int32)
#   --data DIR    times the per-layer work on it (the same tensors, rebuilt from the same seed):
#                 every calibration sequence through the dense layer (batch of 1, as the
#                 reference) with each of the 7 linears' statistic accumulated as the reference's
#                 forward hooks do (Wanda: WrappedGPT's scaler_row; SparseGPT: its H, one per
#                 linear), then the 7 masks chosen and applied (SparseGPT: fasterprune), then
#                 every sequence through the pruned layer (the next layer's inputs), float32.
#                 Prints one JSON line: method, pattern, threads, seconds and cpu_seconds (wall
#                 and process CPU time, every repeat), peak RSS growth (MB) over the first repeat.
# Run with /usr/bin/python3 (Debian's python3-torch); thread settings: see sparsify_layer_vs_torch.sh.
import argparse
import importlib.util
import json
import math
import os
import resource
import sys
import time

import numpy
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "sparsify"))
import reference_ports as ref  # noqa: E402

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
          "num_hidden_layers": 1, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 64,
          "intermediate_size": 5632, "vocab_size": 1024, "max_position_embeddings": 512,
          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu"}
SAMPLES, TOKENS = 16, 512
LINEARS = [("self_attn.q_proj", "x1"), ("self_attn.k_proj", "x1"), ("self_attn.v_proj", "x1"),
           ("self_attn.o_proj", "gated"), ("mlp.gate_proj", "x2"), ("mlp.up_proj", "x2"),
           ("mlp.down_proj", "act")]


def make_tensors():
    g = torch.Generator().manual_seed(20)
    c = CONFIG
    H, Hq, Hkv, d, Fi, V = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"],
                            c["intermediate_size"], c["vocab_size"])

    def r(*shape, s=0.02):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * s

    p = "model.layers.0."
    t = {"model.embed_tokens.weight": r(V, H, s=1.0), p + "input_layernorm.weight": 1 + r(H),
         p + "self_attn.q_proj.weight": r(Hq * d, H), p + "self_attn.k_proj.weight": r(Hkv * d, H),
         p + "self_attn.v_proj.weight": r(Hkv * d, H), p + "self_attn.o_proj.weight": r(H, Hq * d),
         p + "post_attention_layernorm.weight": 1 + r(H), p + "mlp.gate_proj.weight": r(Fi, H),
         p + "mlp.up_proj.weight": r(Fi, H), p + "mlp.down_proj.weight": r(H, Fi),
         "model.norm.weight": 1 + r(H), "lm_head.weight": r(V, H)}
    calib = torch.randint(0, V, (SAMPLES, TOKENS), generator=g, dtype=torch.int32)
    return t, calib


def write(d):
    spec = importlib.util.spec_from_file_location("bert_oracle", os.path.join(HERE, "..", "tests", "bert", "oracle.py"))
    bert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bert)  # for its safetensors writer
    t, calib = make_tensors()
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=1)
    bert.write_safetensors(os.path.join(d, "model.safetensors"), t, "F32")
    calib.numpy().astype("<i4").tofile(os.path.join(d, "calib.i32"))


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables():
    d = CONFIG["head_dim"]
    inv = 1.0 / (CONFIG["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = torch.outer(torch.arange(TOKENS).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def causal_mask(n):
    return torch.full((n, n), float("-inf")).triu(1)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def layer(P, h, cos, sin, hook):
    """Hugging Face's LlamaDecoderLayer on one sequence [n, H]; hook(name, x)
    sees each linear's input, as a forward hook on the nn.Linear would. Eager attention, as
    Hugging Face's LlamaAttention (torch 1.13 has no scaled_dot_product_attention)."""
    c = CONFIG
    Hq, Hkv, d, eps = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["rms_norm_eps"]
    n = h.shape[0]

    def lin(name, x):
        if hook is not None:
            hook(name, x)
        return F.linear(x, P[name])

    x1 = rms(h, P["input_layernorm"], eps)
    q = lin("self_attn.q_proj", x1).view(n, Hq, d).transpose(0, 1)
    k = lin("self_attn.k_proj", x1).view(n, Hkv, d).transpose(0, 1)
    v = lin("self_attn.v_proj", x1).view(n, Hkv, d).transpose(0, 1)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k.repeat_interleave(Hq // Hkv, dim=0)
    v = v.repeat_interleave(Hq // Hkv, dim=0)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + causal_mask(n), dim=-1)
    gated = probs @ v
    h = h + lin("self_attn.o_proj", gated.transpose(0, 1).reshape(n, Hq * d))
    x2 = rms(h, P["post_attention_layernorm"], eps)
    act = F.silu(lin("mlp.gate_proj", x2)) * lin("mlp.up_proj", x2)
    return h + lin("mlp.down_proj", act)


def prune_layer(P, inps, outs, cos, sin, method, pattern):
    """The reference's per-layer work: calibration pass with hooks, prune the 7 linears, pass again."""
    nm = (2, 4) if pattern == "2:4" else (0, 0)
    if method == "wanda":
        stats = {name: ref.WandaStatistic(P[name].shape[1]) for name, _ in LINEARS}
    else:
        stats = {name: ref.SparseGPTHessian(P[name].shape[1]) for name, _ in LINEARS}
    for j in range(SAMPLES):
        outs[j] = layer(P, inps[j], cos, sin, lambda name, x: stats[name].add_batch(x))
    for name, _ in LINEARS:
        if method == "wanda":
            metric = ref.wanda_metric(P[name], torch.sqrt(stats[name].scaler_row.reshape((1, -1))))
            pruned = ref.nm_pruned(metric, *nm) if nm[0] else ref.wanda_pruned(metric, 0.5)
            P[name][pruned] = 0
        else:
            W, _ = ref.fasterprune(P[name], stats[name].H, 0.0 if nm[0] else 0.5, prune_n=nm[0], prune_m=nm[1])
            P[name].copy_(W)
        del stats[name]
    for j in range(SAMPLES):
        outs[j] = layer(P, inps[j], cos, sin, None)


def time_layer(method, pattern, repeat):
    t, calib = make_tensors()
    p = "model.layers.0."
    dense = {k[len(p):].replace(".weight", ""): v for k, v in t.items() if k.startswith(p)}
    inps = t["model.embed_tokens.weight"][calib.long()]  # [16, 512, 2048]: the reference's inps
    outs = torch.zeros_like(inps)
    cos, sin = rope_tables()
    seconds, cpu, growth = [], [], None
    with torch.no_grad():
        for _ in range(repeat):
            P = {k: v.clone() for k, v in dense.items()}
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start, start_cpu = time.perf_counter(), time.process_time()
            prune_layer(P, inps, outs, cos, sin, method, pattern)
            seconds.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            if growth is None:
                growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0
            del P
    return seconds, cpu, growth


parser = argparse.ArgumentParser()
parser.add_argument("--write")
parser.add_argument("--data")
parser.add_argument("--method", default="wanda", choices=["wanda", "sparsegpt"])
parser.add_argument("--pattern", default="0.5", choices=["0.5", "2:4"])
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeat", type=int, default=3)
args = parser.parse_args()
torch.set_num_threads(args.threads)
if args.write:
    write(args.write)
    sys.exit(0)
secs, cpu_secs, rss = time_layer(args.method, args.pattern, args.repeat)
print(json.dumps({"method": args.method, "pattern": args.pattern, "threads": args.threads, "seconds": secs,
                  "cpu_seconds": cpu_secs, "peak_rss_growth_mb": rss}), flush=True)
