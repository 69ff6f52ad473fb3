#!/usr/bin/env python3
"""PyTorch truth for causal-LM pre-training (include/prune/models/decoder/pretrain.hpp).

Usage: pretrain_oracle.py OUT_DIR

Writes OUT_DIR/{config.json, model.safetensors} (a tiny Llama with GQA: 4 query heads on 2
K/V heads, untied lm_head, F32) and OUT_DIR/steps.json: three batches of token windows, the
learning rate of each step (Hugging Face's get_linear_schedule_with_warmup lambda, warm-up 0
of 3 steps), and after each step the loss, the gradient norm before clipping and every tensor.

The training step is the Hugging Face recipe, in float64 with autograd: loss = mean NLL over
every predicted token of the batch (tests/decoder/oracle.py's llama_forward, an independent
implementation of LlamaForCausalLM); torch.nn.utils.clip_grad_norm_(max_norm 1);
torch.optim.AdamW driven as transformers.AdamW (as tests/train/oracle.py does: weight_decay 0
in torch with eps_t = eps / sqrt(1 - beta2^t), then p -= lr * wd * p for the decayed tensors),
weight decay 0.01 on every tensor except biases and norm scales.
"""
import importlib.util
import json
import math
import os
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

# eps 1e-6 (BERT's), not 1e-8: Adam's first step moves each weight by lr g / (|g| + eps / sqrt(1 - b2)),
# whose derivative in g is up to lr sqrt(1 - b2) / eps; at eps 1e-8 that amplifies float32's
# rounding of a near-zero gradient (~1e-8) into a 4e-4 weight difference (seen: a k_proj element).
LR, WD, EPS, B1, B2, MAX_NORM, STEPS = 1e-2, 0.01, 1e-6, 0.9, 0.999, 1.0, 3


def hf_linear_lambda(step, total, warmup):
    # transformers' get_linear_schedule_with_warmup lr_lambda
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def no_decay(name):
    return "bias" in name or "norm.weight" in name


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    config = oracle.llama_config(num_key_value_heads=2, max_position_embeddings=12)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    tensors = oracle.llama_tensors(config, 21)
    oracle.write_model(out, tensors, "F32", 1)
    names = list(tensors)
    params = {k: torch.nn.Parameter(v.double()) for k, v in tensors.items()}
    g = torch.Generator().manual_seed(22)
    V = config["vocab_size"]
    batches = [[[int(x) for x in torch.randint(0, V, (n,), generator=g)] for n in (12, 12, 7)] for _ in range(STEPS)]
    gates = oracle.make_gates(g, config["num_hidden_layers"], config["num_attention_heads"],
                              config["num_key_value_heads"], "ones")
    decayed = [params[n] for n in names if not no_decay(n)]
    kept = [params[n] for n in names if no_decay(n)]
    opt = torch.optim.AdamW([{"params": decayed}, {"params": kept}], lr=LR, betas=(B1, B2), eps=EPS, weight_decay=0.0)
    steps = []
    for t, batch in enumerate(batches, start=1):
        lr = LR * hf_linear_lambda(t - 1, STEPS, 0)
        opt.zero_grad()
        predicted = sum(len(s) - 1 for s in batch)
        loss = sum(oracle.nll_sum(oracle.llama_forward(config, params, ids, gates), ids) for ids in batch) / predicted
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM)
        for group in opt.param_groups:
            group["lr"] = lr
            group["eps"] = EPS / math.sqrt(1.0 - B2 ** t)
        opt.step()
        with torch.no_grad():
            for n in names:
                if not no_decay(n):
                    params[n].add_(params[n], alpha=-lr * WD)
        steps.append({"lr": lr, "loss": float(loss), "grad_norm": float(norm),
                      "params": {n: params[n].detach().reshape(-1).tolist() for n in names}})
    with open(os.path.join(out, "steps.json"), "w") as f:
        json.dump({"batches": batches, "lr": LR, "weight_decay": WD, "eps": EPS, "max_grad_norm": MAX_NORM,
                   "steps": steps}, f)


if __name__ == "__main__":
    main()
