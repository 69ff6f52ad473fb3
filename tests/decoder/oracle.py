#!/usr/bin/env python3
"""PyTorch oracle for prune's decoders (include/prune/models/decoder, llama, gpt2).

Usage: oracle.py OUT_DIR

An independent implementation of Hugging Face's LlamaForCausalLM and GPT2LMHeadModel math
(written here from modeling_llama.py / modeling_gpt2.py's definitions: RMSNorm, rotate_half
RoPE with HF's float32 frequencies and the linear / llama3 scalings, GQA by repeat_interleave,
SwiGLU; GPT-2's Conv1D [in, out] weights, learned positions, gelu_new), run one sequence at a
time in float64 from the weights as stored (after F16 / BF16 rounding). For each case it writes
OUT_DIR/<case>/{config.json, model.safetensors or shards + model.safetensors.index.json,
case.json}; case.json holds the token sequences, the gates (query-head, KV-group, MLP) and the
expected logits (packed rows) and per-sequence summed NLL of positions 1..n-1; grads.json the
autograd gradients of the batch loss (mean NLL over every predicted token) with respect to every
stored tensor and gate, each sequence's own gate gradients, and Michel importance (see gradients()).
The safetensors files are written by hand (8-byte header length, JSON, raw bytes).
"""
import importlib.util
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def _bert_oracle():
    """tests/bert/oracle.py, for its hand-written safetensors writer."""
    spec = importlib.util.spec_from_file_location(
        "bert_oracle", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bert", "oracle.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_safetensors = _bert_oracle().write_safetensors


def stored(t, dtype):
    """The value prune reads back: the tensor rounded to the file's dtype, as float64."""
    if dtype == "F16":
        return t.float().half().double()
    if dtype == "BF16":
        return t.float().to(torch.bfloat16).double()
    return t.float().double()


def write_model(d, tensors, dtype, shards):
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors, dtype)
        return
    names = list(tensors)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        write_safetensors(os.path.join(d, fname), {n: tensors[n] for n in part}, dtype)
        for n in part:
            weight_map[n] = fname
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


# ---- Llama -------------------------------------------------------------------------------

