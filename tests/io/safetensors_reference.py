#!/usr/bin/python3
"""Independent safetensors truth for tests/io/test_safetensors.cpp.

There is no `safetensors` Python package on this machine, so this script implements
the published format itself (8-byte little-endian header length, JSON header padded
with spaces to a multiple of 8, data ordered by decreasing dtype size then name, as
the reference Rust implementation writes it) on top of torch tensors.

  safetensors_reference.py write OUTDIR
      OUTDIR/reference.safetensors      one tensor of every dtype, special values included
      OUTDIR/sharded/                   model.safetensors.index.json + two shards
      OUTDIR/expected.json              per tensor: dtype, shape, raw bits, float32 bits (torch's conversion)
  safetensors_reference.py masks OUTDIR
      OUTDIR/masks.safetensors          element masks (U8 and BOOL) of random 0/1 values
      OUTDIR/masks.json                 the same masks as nested lists of 0/1
  safetensors_reference.py read FILE OUT_JSON
      decodes FILE with this script's own parser and torch.frombuffer, checks the
      reference's layout rules (padding, no gaps, alignment) and writes what it found
      in the same form as expected.json.
"""
import json
import os
import struct
import sys

import torch

DTYPES = {  # name -> (torch dtype, bits view dtype, item size)
    "F64": (torch.float64, torch.int64, 8),
    "I64": (torch.int64, torch.int64, 8),
    "F32": (torch.float32, torch.int32, 4),
    "I32": (torch.int32, torch.int32, 4),
    "F16": (torch.float16, torch.int16, 2),
    "BF16": (torch.bfloat16, torch.int16, 2),
    "U8": (torch.uint8, torch.uint8, 1),
    "BOOL": (torch.bool, torch.uint8, 1),
}
NAME_OF = {v[0]: k for k, v in DTYPES.items()}


def unsigned_bits(t):
    """Raw bit patterns of a tensor's elements as unsigned Python ints (row-major)."""
    name = NAME_OF[t.dtype]
    _, view, size = DTYPES[name]
    flat = t.contiguous().reshape(-1)
    ints = flat.view(view) if t.dtype not in (torch.uint8, torch.bool) else flat.to(torch.uint8)
    mask = (1 << (8 * size)) - 1
    return [int(x) & mask for x in ints.tolist()]


def float32_bits(t):
    """torch's own conversion to float32, as uint32 bit patterns."""
    f = t.contiguous().reshape(-1).to(torch.float32)
    return [int(x) & 0xFFFFFFFF for x in f.view(torch.int32).tolist()]


def describe(tensors):
    return {
        name: {
            "dtype": NAME_OF[t.dtype],
            "shape": list(t.shape),
            "bits": unsigned_bits(t),
            "float32_bits": float32_bits(t),
        }
        for name, t in tensors.items()
    }


def serialize(tensors, metadata=None):
    """The file's bytes, laid out as the reference implementation lays them out."""
    order = sorted(tensors, key=lambda n: (-DTYPES[NAME_OF[tensors[n].dtype]][2], n))
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name in order:
        t = tensors[name].contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAME_OF[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def reference_tensors():
    g = torch.Generator().manual_seed(1234)
    inf, nan = float("inf"), float("nan")
    specials = [inf, -inf, nan, -0.0, 0.0, 5.96e-8, 6.1e-5, 65504.0, -1.5, 1e-3]
    return {
        "encoder.weight": torch.randn(3, 4, generator=g),
        "half": torch.tensor(specials, dtype=torch.float16),
        "half.random": torch.randn(2, 5, generator=g).to(torch.float16),
        "brain": torch.tensor(specials + [3.0e38, 1e-39], dtype=torch.bfloat16).reshape(3, 4),
        "double": torch.randn(2, 2, generator=g, dtype=torch.float64),
        "ids": torch.tensor([-3, 0, 2**40 + 7], dtype=torch.int64),
        "small.ids": torch.tensor([1, -2, 2**31 - 1, -(2**31)], dtype=torch.int32),
        "bytes": torch.tensor([0, 1, 2, 127, 128, 255, 7], dtype=torch.uint8),
        "flags": torch.tensor([[True, False], [False, True]]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "odd.u8": torch.tensor([1, 2, 3], dtype=torch.uint8),
    }


def write(outdir):
    os.makedirs(os.path.join(outdir, "sharded"), exist_ok=True)
    tensors = reference_tensors()
    with open(os.path.join(outdir, "reference.safetensors"), "wb") as f:
        f.write(serialize(tensors, {"format": "pt", "written_by": "safetensors_reference.py"}))
    g = torch.Generator().manual_seed(99)
    shard1 = {"bert.embeddings.word_embeddings.weight": torch.randn(6, 4, generator=g),
              "bert.encoder.layer.0.attention.self.query.weight": torch.randn(4, 4, generator=g)}
    shard2 = {"bert.encoder.layer.0.attention.self.query.bias": torch.randn(4, generator=g),
              "classifier.weight": torch.randn(2, 4, generator=g).to(torch.float16)}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    total = 0
    weight_map = {}
    for name, shard in zip(names, [shard1, shard2]):
        data = serialize(shard, {"format": "pt"})
        total += len(data)
        with open(os.path.join(outdir, "sharded", name), "wb") as f:
            f.write(data)
        for tensor in shard:
            weight_map[tensor] = name
    with open(os.path.join(outdir, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    expected = {"reference": describe(tensors), "sharded": describe({**shard1, **shard2})}
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump(expected, f)


def masks(outdir):
    os.makedirs(outdir, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    tensors = {
        "bert.encoder.layer.0.attention.self.query.weight": (torch.rand(4, 6, generator=g) > 0.3).to(torch.uint8),
        "bert.encoder.layer.0.intermediate.dense.bias": (torch.rand(70, generator=g) > 0.5).to(torch.uint8),
        "classifier.weight": torch.rand(2, 3, 5, generator=g) > 0.5,  # BOOL
    }
    with open(os.path.join(outdir, "masks.safetensors"), "wb") as f:
        f.write(serialize(tensors))
    with open(os.path.join(outdir, "masks.json"), "w") as f:
        json.dump({n: {"shape": list(t.shape), "values": t.to(torch.uint8).reshape(-1).tolist()}
                   for n, t in tensors.items()}, f)


def read(path, out):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    problems = []
    if n % 8 != 0:
        problems.append(f"header length {n} is not a multiple of 8")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    body = data[8 + n :]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    spans = []
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        torch_dtype, _, size = DTYPES[entry["dtype"]]
        if begin % size != 0:
            problems.append(f"{name} is not aligned to {size}")
        spans.append((begin, end))
        raw = bytearray(body[begin:end])
        t = torch.frombuffer(raw, dtype=torch_dtype) if raw else torch.zeros(0, dtype=torch_dtype)
        tensors[name] = t.reshape(entry["shape"]).clone()
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            problems.append(f"gap or overlap at byte {begin} (expected {position})")
        position = end
    if position != len(body):
        problems.append(f"data section has {len(body)} bytes, tensors cover {position}")
    with open(out, "w") as f:
        json.dump({"metadata": metadata, "tensors": describe(tensors), "order": list(header.keys()),
                   "problems": problems}, f)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "masks":
        masks(sys.argv[2])
    elif sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
