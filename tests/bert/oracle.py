#!/usr/bin/python3
"""tests/bert/oracle.py OUT_DIR: PyTorch ground truth for prune/models/bert/forward.hpp.

Builds BertForSequenceClassification from torch's own building blocks (nn.Linear,
nn.LayerNorm, nn.Embedding, F.gelu, softmax) with random weights, exactly as Hugging Face's
modeling_bert.py computes it (additive padding mask of finfo(float32).min, head gates
multiplying the attention probabilities), plus an MLP gate multiplying the whole
feed-forward output (bias included) before the residual (docs/bert.md, "Forward pass"). For each
case it writes OUT_DIR/<case>/{config.json, model.safetensors, data.jsonl, expected.json};
expected.json holds the gates and the logits with and without them. The F16 / BF16 copies
(<case>_f16, <case>_bf16) hold the rounded weights and logits computed from those.
The safetensors files are written here by hand (8-byte header length, JSON, raw bytes),
independently of the library's writer.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(self, hidden, heads, ffn, eps):
        super().__init__()
        self.heads, self.d = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.inter = nn.Linear(hidden, ffn)
        self.out = nn.Linear(ffn, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d).permute(0, 2, 1, 3)

    def forward(self, x, additive_mask, head_gate, mlp_gate):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d) + additive_mask
        probs = torch.softmax(scores, dim=-1) * head_gate.view(1, -1, 1, 1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(x.shape)
        a = self.attn_norm(self.attn_out(ctx) + x)
        return self.out_norm(mlp_gate * self.out(F.gelu(self.inter(a))) + a)


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        eps = c["layer_norm_eps"]
        self.word = nn.Embedding(c["vocab_size"], h)
        self.pos = nn.Embedding(c["max_position_embeddings"], h)
        self.segment = nn.Embedding(c["type_vocab_size"], h)
        self.norm = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(
            Layer(h, c["num_attention_heads"], c["intermediate_size"], eps) for _ in range(c["num_hidden_layers"]))
        self.pooler = nn.Linear(h, h)
        self.classifier = nn.Linear(h, c["num_labels"])

    def forward(self, ids, types, mask, head_gates, mlp_gates):
        n = ids.shape[1]
        x = self.norm(self.word(ids) + self.pos(torch.arange(n).unsqueeze(0)) + self.segment(types))
        additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer, hg, mg in zip(self.layers, head_gates, mlp_gates):
            x = layer(x, additive, hg, mg)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))

    def named_hf(self, prefix):
        out = {}
        out[prefix + "embeddings.word_embeddings.weight"] = self.word.weight
        out[prefix + "embeddings.position_embeddings.weight"] = self.pos.weight
        out[prefix + "embeddings.token_type_embeddings.weight"] = self.segment.weight
        out[prefix + "embeddings.LayerNorm.weight"] = self.norm.weight
        out[prefix + "embeddings.LayerNorm.bias"] = self.norm.bias
        for i, L in enumerate(self.layers):
            p = f"{prefix}encoder.layer.{i}."
            for name, mod in [("attention.self.query", L.query), ("attention.self.key", L.key),
                              ("attention.self.value", L.value), ("attention.output.dense", L.attn_out),
                              ("attention.output.LayerNorm", L.attn_norm), ("intermediate.dense", L.inter),
                              ("output.dense", L.out), ("output.LayerNorm", L.out_norm)]:
                out[p + name + ".weight"] = mod.weight
                out[p + name + ".bias"] = mod.bias
        out[prefix + "pooler.dense.weight"] = self.pooler.weight
        out[prefix + "pooler.dense.bias"] = self.pooler.bias
        out["classifier.weight"] = self.classifier.weight
        out["classifier.bias"] = self.classifier.bias
        return out


def write_safetensors(path, tensors, dtype):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if dtype == "F32":
            raw = t.float().numpy().tobytes()
        elif dtype == "F16":
            raw = t.half().numpy().tobytes()
        else:  # BF16: numpy has no bfloat16, so view the bits as int16
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def make_case(out, name, c, rows, prefix, head_gates, mlp_gates, seed):
    torch.manual_seed(seed)
    model = Bert(c)
    with torch.no_grad():  # random, non-trivial values everywhere (LayerNorm too)
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.add_(1.0)
    model.eval()
    width = max(len(r[0]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for i, (toks, tt, mm) in enumerate(rows):
        ids[i, :len(toks)] = torch.tensor(toks)
        types[i, :len(tt)] = torch.tensor(tt)
        mask[i, :len(mm)] = torch.tensor(mm)
    L = c["num_hidden_layers"]
    ones_h = [torch.ones(c["num_attention_heads"]) for _ in range(L)]
    ones_m = [torch.tensor(1.0) for _ in range(L)]
    hg = [torch.tensor(g, dtype=torch.float32) for g in head_gates]
    mg = [torch.tensor(g, dtype=torch.float32) for g in mlp_gates]
    for dtype in ["F32", "F16", "BF16"]:
        if dtype != "F32":  # round the weights as the checkpoint stores them
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.half().float() if dtype == "F16" else p.to(torch.bfloat16).float())
        d = os.path.join(out, name if dtype == "F32" else f"{name}_{dtype.lower()}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=1)
        write_safetensors(os.path.join(d, "model.safetensors"), model.named_hf(prefix), dtype)
        with open(os.path.join(d, "data.jsonl"), "w") as f:
            for i in range(len(rows)):
                label = 0.5 * i if c["num_labels"] == 1 else i % c["num_labels"]
                f.write(json.dumps({"input_ids": ids[i].tolist(), "token_type_ids": types[i].tolist(),
                                    "attention_mask": mask[i].tolist(), "label": label}) + "\n")
        with torch.no_grad():
            plain = model(ids, types, mask, ones_h, ones_m)
            gated = model(ids, types, mask, hg, mg)
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump({"logits": plain.tolist(), "gated_logits": gated.tolist(),
                       "head_gates": head_gates, "mlp_gates": mlp_gates}, f)


def config(layers, hidden, heads, ffn, vocab, labels, max_pos=24):
    return {"architectures": ["BertForSequenceClassification"], "model_type": "bert",
            "hidden_size": hidden, "num_attention_heads": heads, "num_hidden_layers": layers,
            "intermediate_size": ffn, "vocab_size": vocab, "max_position_embeddings": max_pos,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "num_labels": labels,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


def main():
    out = sys.argv[1]
    g = torch.Generator().manual_seed(0)

    def row(n, pad_to, vocab, pair_at=None, holes=()):
        toks = [1] + torch.randint(2, vocab, (n - 1,), generator=g).tolist()
        tt = [0 if pair_at is None or i < pair_at else 1 for i in range(n)]
        mask = [0 if i in holes else 1 for i in range(n)]
        return (toks + [0] * (pad_to - n), tt + [0] * (pad_to - n), mask + [0] * (pad_to - n))

    # Odd sizes: hidden 72, 3 heads, 1 layer, 3 labels; a length-1 batch element and a row
    # that is all padding except [CLS].
    rows = [row(9, 9, 60, 5), row(1, 9, 60), row(4, 9, 60), row(7, 9, 60, 3)]
    make_case(out, "odd", config(1, 72, 3, 100, 60, 3), rows, "bert.", [[1.0, 0.0, 0.5]], [0.0], 1)
    # A single sequence of length 1 (no padding at all).
    make_case(out, "single", config(1, 72, 3, 100, 60, 3), [row(1, 1, 60)], "bert.", [[0.0, 1.0, 1.0]], [1.0], 2)
    # Two layers, 4 heads, regression, BertModel names (no "bert." prefix); a layer loses every head.
    # The last row's attention_mask has holes (0 inside the sequence, not only trailing padding).
    rows = [row(12, 12, 80, 6), row(3, 12, 80), row(1, 12, 80), row(10, 12, 80, 2), row(11, 12, 80, 5, (2, 6, 7))]
    make_case(out, "regression", config(2, 32, 4, 48, 80, 1), rows, "", [[0, 0, 0, 0], [1, 0, 1, 1]], [1.0, 0.0], 3)
    # Three layers, mixed gates with the MLPs of two layers off.
    rows = [row(16, 16, 100, 8), row(5, 16, 100), row(11, 16, 100, 4), row(2, 16, 100), row(16, 16, 100)]
    make_case(out, "deep", config(3, 48, 6, 64, 100, 2), rows, "bert.",
              [[1, 0, 1, 0, 1, 1], [0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]], [0.0, 1.0, 0.0], 4)


if __name__ == "__main__":
    main()
