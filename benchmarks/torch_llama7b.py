#!/usr/bin/python3
"""benchmarks/torch_llama7b.py: the PyTorch side of benchmarks/llama7b.sh.

One pruning task on a Hugging Face Llama directory (benchmarks/make_llama.py writes one), done
as a Python pruner does it: the whole model loaded into memory as bf16 tensors (what
`from_pretrained(torch_dtype=torch.bfloat16)` holds; the safetensors shards are read here
directly, the `safetensors` and `transformers` packages are not needed), pruned, and saved
(--save DIR: the same shards, as `save_pretrained` would write them). Tasks, all at 50%:

  global_magnitude  torch.nn.utils.prune.global_unstructured(L1Unstructured) over every
                    q/k/v/o/gate/up/down weight, then prune.remove (the scores and masks of all
                    matrices are concatenated into vectors, as that function does)
  magnitude         torch.nn.utils.prune.l1_unstructured on each of those matrices, then remove
  wanda             the reference Wanda code's protocol (locuslab/wanda, prune_wanda): inputs of
                    layer 0 captured for the calibration rows, then layer by layer: the inputs'
                    squared column norms of every linear collected by running the layer on each
                    row, |W| * sqrt(norms) sorted per output row (stable), the smallest half
                    zeroed, the layer re-run on its pruned weights to give the next layer's
                    inputs; the layer computed in float32 (the model stays bf16)
  nm24              2:4 magnitude, the reference Wanda code's prune_magnitude loop (per group of
                    4 input columns the 2 smallest |w| zeroed)

Prints one JSON line: task, status (ok / out_of_memory), seconds (load + prune + save; until
the failure when not ok), load_seconds, prune_seconds, save_seconds, process_seconds (from the
start of main, after the imports: also the sparsity check and --compare-with), peak_rss_mib
(getrusage ru_maxrss), sparsity (of the pruned matrices, when ok), error (when not ok); with
--compare-with DIR also zeros_differ and compared. The process's address space is capped
(--max-gib, RLIMIT_AS) so an allocation the machine cannot hold fails inside torch
(RuntimeError / MemoryError, reported as out_of_memory) instead of waking the kernel's OOM killer.

Usage: /usr/bin/python3 benchmarks/torch_llama7b.py --model DIR --task wanda [--calib F] [--save OUT]
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import torch

PRUNED = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
TASKS = ("global_magnitude", "magnitude", "wanda", "nm24")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Hugging Face Llama directory (sharded safetensors)")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--calib", help="JSON Lines {\"input_ids\": [...]} (wanda; default MODEL/calib.jsonl)")
    p.add_argument("--save", help="write the pruned model's shards and index here")
    p.add_argument("--compare-with", metavar="DIR",
                   help="report how many pruned matrices' zeros differ from DIR's (a small model: DIR is loaded whole)")
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--max-gib", type=float, default=20.0,
                   help="address-space cap (RLIMIT_AS) in GiB; 0: none. Default 20")
    return p.parse_args(argv)


# ---- safetensors, read and written directly ----------------------------------------------

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def read_header(f):
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def read_into(f, t):
    """Fill tensor t from the file, looping over short reads."""
    view = memoryview(t.view(torch.uint8).numpy().reshape(-1))
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise EOFError(f"{f.name}: truncated")
        done += got


def shard_files(model):
    index = os.path.join(model, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return sorted(set(weight_map.values()))
    return ["model.safetensors"]


def load_model(model):
    """{name: tensor} in memory, in the checkpoint's dtypes; and the shard layout {file: [names]}."""
    tensors, layout = {}, {}
    for shard in shard_files(model):
        with open(os.path.join(model, shard), "rb") as f:
            header, base = read_header(f)
            order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
            layout[shard] = order
            for name in order:
                info = header[name]
                t = torch.empty(info["shape"], dtype=DTYPES[info["dtype"]])
                f.seek(base + info["data_offsets"][0])
                read_into(f, t)
                tensors[name] = t
    return tensors, layout


