#!/usr/bin/python3
"""benchmarks/make_llama.py: write a Hugging Face Llama directory with random bf16 weights.

The directory is what `LlamaForCausalLM.save_pretrained` writes for a sharded checkpoint:
config.json, model-0000K-of-0000N.safetensors shards of at most --shard-gb GB (10^9 bytes)
each and model.safetensors.index.json (metadata.total_size and weight_map), plus
calibration and evaluation token files (JSON Lines, one {"input_ids": [...]} per row).

Weights are N(0, 0.02) rounded to bf16 (round to nearest even), norms 1, seeded: each tensor
has its own generator seeded from (--seed, the tensor's index), so the values do not depend
on the sharding or the chunk size. Memory stays bounded: one chunk of one tensor (at most
--chunk-mb of float32) is generated and written at a time, never the model.

The safetensors format is written here directly (the `safetensors` package is not needed):
u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, ...,
"__metadata__": {"format": "pt"}} padded with spaces to a multiple of 8, then the data.

Usage:
  /usr/bin/python3 benchmarks/make_llama.py --preset tiny --out /tmp/tiny-llama
  /usr/bin/python3 benchmarks/make_llama.py --preset 7b --out /work/scratch/llama7b  # ~13.5 GB
Any shape flag (--layers, --hidden, ...) overrides the preset's value.
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch

PRESETS = {
    # Llama-2-7B (meta-llama/Llama-2-7b-hf config.json)
    "7b": dict(layers=32, hidden=4096, heads=32, kv_heads=32, intermediate=11008, vocab=32000,
               max_positions=4096),
    # for tests: grouped-query attention (2 query heads per KV head), every path exercised
    "tiny": dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=176, vocab=256,
                 max_positions=512),
}
GB = 10**9  # Hugging Face's max_shard_size "5GB" is 5 * 10^9 bytes


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory to write (created; must be empty or absent)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    for name in ("layers", "hidden", "heads", "kv-heads", "intermediate", "vocab", "max-positions"):
        p.add_argument(f"--{name}", type=int, help="override the preset")
    p.add_argument("--shard-gb", type=float, default=5.0, help="largest shard in GB (10^9 bytes); default 5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std", type=float, default=0.02, help="standard deviation of the weights")
    p.add_argument("--calib-rows", type=int, default=8)
    p.add_argument("--calib-len", type=int, default=128)
    p.add_argument("--eval-rows", type=int, default=8)
    p.add_argument("--eval-len", type=int, default=128)
    p.add_argument("--chunk-mb", type=int, default=256, help="float32 generated at a time (MB)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.add_argument("--dry-run", action="store_true", help="print the sizes as JSON and write nothing")
    a = p.parse_args(argv)
    shape = dict(PRESETS[a.preset])
    for key in shape:
        value = getattr(a, key)
        if value is not None:
            shape[key] = value
    for key, value in shape.items():
        if value <= 0:
            p.error(f"--{key.replace('_', '-')} must be positive (got {value})")
    if shape["hidden"] % shape["heads"] or shape["heads"] % shape["kv_heads"]:
        p.error(f"hidden {shape['hidden']} must be a multiple of heads {shape['heads']}, "
                f"which must be a multiple of kv heads {shape['kv_heads']}")
    if a.shard_gb <= 0:
        p.error("--shard-gb must be positive")
    return a, shape


def tensor_list(s):
    """(name, shape, is_norm) of a Llama checkpoint, in Hugging Face's order."""
    h, i, v = s["hidden"], s["intermediate"], s["vocab"]
    kv = s["kv_heads"] * (h // s["heads"])
    out = [("model.embed_tokens.weight", (v, h), False)]
    for layer in range(s["layers"]):
        p = f"model.layers.{layer}."
        out += [(p + "self_attn.q_proj.weight", (h, h), False),
                (p + "self_attn.k_proj.weight", (kv, h), False),
                (p + "self_attn.v_proj.weight", (kv, h), False),
                (p + "self_attn.o_proj.weight", (h, h), False),
                (p + "mlp.gate_proj.weight", (i, h), False),
                (p + "mlp.up_proj.weight", (i, h), False),
                (p + "mlp.down_proj.weight", (h, i), False),
                (p + "input_layernorm.weight", (h,), True),
                (p + "post_attention_layernorm.weight", (h,), True)]
    out += [("model.norm.weight", (h,), True), ("lm_head.weight", (v, h), False)]
    return out


def nbytes(shape):
    n = 2  # bf16
    for d in shape:
        n *= d
    return n


def plan_shards(tensors, shard_bytes):
    """Greedy, in order, as save_pretrained does: a new shard when the next tensor would overflow."""
    shards, current, size = [], [], 0
    for t in tensors:
        b = nbytes(t[1])
        if current and size + b > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(t)
        size += b
    if current:
        shards.append(current)
    return shards


def header_bytes(shard):
    header, offset = {}, 0
    for name, shape, _ in shard:
        b = nbytes(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + b]}
        offset += b
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_tensor(f, index, shape, is_norm, seed, std, chunk_elems):
    """Generate and write one tensor, a chunk of whole rows at a time."""
    if is_norm:
        f.write(torch.ones(shape, dtype=torch.bfloat16).view(torch.int16).numpy().tobytes())
        return
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    rows, cols = shape
    step = max(1, chunk_elems // cols)
    for r in range(0, rows, step):
        n = min(step, rows - r)
        block = torch.randn((n, cols), generator=gen, dtype=torch.float32)
        block.mul_(std)
        f.write(block.to(torch.bfloat16).view(torch.int16).numpy().tobytes())


def write_shards(out, shards, a):
    chunk_elems = a.chunk_mb * (1 << 20) // 4
    names, index = [], 0
    weight_map = {}
    for k, shard in enumerate(shards, 1):
        name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        names.append(name)
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(header_bytes(shard))
            for tname, shape, is_norm in shard:
                write_tensor(f, index, shape, is_norm, a.seed, a.std, chunk_elems)
                weight_map[tname] = name
                index += 1
        os.replace(tmp, os.path.join(out, name))
        print(f"make_llama: wrote {name} ({os.path.getsize(os.path.join(out, name)) / GB:.2f} GB)",
              file=sys.stderr)
    return weight_map


def config_json(s):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": s["hidden"], "intermediate_size": s["intermediate"],
        "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"], "vocab_size": s["vocab"],
        "max_position_embeddings": s["max_positions"], "hidden_act": "silu",
        "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": None,
        "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
        "initializer_range": 0.02, "torch_dtype": "bfloat16", "use_cache": True,
        "bos_token_id": 1, "eos_token_id": 2, "pretraining_tp": 1,
        "transformers_version": "4.40.0",
    }


