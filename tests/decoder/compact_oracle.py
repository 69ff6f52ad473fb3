#!/usr/bin/env python3
"""Runs a compacted model that prune saved through an independent PyTorch model.

Usage: compact_oracle.py MODEL_DIR IDS_JSON OUT_JSON

MODEL_DIR holds config.json (widths as plain numbers, Hugging Face's own keys) and an F32
model.safetensors. Llama: the config is read as Hugging Face's LlamaConfig reads it
(num_attention_heads, num_key_value_heads, head_dim, intermediate_size, num_hidden_layers) by
oracle.llama_forward. GPT-2: pruned_heads is applied as Hugging Face's GPT2Attention.prune_heads
does (layer l keeps n_head - len(pruned_heads[l]) heads of width n_embd / n_head; c_attn splits
into q, k, v of that many heads), n_inner and n_layer as GPT2Config reads them. Float64, no
gates. IDS_JSON is a list of token ids; OUT_JSON gets {"logits": [rows x vocab]}.
"""
import importlib.util
import json
import os
import struct
import sys

import numpy as np
import torch


def _oracle():
    spec = importlib.util.spec_from_file_location(
        "decoder_oracle", os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracle.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_safetensors(path):
    """Every F32 tensor of a safetensors file, as float64."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).copy()).reshape(info["shape"]).double()
    return out


def gpt2_forward(c, P, ids):
    """GPT2LMHeadModel's math with Hugging Face's pruned_heads (the prefix "transformer.")."""
    o = _oracle()
    H, L, n = c["n_embd"], c["n_layer"], len(ids)
    d = H // c["n_head"]
    pruned = {int(k): v for k, v in c.get("pruned_heads", {}).items()}
    eps = c.get("layer_norm_epsilon", 1e-5)
    ln = lambda x, name: torch.nn.functional.layer_norm(x, (H,), P[name + ".weight"], P[name + ".bias"], eps)
    h = P["transformer.wte.weight"][torch.tensor(ids)] + P["transformer.wpe.weight"][:n]
    mask = torch.full((n, n), float("-inf")).triu(1)
    for l in range(L):
        p = "transformer.h.%d." % l
        heads = c["n_head"] - len(pruned.get(l, []))
        x = ln(h, p + "ln_1")
        qkv = x @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
        q, k, v = (t.view(n, heads, d).transpose(0, 1) for t in qkv.split(heads * d, dim=-1))
        probs = torch.softmax(q @ k.transpose(-1, -2) / (d ** 0.5) + mask, dim=-1)
        ctx = (probs @ v).transpose(0, 1).reshape(n, heads * d)
        h = h + ctx @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        x = ln(h, p + "ln_2")
        m = o.gelu_new(x @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"]) @ P[p + "mlp.c_proj.weight"]
        h = h + m + P[p + "mlp.c_proj.bias"]
    return ln(h, "transformer.ln_f") @ P["transformer.wte.weight"].T


def main():
    model, ids_path, out_path = sys.argv[1:4]
    with open(os.path.join(model, "config.json")) as f:
        c = json.load(f)
    with open(ids_path) as f:
        ids = json.load(f)
    P = read_safetensors(os.path.join(model, "model.safetensors"))
    if c["model_type"] == "gpt2":
        for key in ("n_head", "n_inner", "n_layer"):
            assert isinstance(c[key], int), key  # a stock Hugging Face config
        logits = gpt2_forward(c, P, ids)
    else:
        for key in ("num_attention_heads", "num_key_value_heads", "intermediate_size", "num_hidden_layers"):
            assert isinstance(c[key], int), key
        L, Hq, Hkv = c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]
        ones = {"heads": [[1.0] * Hq for _ in range(L)], "kv_groups": [[1.0] * Hkv for _ in range(L)], "mlps": [1.0] * L}
        logits = _oracle().llama_forward(c, P, ids, ones)
    with open(out_path, "w") as f:
        json.dump({"logits": logits.flatten().tolist()}, f)


if __name__ == "__main__":
    main()
