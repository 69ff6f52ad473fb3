"""Independent check of a sharded safetensors output against its input (json + struct only).

Usage: shard_layout_check.py IN_DIR OUT_DIR
Both directories must hold model.safetensors.index.json. Checks that OUT has the same weight_map,
that every shard file of OUT holds exactly the tensors of the same shard of IN with the same
dtype and shape, that OUT has no model.safetensors, and that OUT's metadata.total_size is the sum
of numel x dtype size over every tensor (as Hugging Face's save_pretrained writes it), computed
here from the shard headers. Exit 0 and "ok" on success, 1 with the first difference otherwise.
"""
import json
import os
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
        size = os.fstat(f.fileno()).st_size
    h.pop("__metadata__", None)
    for name, e in h.items():
        numel = 1
        for d in e["shape"]:
            numel *= d
        b, en = e["data_offsets"]
        assert en - b == numel * SIZES[e["dtype"]], name
        assert 8 + n + en <= size, name
    return {name: (e["dtype"], tuple(e["shape"])) for name, e in h.items()}


def main(a, b):
    ia = json.load(open(os.path.join(a, "model.safetensors.index.json")))
    ib = json.load(open(os.path.join(b, "model.safetensors.index.json")))
    if ia["weight_map"] != ib["weight_map"]:
        return "weight_map differs"
    if os.path.exists(os.path.join(b, "model.safetensors")):
        return "output has a model.safetensors beside its shards"
    total = 0
    for shard in sorted(set(ia["weight_map"].values())):
        ha, hb = header(os.path.join(a, shard)), header(os.path.join(b, shard))
        if ha != hb:
            return "shard %s: %s != %s" % (shard, sorted(hb.items()), sorted(ha.items()))
        for dtype, shape in hb.values():
            numel = 1
            for d in shape:
                numel *= d
            total += numel * SIZES[dtype]
    if ib["metadata"]["total_size"] != total:
        return "total_size %s, expected %d" % (ib["metadata"]["total_size"], total)
    return None


if __name__ == "__main__":
    problem = main(sys.argv[1], sys.argv[2])
    print(problem or "ok")
    sys.exit(1 if problem else 0)
