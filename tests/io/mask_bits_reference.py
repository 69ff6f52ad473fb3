"""Reference for packed-bit element mask files (tests/io/test_masks.cpp), with numpy alone.

  mask_bits_reference.py BYTES_FILE BITS_FILE OUT_JSON
      reads both safetensors files with this script's own parser; for every tensor of
      BYTES_FILE (U8, one byte per element) writes numpy's
      packbits(m, axis=-1, bitorder='little') (shape and bytes), and for the same name in
      BITS_FILE its stored shape and bytes, its "prune.mask_last_dims" entry and
      unpackbits(p, axis=-1, count=last, bitorder='little') (flattened), to OUT_JSON.
"""
import json
import struct
import sys

import numpy as np


def load(path):
    """{name: (shape, numpy uint8 array of the stored bytes)}, __metadata__."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "U8", (name, entry["dtype"])
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=np.uint8).reshape(entry["shape"])
        tensors[name] = values
    return tensors, metadata


def main(bytes_file, bits_file, out):
    plain, _ = load(bytes_file)
    packed, metadata = load(bits_file)
    last_dims = json.loads(metadata["prune.mask_last_dims"])
    result = {"layout": metadata.get("prune.mask_layout"), "tensors": {}}
    for name, m in plain.items():
        expected = np.packbits(m, axis=-1, bitorder="little")
        p = packed[name]
        result["tensors"][name] = {
            "numpy_shape": list(expected.shape),
            "numpy_bytes": expected.reshape(-1).tolist(),
            "file_shape": list(p.shape),
            "file_bytes": p.reshape(-1).tolist(),
            "last": last_dims[name],
            "unpacked": np.unpackbits(p, axis=-1, count=last_dims[name], bitorder="little").reshape(-1).tolist(),
            "bytes": m.reshape(-1).tolist(),
        }
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
