#!/usr/bin/env python3
"""PyTorch truth for include/prune/models/decoder/unit_scores.hpp.

Usage: unit_scores_oracle.py ORACLE_DIR CASE [CASE ...]

ORACLE_DIR is what tests/decoder/oracle.py wrote. For each CASE this reads the checkpoint back
from its safetensors files (parsed here: 8-byte header length, JSON header, raw F32 / F16 / BF16
bytes), the sequences and gates from case.json, and writes ORACLE_DIR/CASE/unit_scores.json:

  taylor   first-order Taylor scores |sum over the unit of theta * dL/dtheta|, L the mean NLL over
           every predicted token of every sequence, gradients by autograd in float64 through the
           oracle's own forward pass (oracle.llama_forward / gpt2_forward), units read off the
           Hugging Face tensors in their file layout (GPT-2's Conv1D weights are [in, out]):
           heads, kv_groups (layers x heads), mlps, layers (one per layer), channels (layers x F)
  block_influence  1 - mean over every token of cos(h_l, h_{l+1}), the residual streams entering
           and leaving layer l (before the final norm), from the oracle's forward pass in float64;
           cos = 1 when both vectors are zero, 0 when one is
"""
import importlib.util
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def _oracle():
    spec = importlib.util.spec_from_file_location(
        "decoder_oracle", os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracle.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


oracle = _oracle()

TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=TORCH_DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).double()
    return out


def read_checkpoint(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(d, "model.safetensors"))
    with open(index) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    P = {}
    for name in files:
        P.update(read_safetensors(os.path.join(d, name)))
    return P


