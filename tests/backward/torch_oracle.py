"""PyTorch autograd oracle for the head / MLP gate gradients and Michel importance.

Reads a JSON written by test_importance_torch (config, tensors by Hugging Face name, a padded
batch, gates, batch size), builds BertForSequenceClassification by hand in float64 with the
head gate on the attention probabilities and the MLP gate on the feed-forward output, and
writes the gate gradients of the batch-mean loss, each example's own gate gradients, and the
per-example / per-batch importance (mean of |grad|) as JSON.
usage: torch_oracle.py IN.json OUT.json
"""
import json
import math
import sys

import torch

torch.set_default_dtype(torch.float64)


def main():
    spec = json.load(open(sys.argv[1]))
    cfg = spec["config"]
    t = {k: torch.tensor(v["data"]).reshape(v["shape"]) for k, v in spec["tensors"].items()}
    L, nh, eps = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    d = cfg["hidden_size"] // nh
    ids = torch.tensor(spec["input_ids"])
    types = torch.tensor(spec["token_type_ids"])
    amask = torch.tensor(spec["attention_mask"]).double()
    labels = spec["labels"]
    B, T = ids.shape
    gh = torch.tensor(spec["head_gates"], dtype=torch.float64, requires_grad=True)
    gm = torch.tensor(spec["mlp_gates"], dtype=torch.float64, requires_grad=True)

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), t[name + ".weight"], t[name + ".bias"], eps)

    def lin(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    def logits():
        x = t["bert.embeddings.word_embeddings.weight"][ids] + t["bert.embeddings.position_embeddings.weight"][
            torch.arange(T)][None] + t["bert.embeddings.token_type_embeddings.weight"][types]
        x = ln(x, "bert.embeddings.LayerNorm")
        ext = (1.0 - amask)[:, None, None, :] * -1e30
        for l in range(L):
            p = f"bert.encoder.layer.{l}."
            def split(y):
                return y.view(B, T, nh, d).transpose(1, 2)
            q, k, v = (split(lin(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + ext, dim=-1)
            probs = probs * gh[l][None, :, None, None]
            ctx = (probs @ v).transpose(1, 2).reshape(B, T, nh * d)
            a = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            m = lin(torch.nn.functional.gelu(lin(a, p + "intermediate.dense")), p + "output.dense")
            x = ln(gm[l] * m + a, p + "output.LayerNorm")
        pooled = torch.tanh(lin(x[:, 0], "bert.pooler.dense"))
        return lin(pooled, "classifier")

    def losses(z):
        if cfg["num_labels"] == 1:
            return (z[:, 0] - torch.tensor(labels)) ** 2
        return torch.nn.functional.cross_entropy(z, torch.tensor([int(y) for y in labels]), reduction="none")

    def grads(loss):
        g = torch.autograd.grad(loss, (gh, gm), retain_graph=True)
        return g[0].tolist(), g[1].tolist()

    z = logits()
    per = losses(z)
    out = {"loss": per.mean().item()}
    out["batch_heads"], out["batch_mlps"] = grads(per.mean())
    ex_h, ex_m = [], []
    for b in range(B):
        h, m = grads(per[b])
        ex_h.append(h)
        ex_m.append(m)
    out["example_heads"], out["example_mlps"] = ex_h, ex_m
    # importance: per example = mean |g_b|; per batch = mean over chunks of |grad of the chunk mean|
    out["importance_per_example_heads"] = (torch.tensor(ex_h).abs().mean(0)).tolist()
    out["importance_per_example_mlps"] = (torch.tensor(ex_m).abs().mean(0)).tolist()
    bs = spec["batch_size"]
    acc_h, acc_m, n = 0, 0, 0
    for s in range(0, B, bs):
        h, m = grads(per[s:s + bs].mean())
        acc_h = acc_h + torch.tensor(h).abs()
        acc_m = acc_m + torch.tensor(m).abs()
        n += 1
    out["importance_per_batch_heads"] = (acc_h / n).tolist()
    out["importance_per_batch_mlps"] = (acc_m / n).tolist()
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
