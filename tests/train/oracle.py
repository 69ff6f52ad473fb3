#!/usr/bin/env python3
"""tests/train/oracle.py: PyTorch truth for prune/train/{adamw,lr_schedule}.hpp.

Usage: oracle.py IN.json OUT.json. IN has
  "schedules": [{"lr", "total", "warmup", "steps"}]           -> LambdaLR with HF's lambda
  "clips":     [{"max_norm", "gradients": [[...], ...]}]       -> torch.nn.utils.clip_grad_norm_
  "training":  [{"names", "values", "gradients" (per step, per tensor), "beta1", "beta2",
                 "eps", "weight_decay", "peak_lr", "total", "warmup", "max_norm"}]
Training runs the loop of a Hugging Face fine-tuning script in float32: clip_grad_norm_,
torch.optim.AdamW, the scheduler. transformers.AdamW (the form prune implements: eps added
before the bias correction, decoupled decay applied after the update) is not installed here;
it equals torch.optim.AdamW with weight_decay=0 and eps_t = eps / sqrt(1 - beta2^t), followed
by HF's p.add_(p, alpha=-lr * weight_decay) for the tensors outside HF's no_decay list.
"""
import json
import math
import sys

import torch


def hf_linear_lambda(num_warmup_steps, num_training_steps):
    # transformers/optimization.py, get_linear_schedule_with_warmup's lr_lambda (verbatim logic).
    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))
    return lr_lambda


def schedule(spec):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=spec["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_linear_lambda(spec["warmup"], spec["total"]))
    lrs = []
    for _ in range(spec["steps"]):
        lrs.append(sched.get_last_lr()[0])  # the lr this update uses
        opt.step()
        sched.step()
    return lrs


def clip(spec):
    params = [torch.nn.Parameter(torch.zeros(len(g))) for g in spec["gradients"]]
    for p, g in zip(params, spec["gradients"]):
        p.grad = torch.tensor(g, dtype=torch.float32)
    norm = torch.nn.utils.clip_grad_norm_(params, spec["max_norm"])
    return {"norm": float(norm), "gradients": [p.grad.tolist() for p in params]}


def no_decay(name):
    return any(nd in name for nd in ["bias", "LayerNorm.weight"])  # HF's run_glue list


def train(spec, hf_form):
    params = [torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for v in spec["values"]]
    b1, b2, eps, wd = spec["beta1"], spec["beta2"], spec["eps"], spec["weight_decay"]
    decayed = [p for name, p in zip(spec["names"], params) if not no_decay(name)]
    kept = [p for name, p in zip(spec["names"], params) if no_decay(name)]
    groups = [{"params": decayed, "weight_decay": 0.0 if hf_form else wd}, {"params": kept, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=spec["peak_lr"], betas=(b1, b2), eps=eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_linear_lambda(spec["warmup"], spec["total"]))
    after = []
    for t, grads in enumerate(spec["gradients"], start=1):
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        if spec["max_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, spec["max_norm"])
        lr = opt.param_groups[0]["lr"]
        if hf_form:
            for group in opt.param_groups:
                group["eps"] = eps / math.sqrt(1.0 - b2 ** t)
        opt.step()
        if hf_form and wd > 0:
            with torch.no_grad():
                for name, p in zip(spec["names"], params):
                    if not no_decay(name):
                        p.add_(p, alpha=-lr * wd)
        sched.step()
        after.append([p.detach().tolist() for p in params])
    return after


def main():
    spec = json.load(open(sys.argv[1]))
    out = {
        "schedules": [schedule(s) for s in spec.get("schedules", [])],
        "clips": [clip(s) for s in spec.get("clips", [])],
        "training": [{"hf": train(s, True), "torch": train(s, False)} for s in spec.get("training", [])],
    }
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
