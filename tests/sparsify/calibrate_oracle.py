#!/usr/bin/env python3
"""PyTorch oracle for prune/sparsify/calibrate.hpp on decoders: the reference code's
layer-sequential protocol (Wanda's prune_wanda, SparseGPT's llama_sequential), run in float64
on a tiny Llama and a tiny GPT-2 with random weights.

Usage: calibrate_oracle.py OUT_DIR

For each model it writes OUT_DIR/<model>/{config.json, model.safetensors, calib.json} and, per
configuration, OUT_DIR/<model>/<config>/<linear name>.{kept,weight}: the mask (U8, 1 = kept) and
the pruned weight (float64), both [out, in] (GPT-2's Conv1D weights transposed to [out, in]).

The protocol, as the reference code runs it: for each layer, every calibration sequence runs
through the dense layer with hooks on every linear (here: the layer's function returns its
linears' inputs); the statistics are summed; the masks chosen and applied (SparseGPT: fasterprune
on H = 2 / sequences x sum x x^T); then every sequence runs through the pruned layer to give the
next layer's inputs (`sequential`), or the dense outputs are kept (`dense`). The layer math is
tests/decoder/oracle.py's (Hugging Face's), split into one function per layer here.
Mask rules: Wanda per row of |W| x ||X_j|| (float32 norms and product, stable sort), or per
layer (every linear of the layer together, ties by linear then flat index); N:M per group,
ties by column (stable_nm); magnitude per matrix, exactly int(s x numel), ties by flat index;
SparseGPT's `exact` count per block (the library's default rule) in float64; `reconstruct`:
the Wanda or magnitude mask, then fasterprune with that mask given (the Wanda paper's ablation).
"""
import importlib.util
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dec = _load("decoder_oracle", os.path.join(HERE, "..", "decoder", "oracle.py"))  # sets float64 default
ports = _load("reference_ports", os.path.join(HERE, "reference_ports.py"))


# ---- One layer at a time (returns the output and the inputs of its linears) -----------------