class Case:
    """One oracle case: config, weights, sequences, gates and the forward pass."""

    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.c = json.load(f)
        with open(os.path.join(d, "case.json")) as f:
            case = json.load(f)
        self.P = read_checkpoint(d)
        self.seqs, self.gates = case["sequences"], case["gates"]
        self.llama = self.c["model_type"] == "llama"
        self.prefix = "transformer." if "transformer.wte.weight" in self.P else ""

    def run(self, P, ids, hidden=None):
        if self.llama:
            return oracle.llama_forward(self.c, P, ids, self.gates, hidden)
        return oracle.gpt2_forward(self.c, P, ids, self.gates, self.prefix, hidden)

    def shape(self):
        c = self.c
        if self.llama:
            Hq = c["num_attention_heads"]
            return (c["num_hidden_layers"], Hq, c.get("num_key_value_heads", Hq),
                    c.get("head_dim") or c["hidden_size"] // Hq, c["hidden_size"])
        return c["n_layer"], c["n_head"], c["n_head"], c["n_embd"] // c["n_head"], c["n_embd"]


def products(case):
    """theta * dL/dtheta for every stored tensor (float64), L the data set's token-mean NLL."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in case.P.items()}
    predicted = sum(len(s) - 1 for s in case.seqs)
    loss = sum(oracle.nll_sum(case.run(leaves, ids), ids) for ids in case.seqs) / predicted
    loss.backward()
    return {k: (v.detach() * v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()}


def llama_units(Q, l, Hq, Hkv, d):
    """Signed sums of layer l's units (HF layout: q/k/v/gate/up [out, in], o/down [out, in])."""
    p = "model.layers.%d." % l
    part = lambda name, *index: float(Q[p + name][index].sum()) if p + name in Q else 0.0
    heads = [part("self_attn.q_proj.weight", slice(h * d, (h + 1) * d)) + part("self_attn.q_proj.bias", slice(h * d, (h + 1) * d))
             + part("self_attn.o_proj.weight", slice(None), slice(h * d, (h + 1) * d)) for h in range(Hq)]
    group = Hq // Hkv
    kv = [sum(part("self_attn.%s_proj.%s" % (m, t), slice(g * d, (g + 1) * d)) for m in "kv" for t in ("weight", "bias"))
          + sum(heads[g * group:(g + 1) * group]) for g in range(Hkv)]
    Fi = Q[p + "mlp.gate_proj.weight"].shape[0]
    channels = [part("mlp.gate_proj.weight", j) + part("mlp.up_proj.weight", j) + part("mlp.gate_proj.bias", j)
                + part("mlp.up_proj.bias", j) + part("mlp.down_proj.weight", slice(None), j) for j in range(Fi)]
    mlp = sum(part("mlp.%s.%s" % (m, t)) for m in ("gate_proj", "up_proj", "down_proj") for t in ("weight", "bias"))
    return heads, kv, channels, mlp


def gpt2_units(Q, l, Hq, d, H, prefix):
    """Signed sums of layer l's units (file layout: c_attn [H, 3H], attn.c_proj [H, H], c_fc [H, F], mlp.c_proj [F, H])."""
    p = prefix + "h.%d." % l
    part = lambda name, *index: float(Q[p + name][index].sum())
    cols = lambda begin: (slice(None), slice(begin, begin + d))
    heads = [part("attn.c_attn.weight", *cols(h * d)) + part("attn.c_attn.bias", slice(h * d, (h + 1) * d))
             + part("attn.c_proj.weight", slice(h * d, (h + 1) * d)) for h in range(Hq)]
    kv = [heads[g] + sum(part("attn.c_attn.weight", *cols(off + g * d)) + part("attn.c_attn.bias", slice(off + g * d, off + (g + 1) * d))
                         for off in (H, 2 * H)) for g in range(Hq)]
    Fi = Q[p + "mlp.c_fc.weight"].shape[1]
    channels = [part("mlp.c_fc.weight", slice(None), j) + part("mlp.c_fc.bias", j) + part("mlp.c_proj.weight", j)
                for j in range(Fi)]
    mlp = sum(part("mlp.%s.%s" % (m, t)) for m in ("c_fc", "c_proj") for t in ("weight", "bias"))
    return heads, kv, channels, mlp


def taylor(case):
    Q = products(case)
    L, Hq, Hkv, d, H = case.shape()
    out = {"heads": [], "kv_groups": [], "channels": [], "mlps": [], "layers": []}
    for l in range(L):
        if case.llama:
            heads, kv, channels, mlp = llama_units(Q, l, Hq, Hkv, d)
            p = "model.layers.%d." % l
        else:
            heads, kv, channels, mlp = gpt2_units(Q, l, Hq, d, H, case.prefix)
            p = case.prefix + "h.%d." % l
        layer = sum(float(v.sum()) for k, v in Q.items() if k.startswith(p))
        out["heads"].append([abs(x) for x in heads])
        out["kv_groups"].append([abs(x) for x in kv])
        out["channels"].append([abs(x) for x in channels])
        out["mlps"].append(abs(mlp))
        out["layers"].append(abs(layer))
    return out


def cosines(a, b):
    """cos of each row pair; 1 when both rows are zero, 0 when one is."""
    na, nb = a.norm(dim=-1), b.norm(dim=-1)
    cos = F.cosine_similarity(a, b, dim=-1, eps=1e-300)
    cos = torch.where((na == 0) | (nb == 0), torch.zeros_like(cos), cos)
    return torch.where((na == 0) & (nb == 0), torch.ones_like(cos), cos)


def block_influence(case):
    L = case.shape()[0]
    sums, tokens = [0.0] * L, 0
    with torch.no_grad():
        for ids in case.seqs:
            hidden = []
            case.run(case.P, ids, hidden)
            for l in range(L):
                sums[l] += float(cosines(hidden[l], hidden[l + 1]).sum())
            tokens += len(ids)
    return [1.0 - s / tokens for s in sums]


def main():
    root = sys.argv[1]
    for name in sys.argv[2:]:
        d = os.path.join(root, name)
        case = Case(d)
        with open(os.path.join(d, "unit_scores.json"), "w") as f:
            json.dump({"taylor": taylor(case), "block_influence": block_influence(case)}, f)


if __name__ == "__main__":
    main()
