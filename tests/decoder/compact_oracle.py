#!/usr/bin/env python3
"""Runs a compacted Llama that prune saved through oracle.py's independent PyTorch model.

Usage: compact_oracle.py MODEL_DIR IDS_JSON OUT_JSON

MODEL_DIR holds config.json (widths as plain numbers, Hugging Face's own keys) and an F32
model.safetensors. The config is read as Hugging Face's LlamaConfig reads it (num_attention_heads,
num_key_value_heads, head_dim, intermediate_size, num_hidden_layers) by oracle.llama_forward,
in float64, no gates. IDS_JSON is a list of token ids; OUT_JSON gets {"logits": [rows x vocab]}.
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


def main():
    model, ids_path, out_path = sys.argv[1:4]
    with open(os.path.join(model, "config.json")) as f:
        c = json.load(f)
    for key in ("num_attention_heads", "num_key_value_heads", "intermediate_size", "num_hidden_layers"):
        assert isinstance(c[key], int), key  # a stock Hugging Face config
    with open(ids_path) as f:
        ids = json.load(f)
    P = read_safetensors(os.path.join(model, "model.safetensors"))
    L, Hq, Hkv = c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]
    ones = {"heads": [[1.0] * Hq for _ in range(L)], "kv_groups": [[1.0] * Hkv for _ in range(L)], "mlps": [1.0] * L}
    logits = _oracle().llama_forward(c, P, ids, ones)
    with open(out_path, "w") as f:
        json.dump({"logits": logits.flatten().tolist()}, f)


if __name__ == "__main__":
    main()