def save_model(tensors, layout, model, out):
    """The same shards and index as the input, each written to a temporary and renamed."""
    os.makedirs(out, exist_ok=True)
    names = {v: k for k, v in DTYPES.items()}
    for shard, order in layout.items():
        header, offset = {}, 0
        for name in order:
            t = tensors[name]
            size = t.numel() * t.element_size()
            header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                            "data_offsets": [offset, offset + size]}
            offset += size
        header["__metadata__"] = {"format": "pt"}
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        tmp = os.path.join(out, shard + ".tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            for name in order:
                f.write(memoryview(tensors[name].contiguous().view(torch.uint8).numpy().reshape(-1)))
        os.replace(tmp, os.path.join(out, shard))
    for extra in ("config.json", "model.safetensors.index.json"):
        src = os.path.join(model, extra)
        if os.path.exists(src):
            with open(src, "rb") as a, open(os.path.join(out, extra), "wb") as b:
                b.write(a.read())


def pruned_names(tensors):
    return [n for n in tensors
            if n.startswith("model.layers.") and any(n.endswith(p + ".weight") for p in PRUNED)]


# ---- (a), (b): torch.nn.utils.prune ------------------------------------------------------

def as_linears(tensors, names):
    """nn.Linear modules whose weights are the loaded tensors (no copy)."""
    mods = []
    for n in names:
        out_f, in_f = tensors[n].shape
        m = torch.nn.Linear(in_f, out_f, bias=False, device="meta")
        m.weight = torch.nn.Parameter(tensors[n], requires_grad=False)
        mods.append(m)
    return mods


def prune_global_magnitude(tensors, amount):
    import torch.nn.utils.prune as P
    names = pruned_names(tensors)
    mods = as_linears(tensors, names)
    P.global_unstructured([(m, "weight") for m in mods], pruning_method=P.L1Unstructured, amount=amount)
    for n, m in zip(names, mods):
        P.remove(m, "weight")
        tensors[n] = m.weight.data


def prune_magnitude(tensors, amount):
    import torch.nn.utils.prune as P
    names = pruned_names(tensors)
    for n, m in zip(names, as_linears(tensors, names)):
        P.l1_unstructured(m, "weight", amount=amount)
        P.remove(m, "weight")
        tensors[n] = m.weight.data


# ---- (d): 2:4 magnitude, the reference Wanda code's loop ---------------------------------

def nm_mask(metric, n, m):
    """True where zeroed: the n smallest of every m consecutive entries of each row."""
    mask = torch.zeros_like(metric, dtype=torch.bool)
    for ii in range(0, metric.shape[1], m):
        tmp = metric[:, ii:ii + m].float()
        mask.scatter_(1, ii + torch.topk(tmp, n, dim=1, largest=False)[1], True)
    return mask


def prune_nm24(tensors, _amount):
    for n in pruned_names(tensors):
        w = tensors[n]
        w[nm_mask(w.abs(), 2, 4)] = 0


# ---- (c): Wanda, layer by layer ----------------------------------------------------------

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(seq, head_dim, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def layer_forward(x, w, cfg, observe):
    """One Hugging Face LlamaDecoderLayer on x [1, seq, hidden] (float32), weights w by short
    name; observe(short name, input) is called with the input of every linear (the hooks)."""
    eps, heads, kv = cfg["rms_norm_eps"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    seq, hidden = x.shape[1], x.shape[2]
    hd = hidden // heads
    h = rms_norm(x, w["input_layernorm"], eps)
    for p in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
        observe(p, h)
    q = (h @ w["self_attn.q_proj"].T).view(1, seq, heads, hd).transpose(1, 2)
    k = (h @ w["self_attn.k_proj"].T).view(1, seq, kv, hd).transpose(1, 2)
    v = (h @ w["self_attn.v_proj"].T).view(1, seq, kv, hd).transpose(1, 2)
    cos, sin = rope(seq, hd, cfg.get("rope_theta", 10000.0))
    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    k, v = k.repeat_interleave(heads // kv, dim=1), v.repeat_interleave(heads // kv, dim=1)
    scores = q @ k.transpose(2, 3) / math.sqrt(hd)
    scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
    a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(1, seq, hidden)
    observe("self_attn.o_proj", a)
    x = x + a @ w["self_attn.o_proj"].T
    h = rms_norm(x, w["post_attention_layernorm"], eps)
    observe("mlp.gate_proj", h)
    observe("mlp.up_proj", h)
    g = torch.nn.functional.silu(h @ w["mlp.gate_proj"].T) * (h @ w["mlp.up_proj"].T)
    observe("mlp.down_proj", g)
    return x + g @ w["mlp.down_proj"].T


class ScalerRow:
    """WrappedGPT.add_batch of the reference: running mean of squared column norms."""

    def __init__(self):
        self.rows, self.nsamples = None, 0

    def add(self, inp):
        inp = inp.reshape(-1, inp.shape[-1]).t().float()
        if self.rows is None:
            self.rows = torch.zeros(inp.shape[0])
        self.rows *= self.nsamples / (self.nsamples + 1)
        self.nsamples += 1
        self.rows += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples


def read_calib(path):
    with open(path) as f:
        return [torch.tensor(json.loads(line)["input_ids"], dtype=torch.long) for line in f if line.strip()]


def prune_wanda(tensors, amount, cfg, calib):
    rows = read_calib(calib)
    embed = tensors["model.embed_tokens.weight"]
    inps = [embed[ids].float().unsqueeze(0) for ids in rows]
    for layer in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{layer}."
        short = [n[len(pre):-len(".weight")] for n in tensors if n.startswith(pre)]
        w = {s: tensors[pre + s + ".weight"].float() for s in short}
        scalers = {p: ScalerRow() for p in PRUNED}
        for x in inps:
            layer_forward(x, w, cfg, lambda p, h: scalers[p].add(h))
        for p in PRUNED:
            metric = w[p].abs() * torch.sqrt(scalers[p].rows.reshape(1, -1))
            idx = torch.sort(metric, dim=-1, stable=True)[1][:, :int(metric.shape[1] * amount)]
            mask = torch.zeros_like(metric, dtype=torch.bool).scatter_(1, idx, True)
            w[p][mask] = 0
            tensors[pre + p + ".weight"][mask] = 0
            del metric, idx, mask
        inps = [layer_forward(x, w, cfg, lambda p, h: None) for x in inps]
        del w
        print(f"torch_llama7b: wanda layer {layer} done", file=sys.stderr, flush=True)


# ---- driver ------------------------------------------------------------------------------

def is_oom(e):
    text = str(e).lower()
    return isinstance(e, MemoryError) or "can't allocate memory" in text or "not enough memory" in text \
        or "out of memory" in text or "cannot allocate memory" in text


def sparsity(tensors):
    zeros = total = 0
    for n in pruned_names(tensors):
        zeros += int((tensors[n] == 0).sum())
        total += tensors[n].numel()
    return zeros / total


def compare_zeros(tensors, other_dir):
    """(weights whose zero / non-zero status differs from other_dir's, weights compared)."""
    other, _ = load_model(other_dir)
    differ = total = 0
    for n in pruned_names(tensors):
        differ += int(((tensors[n] == 0) != (other[n] == 0)).sum())
        total += tensors[n].numel()
    return differ, total


def run(a, report):
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    t0 = time.monotonic()
    tensors, layout = load_model(a.model)
    report["load_seconds"] = round(time.monotonic() - t0, 2)
    t1 = time.monotonic()
    with torch.no_grad():
        if a.task == "wanda":
            prune_wanda(tensors, a.sparsity, cfg, a.calib or os.path.join(a.model, "calib.jsonl"))
        else:
            {"global_magnitude": prune_global_magnitude, "magnitude": prune_magnitude,
             "nm24": prune_nm24}[a.task](tensors, a.sparsity)
    report["prune_seconds"] = round(time.monotonic() - t1, 2)
    if a.save:
        t2 = time.monotonic()
        save_model(tensors, layout, a.model, a.save)
        report["save_seconds"] = round(time.monotonic() - t2, 2)
    report["seconds"] = round(time.monotonic() - t0, 2)
    report["sparsity"] = round(sparsity(tensors), 6)
    if a.compare_with:
        report["zeros_differ"], report["compared"] = compare_zeros(tensors, a.compare_with)


def main(argv):
    a = parse_args(argv)
    if a.max_gib > 0:
        cap = int(a.max_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    torch.set_num_threads(a.threads)
    report = {"task": a.task, "status": "ok", "threads": a.threads, "max_gib": a.max_gib}
    start = time.monotonic()
    try:
        run(a, report)
    except (MemoryError, RuntimeError) as e:
        if not is_oom(e):
            raise
        report["status"] = "out_of_memory"
        report["error"] = str(e).splitlines()[0][:300]
    report.setdefault("seconds", round(time.monotonic() - start, 2))
    report["process_seconds"] = round(time.monotonic() - start, 2)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
