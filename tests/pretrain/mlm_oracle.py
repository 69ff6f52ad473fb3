"""PyTorch autograd oracle for the MLM head and MLM pre-training step (float64).

Reads a JSON written by test_mlm / test_pretrain and writes the loss and the gradients.
  mode "head":  tensors hold hidden [T, H], bert.embeddings.word_embeddings.weight and the
                cls.predictions.* head; the loss is BertForMaskedLM's head on hidden[positions]
                (dense, erf GELU, LayerNorm, decoder tied to the word embeddings, + bias),
                mean cross-entropy against labels.
  mode "model": tensors hold a BertForMaskedLM (bert.* encoder, no pooler, cls.predictions.*);
                sequences (ids, types) are run one by one (no padding), their outputs
                concatenated in order (the packed rows), then the head as above. No dropout.
Written back: {"loss": L, "grads": {name: flat list}} for every tensor (and "hidden" in head mode).
usage: mlm_oracle.py IN.json OUT.json
"""
import json
import math
import sys

import torch

torch.set_default_dtype(torch.float64)


def main():
    spec = json.load(open(sys.argv[1]))
    eps = spec["layer_norm_eps"]
    t = {k: torch.tensor(v["data"]).reshape(v["shape"]).requires_grad_(True) for k, v in spec["tensors"].items()}

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), t[name + ".weight"], t[name + ".bias"], eps)

    def lin(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    if spec["mode"] == "head":
        hidden = t["hidden"]
    else:
        cfg = spec["config"]
        L, nh = cfg["num_hidden_layers"], cfg["num_attention_heads"]
        d = cfg["hidden_size"] // nh
        outs = []
        for seq in spec["sequences"]:
            ids = torch.tensor(seq["ids"])
            types = torch.tensor(seq["types"])
            T = ids.shape[0]
            x = t["bert.embeddings.word_embeddings.weight"][ids] + \
                t["bert.embeddings.position_embeddings.weight"][torch.arange(T)] + \
                t["bert.embeddings.token_type_embeddings.weight"][types]
            x = ln(x, "bert.embeddings.LayerNorm")
            for l in range(L):
                p = f"bert.encoder.layer.{l}."
                q, k, v = (lin(x, p + "attention.self." + n).view(T, nh, d).transpose(0, 1)
                           for n in ("query", "key", "value"))
                probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
                ctx = (probs @ v).transpose(0, 1).reshape(T, nh * d)
                a = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
                m = lin(torch.nn.functional.gelu(lin(a, p + "intermediate.dense")), p + "output.dense")
                x = ln(m + a, p + "output.LayerNorm")
            outs.append(x)
        hidden = torch.cat(outs, 0)
    pos = torch.tensor(spec["positions"])
    labels = torch.tensor(spec["labels"])
    h = torch.nn.functional.gelu(lin(hidden[pos], "cls.predictions.transform.dense"))
    h = ln(h, "cls.predictions.transform.LayerNorm")
    logits = h @ t["bert.embeddings.word_embeddings.weight"].T + t["cls.predictions.bias"]
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    out = {"loss": loss.item(),
           "grads": {k: (v.grad.reshape(-1).tolist() if v.grad is not None else [0.0] * v.numel())
                     for k, v in t.items()}}
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