def llama_layer(c, P, l, h):
    H, Hq = c["hidden_size"], c["num_attention_heads"]
    Hkv = c.get("num_key_value_heads", Hq)
    d = c.get("head_dim") or H // Hq
    eps = c.get("rms_norm_eps", 1e-6)
    n = h.shape[0]
    freqs = torch.outer(torch.arange(n, dtype=torch.int64).float(), dec.llama_inv_freq(c))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().double(), emb.sin().double()
    mask = torch.full((n, n), float("-inf")).triu(1)
    p = "model.layers.%d." % l
    x1 = dec.rms(h, P[p + "input_layernorm.weight"], eps)
    q = (x1 @ P[p + "self_attn.q_proj.weight"].T).view(n, Hq, d).transpose(0, 1)
    k = (x1 @ P[p + "self_attn.k_proj.weight"].T).view(n, Hkv, d).transpose(0, 1)
    v = (x1 @ P[p + "self_attn.v_proj.weight"].T).view(n, Hkv, d).transpose(0, 1)
    q = q * cos + dec.rotate_half(q) * sin
    k = k * cos + dec.rotate_half(k) * sin
    k = k.repeat_interleave(Hq // Hkv, dim=0)
    v = v.repeat_interleave(Hq // Hkv, dim=0)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
    gated = (probs @ v).transpose(0, 1).reshape(n, Hq * d)
    h = h + gated @ P[p + "self_attn.o_proj.weight"].T
    x2 = dec.rms(h, P[p + "post_attention_layernorm.weight"], eps)
    act = F.silu(x2 @ P[p + "mlp.gate_proj.weight"].T) * (x2 @ P[p + "mlp.up_proj.weight"].T)
    h = h + act @ P[p + "mlp.down_proj.weight"].T
    return h, {"x1": x1, "gated": gated, "x2": x2, "act": act}


def llama_linears(l):
    p = "model.layers.%d." % l
    return [(p + "self_attn.q_proj.weight", "x1"), (p + "self_attn.k_proj.weight", "x1"),
            (p + "self_attn.v_proj.weight", "x1"), (p + "self_attn.o_proj.weight", "gated"),
            (p + "mlp.gate_proj.weight", "x2"), (p + "mlp.up_proj.weight", "x2"),
            (p + "mlp.down_proj.weight", "act")]


def gpt2_layer(c, P, l, h):
    H, Hq = c["n_embd"], c["n_head"]
    d = H // Hq
    eps = c.get("layer_norm_epsilon", 1e-5)
    n = h.shape[0]
    ln = lambda x, name: F.layer_norm(x, (H,), P[name + ".weight"], P[name + ".bias"], eps)
    mask = torch.full((n, n), float("-inf")).triu(1)
    p = "transformer.h.%d." % l
    x1 = ln(h, p + "ln_1")
    qkv = x1 @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
    q, k, v = (t.view(n, Hq, d).transpose(0, 1) for t in qkv.split(H, dim=-1))
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
    gated = (probs @ v).transpose(0, 1).reshape(n, H)
    h = h + gated @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
    x2 = ln(h, p + "ln_2")
    act = dec.gelu_new(x2 @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"])
    h = h + act @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
    return h, {"x1": x1, "gated": gated, "x2": x2, "act": act}


def gpt2_linears(l):
    p = "transformer.h.%d." % l
    return [(p + "attn.c_attn.weight", "x1"), (p + "attn.c_proj.weight", "gated"),
            (p + "mlp.c_fc.weight", "x2"), (p + "mlp.c_proj.weight", "act")]


# ---- Mask choice per linear (True = pruned, as the reference builds masks) -----------------

def choose(config, W, stats, samples):
    """(pruned mask, new weight) of one [out, in] weight from its input's statistics."""
    method, target = config["method"], config["target"]
    nm = target if isinstance(target, tuple) else None
    if method == "sparsegpt":
        H = stats["gram"] * (2.0 / samples)
        if nm:
            new, pruned = ports.fasterprune(W, H, 0.0, nm[1] - nm[0], nm[1], dtype=torch.float64, stable_nm=True)
        else:
            new, pruned = ports.fasterprune(W, H, target, dtype=torch.float64, exact=True)
        return pruned, new
    if method == "wanda":
        metric = ports.wanda_metric(W, stats["sum2"].sqrt().float())
    else:
        metric = torch.abs(W.float())
    if nm:
        pruned = ports.nm_pruned(metric, nm[1] - nm[0], nm[1], stable_nm=True)
    elif method == "wanda":
        pruned = ports.wanda_pruned(metric, target)
    else:
        pruned = ports.lowest_together([metric], target)[0]
    if config.get("reconstruct"):  # the Wanda paper's ablation: SparseGPT's update of this mask
        new, _ = ports.fasterprune(W, stats["gram"] * (2.0 / samples), 0.0, mask=pruned, dtype=torch.float64)
        return pruned, new
    return pruned, W * (~pruned)


def choose_layer(config, weights, stats):
    """The layer group: every linear of the layer together, int(s x total) lowest by (value,
    linear, flat index) of |W| x ||X_j||."""
    metrics = [ports.wanda_metric(W, stats[key]["sum2"].sqrt().float()) for W, key in weights]
    return [(pruned, W * (~pruned)) for pruned, (W, _) in zip(ports.lowest_together(metrics, config["target"]), weights)]


def prune_model(arch, c, P0, seqs, config):
    """The reference protocol over every layer; returns {name: (kept, weight [out, in])}."""
    P = dict(P0)
    layer = llama_layer if arch == "llama" else gpt2_layer
    names = llama_linears if arch == "llama" else gpt2_linears
    conv = arch == "gpt2"
    if arch == "llama":
        hs = [P["model.embed_tokens.weight"][torch.tensor(s)] for s in seqs]
    else:
        hs = [P["transformer.wte.weight"][torch.tensor(s)] + P["transformer.wpe.weight"][:len(s)] for s in seqs]
    L = c["num_hidden_layers"] if arch == "llama" else c["n_layer"]
    out = {}
    for l in range(L):
        stats, dense_out = {}, []
        for h in hs:
            y, inputs = layer(c, P, l, h)
            dense_out.append(y)
            for key, x in inputs.items():
                s = stats.setdefault(key, {"sum2": 0.0, "gram": 0.0})
                s["sum2"] = s["sum2"] + (x * x).sum(0)
                s["gram"] = s["gram"] + x.T @ x
        weights = [(P[name].T if conv else P[name], key) for name, key in names(l)]
        if config.get("group") == "layer":
            chosen = choose_layer(config, weights, stats)
        else:
            chosen = [choose(config, W, stats[key], len(seqs)) for W, key in weights]
        for (name, _), (pruned, new) in zip(names(l), chosen):
            out[name] = (~pruned, new)
            P[name] = new.T.contiguous() if conv else new
        hs = dense_out if config["dense"] else [layer(c, P, l, h)[0] for h in hs]
    return out


CONFIGS = {
    "wanda_50": {"method": "wanda", "target": 0.5, "dense": False},
    "wanda_24": {"method": "wanda", "target": (2, 4), "dense": False},
    "wanda_48_dense": {"method": "wanda", "target": (4, 8), "dense": True},
    "sparsegpt_50": {"method": "sparsegpt", "target": 0.5, "dense": False},
    "sparsegpt_24": {"method": "sparsegpt", "target": (2, 4), "dense": False},
    "magnitude_50": {"method": "magnitude", "target": 0.5, "dense": False},
    "wanda_layer_50": {"method": "wanda", "target": 0.5, "dense": False, "group": "layer"},
    "wanda_rec_50": {"method": "wanda", "target": 0.5, "dense": False, "reconstruct": True},
    "magnitude_rec_24": {"method": "magnitude", "target": (2, 4), "dense": False, "reconstruct": True},
}


def write_case(out, name, arch, config, seed, batches):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    tensors = dec.llama_tensors(config, seed) if arch == "llama" else dec.gpt2_tensors(config, seed, "transformer.", False)
    dec.write_model(d, tensors, "F32", 1)
    P = {k: dec.stored(v, "F32") for k, v in tensors.items()}
    g = torch.Generator().manual_seed(seed + 1)
    V = config["vocab_size"]
    calib = [[[int(x) for x in torch.randint(0, V, (n,), generator=g)] for n in lengths] for lengths in batches]
    with open(os.path.join(d, "calib.json"), "w") as f:
        json.dump({"batches": calib, "configs": list(CONFIGS)}, f)
    seqs = [s for batch in calib for s in batch]
    for cname, cfg in CONFIGS.items():
        cd = os.path.join(d, cname)
        os.makedirs(cd, exist_ok=True)
        for lname, (kept, W) in prune_model(arch, config, P, seqs, cfg).items():
            kept.to(torch.uint8).numpy().tofile(os.path.join(cd, lname + ".kept"))
            W.double().numpy().tofile(os.path.join(cd, lname + ".weight"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # GQA 2, down_proj 160 wide (two SparseGPT blocks: 128 + 32), 2 layers; 2 batches of sequences.
    write_case(out, "llama", "llama",
               dec.llama_config(num_key_value_heads=2, intermediate_size=160, max_position_embeddings=16), 31,
               [[16, 9], [12, 16, 5]])
    # GPT-2, c_attn [96, 32], c_fc [128, 32], c_proj [32, 128], 2 layers.
    write_case(out, "gpt2", "gpt2", dec.gpt2_config(n_embd=32, n_head=4, n_positions=16), 32, [[16, 11, 7], [14]])


if __name__ == "__main__":
    main()