def llama_inv_freq(c):
    d = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    base = c.get("rope_theta", 10000.0)
    # HF: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), float32
    inv = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    inv = inv.float()
    rs = c.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        factor = rs["factor"]
        if kind == "linear":
            inv = inv / factor
        elif kind == "llama3":  # HF's _compute_llama3_parameters
            low, high = rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wavelen, high_wavelen = old / low, old / high
            wavelen = 2 * math.pi / inv
            llama = torch.where(wavelen > low_wavelen, inv / factor, inv)
            smooth = (old / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * llama / factor + smooth * llama
            medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
            inv = torch.where(medium, smoothed, llama)
    return inv.float()


def as_tensor(x):
    """A gate row as a tensor (an autograd leaf's row stays one)."""
    return x if torch.is_tensor(x) else torch.tensor(x)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def llama_tensors(c, seed):
    g = torch.Generator().manual_seed(seed)
    H, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    Hq, Hkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    d = c.get("head_dim") or H // Hq
    Fi = c["intermediate_size"]
    ab, mb = c.get("attention_bias", False), c.get("mlp_bias", False)

    def r(*shape, s=0.2):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * s

    t = {"model.embed_tokens.weight": r(V, H, s=1.0)}
    for l in range(L):
        p = "model.layers.%d." % l
        t[p + "input_layernorm.weight"] = 1 + r(H)
        t[p + "self_attn.q_proj.weight"] = r(Hq * d, H)
        t[p + "self_attn.k_proj.weight"] = r(Hkv * d, H)
        t[p + "self_attn.v_proj.weight"] = r(Hkv * d, H)
        t[p + "self_attn.o_proj.weight"] = r(H, Hq * d)
        if ab:
            t[p + "self_attn.q_proj.bias"] = r(Hq * d)
            t[p + "self_attn.k_proj.bias"] = r(Hkv * d)
            t[p + "self_attn.v_proj.bias"] = r(Hkv * d)
            t[p + "self_attn.o_proj.bias"] = r(H)
        t[p + "post_attention_layernorm.weight"] = 1 + r(H)
        t[p + "mlp.gate_proj.weight"] = r(Fi, H)
        t[p + "mlp.up_proj.weight"] = r(Fi, H)
        t[p + "mlp.down_proj.weight"] = r(H, Fi)
        if mb:
            t[p + "mlp.gate_proj.bias"] = r(Fi)
            t[p + "mlp.up_proj.bias"] = r(Fi)
            t[p + "mlp.down_proj.bias"] = r(H)
    t["model.norm.weight"] = 1 + r(H)
    if not c.get("tie_word_embeddings", False):
        t["lm_head.weight"] = r(V, H)
    return t


def llama_forward(c, P, ids, gates, hidden=None):
    """Logits [n, vocab]; with a list `hidden`, appends the residual stream entering each layer and
    the one leaving the last (before the final norm): L + 1 tensors [n, hidden]."""
    H, L = c["hidden_size"], c["num_hidden_layers"]
    Hq, Hkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    d = c.get("head_dim") or H // Hq
    eps = c.get("rms_norm_eps", 1e-6)
    group = Hq // Hkv
    n = len(ids)
    inv = llama_inv_freq(c)
    freqs = torch.outer(torch.arange(n, dtype=torch.int64).float(), inv)  # float32, as HF
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().double(), emb.sin().double()
    b = lambda name: P.get(name, 0.0)
    h = P["model.embed_tokens.weight"][torch.tensor(ids)]
    mask = torch.full((n, n), float("-inf")).triu(1)
    for l in range(L):
        p = "model.layers.%d." % l
        if hidden is not None:
            hidden.append(h)
        x = rms(h, P[p + "input_layernorm.weight"], eps)
        q = (x @ P[p + "self_attn.q_proj.weight"].T + b(p + "self_attn.q_proj.bias")).view(n, Hq, d).transpose(0, 1)
        k = (x @ P[p + "self_attn.k_proj.weight"].T + b(p + "self_attn.k_proj.bias")).view(n, Hkv, d).transpose(0, 1)
        v = (x @ P[p + "self_attn.v_proj.weight"].T + b(p + "self_attn.v_proj.bias")).view(n, Hkv, d).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(group, dim=0)
        v = v.repeat_interleave(group, dim=0)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
        ctx = probs @ v
        gate = as_tensor(gates["heads"][l]) * as_tensor(gates["kv_groups"][l]).repeat_interleave(group)
        ctx = (ctx * gate[:, None, None]).transpose(0, 1).reshape(n, Hq * d)
        h = h + ctx @ P[p + "self_attn.o_proj.weight"].T + b(p + "self_attn.o_proj.bias")
        x = rms(h, P[p + "post_attention_layernorm.weight"], eps)
        gp = x @ P[p + "mlp.gate_proj.weight"].T + b(p + "mlp.gate_proj.bias")
        up = x @ P[p + "mlp.up_proj.weight"].T + b(p + "mlp.up_proj.bias")
        m = (F.silu(gp) * up) @ P[p + "mlp.down_proj.weight"].T + b(p + "mlp.down_proj.bias")
        h = h + gates["mlps"][l] * m
    if hidden is not None:
        hidden.append(h)
    x = rms(h, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if c.get("tie_word_embeddings", False) else P["lm_head.weight"]
    return x @ head.T


# ---- GPT-2 -------------------------------------------------------------------------------

def gpt2_tensors(c, seed, prefix, lm_head):
    g = torch.Generator().manual_seed(seed)
    H, L, V, Pn = c["n_embd"], c["n_layer"], c["vocab_size"], c["n_positions"]
    Fi = c.get("n_inner") or 4 * H

    def r(*shape, s=0.2):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * s

    t = {prefix + "wte.weight": r(V, H, s=1.0), prefix + "wpe.weight": r(Pn, H, s=0.5)}
    for l in range(L):
        p = prefix + "h.%d." % l
        t[p + "ln_1.weight"] = 1 + r(H)
        t[p + "ln_1.bias"] = r(H)
        t[p + "attn.c_attn.weight"] = r(H, 3 * H)
        t[p + "attn.c_attn.bias"] = r(3 * H)
        t[p + "attn.c_proj.weight"] = r(H, H)
        t[p + "attn.c_proj.bias"] = r(H)
        t[p + "ln_2.weight"] = 1 + r(H)
        t[p + "ln_2.bias"] = r(H)
        t[p + "mlp.c_fc.weight"] = r(H, Fi)
        t[p + "mlp.c_fc.bias"] = r(Fi)
        t[p + "mlp.c_proj.weight"] = r(Fi, H)
        t[p + "mlp.c_proj.bias"] = r(H)
    t[prefix + "ln_f.weight"] = 1 + r(H)
    t[prefix + "ln_f.bias"] = r(H)
    if lm_head:  # GPT2LMHeadModel's tied copy, as some checkpoints carry it
        t["lm_head.weight"] = t[prefix + "wte.weight"].clone()
    return t


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_forward(c, P, ids, gates, prefix, hidden=None):
    """Logits [n, vocab]; `hidden` as llama_forward's."""
    H, L, Hq = c["n_embd"], c["n_layer"], c["n_head"]
    d = H // Hq
    eps = c.get("layer_norm_epsilon", 1e-5)
    n = len(ids)
    ln = lambda x, name: F.layer_norm(x, (H,), P[name + ".weight"], P[name + ".bias"], eps)
    h = P[prefix + "wte.weight"][torch.tensor(ids)] + P[prefix + "wpe.weight"][:n]
    mask = torch.full((n, n), float("-inf")).triu(1)
    for l in range(L):
        p = prefix + "h.%d." % l
        if hidden is not None:
            hidden.append(h)
        x = ln(h, p + "ln_1")
        qkv = x @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]  # Conv1D: x W + b, W [in, out]
        q, k, v = (t.view(n, Hq, d).transpose(0, 1) for t in qkv.split(H, dim=-1))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
        gate = as_tensor(gates["heads"][l]) * as_tensor(gates["kv_groups"][l])
        ctx = ((probs @ v) * gate[:, None, None]).transpose(0, 1).reshape(n, H)
        h = h + ctx @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        x = ln(h, p + "ln_2")
        m = gelu_new(x @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"]) @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
        h = h + gates["mlps"][l] * m
    if hidden is not None:
        hidden.append(h)
    x = ln(h, prefix + "ln_f")
    return x @ P[prefix + "wte.weight"].T


# ---- Cases -------------------------------------------------------------------------------

def make_gates(g, L, Hq, Hkv, kind):
    if kind == "ones":
        return {"heads": [[1.0] * Hq for _ in range(L)], "kv_groups": [[1.0] * Hkv for _ in range(L)], "mlps": [1.0] * L}
    heads = [[round(float(torch.rand(1, generator=g)), 3) for _ in range(Hq)] for _ in range(L)]
    kv = [[round(0.5 + 0.5 * float(torch.rand(1, generator=g)), 3) for _ in range(Hkv)] for _ in range(L)]
    mlps = [round(float(torch.rand(1, generator=g)), 3) for _ in range(L)]
    heads[0][1] = 0.0  # a head gated off
    kv[-1][0] = 0.0    # a whole K/V group gated off
    mlps[-1] = 0.0     # an MLP gated off
    return {"heads": heads, "kv_groups": kv, "mlps": mlps}


def make_case(out, name, config, arch, dtype, shards, lengths, gate_kind, seed, prefix="transformer.", lm_head=False):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    if arch == "llama":
        tensors = llama_tensors(config, seed)
        L, Hq = config["num_hidden_layers"], config["num_attention_heads"]
        Hkv, V = config.get("num_key_value_heads", Hq), config["vocab_size"]
    else:
        tensors = gpt2_tensors(config, seed, prefix, lm_head)
        L, Hq, V = config["n_layer"], config["n_head"], config["vocab_size"]
        Hkv = Hq
    write_model(d, tensors, dtype, shards)
    P = {k: stored(v, dtype) for k, v in tensors.items()}
    g = torch.Generator().manual_seed(seed + 1)
    gates = make_gates(g, L, Hq, Hkv, gate_kind)
    seqs = [[int(x) for x in torch.randint(0, V, (n,), generator=g)] for n in lengths]
    logits, nll = [], []
    for ids in seqs:
        z = llama_forward(config, P, ids, gates) if arch == "llama" else gpt2_forward(config, P, ids, gates, prefix)
        logits.extend(z.reshape(-1).tolist())
        if len(ids) > 1:
            nll.append(float(F.cross_entropy(z[:-1], torch.tensor(ids[1:]), reduction="sum")))
        else:
            nll.append(0.0)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump({"sequences": seqs, "gates": gates, "gated": gate_kind != "ones", "dtype": dtype,
                   "logits": logits, "nll": nll}, f)
    run = lambda params, ids, gate_leaves: (llama_forward(config, params, ids, gate_leaves) if arch == "llama"
                                           else gpt2_forward(config, params, ids, gate_leaves, prefix))
    with open(os.path.join(d, "grads.json"), "w") as f:
        json.dump(gradients(run, P, seqs, gates), f)


# ---- Gradients and importance (autograd in float64) ----------------------------------------

def nll_sum(z, ids):
    """Summed NLL of positions 1..n-1 (0, still in the graph, for a single token)."""
    if len(ids) < 2:
        return z.sum() * 0.0
    return F.cross_entropy(z[:-1], torch.tensor(ids[1:]), reduction="sum")


def gate_leaves(gates):
    return {k: torch.tensor(v, requires_grad=True) for k, v in gates.items()}


def gate_gradients(run, P, seqs, gates):
    """d(mean NLL over every predicted token of seqs)/d(gates) (zeros when nothing is predicted)."""
    g = gate_leaves(gates)
    predicted = sum(len(s) - 1 for s in seqs)
    if predicted == 0:
        return {k: torch.zeros_like(v).tolist() for k, v in g.items()}
    (sum(nll_sum(run(P, ids, g), ids) for ids in seqs) / predicted).backward()
    return {k: v.grad.tolist() for k, v in g.items()}


def michel(units, layer_norm=False, global_norm=False):
    """E over units of |gate gradient| (heads, kv_groups, mlps), optionally L2 per layer then min-max."""
    out = {}
    for k in ("heads", "kv_groups", "mlps"):
        m = torch.stack([torch.tensor(u[k]).abs() for u in units]).mean(0)
        if layer_norm and k != "mlps":
            m = m / (m.pow(2).sum(-1, keepdim=True).sqrt() + 1e-20)
        if global_norm:
            lo, hi = m.min(), m.max()
            m = (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)
        out[k] = m.tolist()
    return out


def gradients(run, P, seqs, gates):
    """Autograd truth for one case: the batch loss (mean NLL over every predicted token) and its
    gradients with respect to every stored tensor (file layout, flattened) and every gate; each
    sequence's own gate gradients (its mean NLL); Michel importance per example, per batch of 2
    (batch-mean loss) and per example with layer + global normalisation."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in P.items()}
    g = gate_leaves(gates)
    predicted = sum(len(s) - 1 for s in seqs)
    loss = sum(nll_sum(run(leaves, ids, g), ids) for ids in seqs) / predicted
    loss.backward()
    params = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).reshape(-1).tolist() for k, v in leaves.items()}
    per_sequence = [gate_gradients(run, P, [ids], gates) for ids in seqs]
    per_batch = [gate_gradients(run, P, seqs[i:i + 2], gates) for i in range(0, len(seqs), 2)]
    return {"loss": float(loss), "params": params, "gates": {k: v.grad.tolist() for k, v in g.items()},
            "per_sequence": per_sequence,
            "importance": {"per_example": michel(per_sequence), "per_batch_2": michel(per_batch),
                           "per_example_layer_global": michel(per_sequence, True, True)}}


def llama_config(**kw):
    c = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "num_attention_heads": 4,
         "num_hidden_layers": 2, "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 16,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False}
    c.update(kw)
    return c


def gpt2_config(**kw):
    c = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 24, "n_head": 3, "n_layer": 2,
         "n_positions": 12, "n_inner": None, "vocab_size": 40, "layer_norm_epsilon": 1e-5,
         "activation_function": "gelu_new"}
    c.update(kw)
    return c


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # GQA ratio 1 (multi-head), untied, F32, every row length from 1 to the maximum.
    make_case(out, "llama_mha", llama_config(num_key_value_heads=4), "llama", "F32", 1, [5, 1, 16, 9], "gates", 11)
    # GQA ratio 2, head_dim 12 != 32 / 4, tied lm_head, q/k/v/o and MLP biases, F16.
    make_case(out, "llama_gqa2_tied_bias_f16",
              llama_config(num_key_value_heads=2, head_dim=12, tie_word_embeddings=True, attention_bias=True,
                           mlp_bias=True), "llama", "F16", 1, [7, 16, 2], "gates", 12)
    # GQA ratio 4, head_dim 6, BF16 in 3 shards, large rope_theta with llama3 scaling.
    make_case(out, "llama_gqa4_bf16_shards",
              llama_config(num_attention_heads=8, num_key_value_heads=2, head_dim=6, num_hidden_layers=3,
                           rope_theta=500000.0,
                           rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8}),
              "llama", "BF16", 3, [16, 3, 1, 11], "gates", 13)
    # Linear rope scaling, no gates, single-token and full-length sequences.
    make_case(out, "llama_linear_rope",
              llama_config(num_key_value_heads=1, rope_scaling={"type": "linear", "factor": 2.0}), "llama", "F32", 1,
              [1, 16, 1], "ones", 14)
    # GPT-2 with the transformer. prefix, gates, F32; a tied lm_head.weight copy in the file.
    make_case(out, "gpt2_prefix", gpt2_config(), "gpt2", "F32", 1, [12, 1, 6], "gates", 15, "transformer.", True)
    # GPT-2 without the prefix (GPT2Model names), n_inner set, F16, 2 shards.
    make_case(out, "gpt2_noprefix_f16", gpt2_config(n_inner=40), "gpt2", "F16", 2, [4, 12], "ones", 16, "")


if __name__ == "__main__":
    main()