def write_tokens(path, rows, length, vocab, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for _ in range(rows):
            ids = rng.integers(0, vocab, size=length)
            f.write(json.dumps({"input_ids": [int(t) for t in ids]}) + "\n")


def write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


def main(argv):
    a, s = parse_args(argv)
    tensors = tensor_list(s)
    total = sum(nbytes(t[1]) for t in tensors)
    shards = plan_shards(tensors, int(a.shard_gb * GB))
    if a.dry_run:
        print(json.dumps({"out": a.out, "parameters": total // 2, "bytes": total, "shards": len(shards)}))
        return
    if os.path.isdir(a.out) and os.listdir(a.out) and not a.force:
        sys.exit(f"make_llama: {a.out} exists and is not empty (use --force to overwrite)")
    os.makedirs(a.out, exist_ok=True)
    start = time.monotonic()
    # the index last: a directory with an index is complete
    write_tokens(os.path.join(a.out, "calib.jsonl"), a.calib_rows, a.calib_len, s["vocab"], a.seed + 1)
    write_tokens(os.path.join(a.out, "eval.jsonl"), a.eval_rows, a.eval_len, s["vocab"], a.seed + 2)
    write_json(os.path.join(a.out, "config.json"), config_json(s))
    write_json(os.path.join(a.out, "generation_config.json"),
               {"bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.40.0"})
    weight_map = write_shards(a.out, shards, a)
    write_json(os.path.join(a.out, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map})
    print(json.dumps({"out": a.out, "parameters": total // 2, "bytes": total, "shards": len(shards),
                      "seconds": round(time.monotonic() - start, 2)}))


if __name__ == "__main__":
    main(sys.argv[1:])
