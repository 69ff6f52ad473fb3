#!/usr/bin/env python3
"""benchmarks/random_imatrix.py: a llama-imatrix GGUF file of random statistics for a Llama
checkpoint, for timing `prune-sparsify --method wanda --imatrix` on models too large to
calibrate quickly (docs/large-models.md).

    python3 benchmarks/random_imatrix.py MODEL_DIR OUT.gguf [--tokens 512] [--seed 0]

Per prunable weight of every layer (blk.L.attn_q/k/v/output, ffn_gate/up/down, named as
llama.cpp names them), `<name>.in_sum2` (F32, ne [columns, 1]): tokens x uniform(0.01, 4),
the sums of x_j^2 over `tokens` tokens; `<name>.counts` (F32, ne [1, 1]): tokens. Metadata:
general.type "imatrix", imatrix.datasets ["random"], imatrix.chunk_count 1, imatrix.chunk_size
tokens. Written from the GGUF specification (version 3, alignment 32), standard library only.
"""
import argparse
import array
import json
import random
import struct
import sys
from pathlib import Path

ALIGN = 32


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def entries(cfg):
    hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
    for layer in range(cfg["num_hidden_layers"]):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            yield f"blk.{layer}.{name}.weight", inter if name == "ffn_down" else hidden


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    cfg = json.loads((Path(a.model) / "config.json").read_text())
    assert sys.byteorder == "little"
    rng = random.Random(a.seed)
    tensors = []  # (name, ne, float32 bytes)
    for name, columns in sorted(entries(cfg)):
        sums = array.array("f", (a.tokens * rng.uniform(0.01, 4.0) for _ in range(columns)))
        tensors.append((name + ".in_sum2", (columns, 1), sums.tobytes()))
        tensors.append((name + ".counts", (1, 1), array.array("f", [a.tokens]).tobytes()))
    kv = [
        gguf_string("general.type") + struct.pack("<I", 8) + gguf_string("imatrix"),
        gguf_string("imatrix.datasets") + struct.pack("<IIQ", 9, 8, 1) + gguf_string("random"),
        gguf_string("imatrix.chunk_count") + struct.pack("<II", 4, 1),
        gguf_string("imatrix.chunk_size") + struct.pack("<II", 4, a.tokens),
    ]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv)
    offset = 0
    for name, ne, data in tensors:
        head += gguf_string(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        head += struct.pack("<IQ", 0, offset)  # F32
        offset += -(-len(data) // ALIGN) * ALIGN
    with open(a.out, "wb") as f:
        f.write(head + b"\0" * (-len(head) % ALIGN))
        for _, _, data in tensors:
            f.write(data + b"\0" * (-len(data) % ALIGN))


if __name__ == "__main__":
    main()
