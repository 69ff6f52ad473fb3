#!/usr/bin/python3
"""Learnability check of WordNet-GLUE tasks with a tiny BERT trained from random init.

Reads the token ids prune-data wrote (`prune-data wordnet --out DIR --ids`:
DIR/<task>/{train,dev}.ids.jsonl and DIR/stats.json), fine-tunes a 2-layer, 128-wide
BERT built from torch building blocks (word + position + token-type embeddings,
LayerNorm, post-LN encoder layers with GELU, tanh pooler on [CLS], linear classifier)
for a fixed wall-clock budget per task, and prints each task's dev accuracy next to
its majority baseline. Usage:

    /usr/bin/python3 tools/prototype_tasks.py --data DIR [--tasks a b] [--seconds 75]
        [--epochs E] [--seed 0] [--threads 2] [--json OUT]

On a shared, loaded machine a wall-clock budget buys few steps; --seconds 0 --epochs E
fixes the amount of training instead (the report prints steps and seconds).

Needs Debian's python3-torch (only /usr/bin/python3 imports it).
"""
import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyBert(nn.Module):
    def __init__(self, vocab, classes, hidden=128, layers=2, heads=2, intermediate=512, max_len=64, dropout=0.1):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden, padding_idx=0)
        self.position = nn.Embedding(max_len, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(hidden, heads, intermediate, dropout, activation="gelu",
                                           batch_first=True, norm_first=False, layer_norm_eps=1e-12)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, classes)
        self.apply(self._init)

    @staticmethod
    def _init(m):  # BERT's initialisation: N(0, 0.02), zero biases
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids, types, mask):
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.drop(self.norm(self.word(ids) + self.position(positions) + self.token_type(types)))
        x = self.encoder(x, src_key_padding_mask=(mask == 0))
        return self.classifier(self.drop(torch.tanh(self.pooler(x[:, 0]))))


def load(path):
    rows = [json.loads(line) for line in open(path)]
    return rows


def batchify(rows, start, size):
    chunk = rows[start:start + size]
    n = max(len(r["input_ids"]) for r in chunk)
    ids = torch.zeros(len(chunk), n, dtype=torch.long)
    types = torch.zeros(len(chunk), n, dtype=torch.long)
    mask = torch.zeros(len(chunk), n, dtype=torch.long)
    for i, r in enumerate(chunk):
        k = len(r["input_ids"])
        ids[i, :k] = torch.tensor(r["input_ids"])
        types[i, :k] = torch.tensor(r.get("token_type_ids", [0] * k))
        mask[i, :k] = 1
    labels = torch.tensor([r["label"] for r in chunk], dtype=torch.long)
    return ids, types, mask, labels


def evaluate(model, rows, batch=256):
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            ids, types, mask, labels = batchify(rows, s, batch)
            correct += (model(ids, types, mask).argmax(-1) == labels).sum().item()
    model.train()
    return correct / len(rows)


def run_task(data, task, stats, args):
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train = load(os.path.join(data, task, "train.ids.jsonl"))
    dev = load(os.path.join(data, task, "dev.ids.jsonl"))
    vocab = sum(1 for _ in open(os.path.join(data, "vocab.txt")))
    classes = stats["tasks"][task]["num_labels"]
    model = TinyBert(vocab, classes)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train) / args.batch)
    start = time.time()
    step, epoch, curve = 0, 0, []
    def out_of_time():
        return (args.seconds > 0 and time.time() - start >= args.seconds) or (args.epochs > 0 and step >= args.epochs * steps_per_epoch)

    while not out_of_time():
        rng.shuffle(train)
        for s in range(0, len(train), args.batch):
            lr = args.lr * min(1.0, (step + 1) / args.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            ids, types, mask, labels = batchify(train, s, args.batch)
            loss = F.cross_entropy(model(ids, types, mask), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if out_of_time():
                break
        epoch += 1
        curve.append(round(evaluate(model, dev), 4))
    final = evaluate(model, dev)
    train_acc = evaluate(model, train[:2000])
    return {"task": task, "dev_accuracy": final, "dev_curve_per_epoch": curve, "train_accuracy_2k": train_acc,
            "majority_baseline": stats["tasks"][task]["majority_baseline"], "steps": step,
            "epochs": step / steps_per_epoch, "seconds": round(time.time() - start, 1),
            "train_rows": len(train), "dev_rows": len(dev)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--tasks", nargs="*")
    p.add_argument("--seconds", type=float, default=75, help="wall-clock budget per task (0 = none)")
    p.add_argument("--epochs", type=float, default=0, help="step budget in epochs (0 = none); the first budget reached stops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    stats = json.load(open(os.path.join(args.data, "stats.json")))
    tasks = args.tasks or list(stats["tasks"].keys())
    results = []
    for t in tasks:
        r = run_task(args.data, t, stats, args)
        results.append(r)
        print(f"{t:16s} dev {r['dev_accuracy']:.3f}  majority {r['majority_baseline']:.3f}  "
              f"(+{100 * (r['dev_accuracy'] - r['majority_baseline']):.1f} pts)  train {r['train_accuracy_2k']:.3f}  "
              f"{r['epochs']:.1f} epochs in {r['seconds']} s  curve {r['dev_curve_per_epoch']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
