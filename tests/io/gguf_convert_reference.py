#!/usr/bin/python3
"""The PyTorch side of prune's Hugging Face <-> GGUF conversion tests:
gguf_convert_reference.py write OUTDIR

Writes tiny Hugging Face checkpoints (OUTDIR/<model>/config.json + model.safetensors):
Llama in F32, F16 and BF16 (GQA: 4 query heads, 2 KV heads; q/k/v biases in the F32 one; a
rotary inv_freq buffer that conversion drops), a physically pruned Llama whose config lists
heads and FFN widths per layer, and GPT-2 with and without the "transformer." prefix (with
the attn.bias buffers that conversion drops). OUTDIR/expected.json holds, per model, the
GGUF tensors llama.cpp's convert_hf_to_gguf.py would produce, computed here independently
with torch: names, extents (ne, fastest first), ggml type, and the bytes (hex). The q/k
permutation is convert_hf_to_gguf.py's LlamaModel.permute (reshape to [heads, 2, d/2, ...],
swap axes 1 and 2); GPT-2's Conv1D weights are transposed; 1-d tensors, norms, biases and
position embeddings become F32.

It also checks what the permutation is for: attention scores with Hugging Face's rotary
embedding (rotate_half: pairs i, i + d/2) on the original q/k weights equal those with
ggml's normal rotary mode (pairs 2i, 2i+1) on the permuted weights; the largest difference
goes into expected.json ("rope_max_abs_diff")."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_reference as ref  # noqa: E402

GGML = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 30}


def permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute (n_head already the KV count for k)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hexbytes(t):
    t = t.contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes().hex() if t.numel() else ""


def per_layer(v, n):
    return v if isinstance(v, list) else [v] * n


def llama_model(dtype, heads, kv_heads, ffn, bias, seed):
    g = torch.Generator().manual_seed(seed)
    n_layer, hidden, vocab, head_dim = 2, 16, 32, 4
    hs, kvs, ffs = per_layer(heads, n_layer), per_layer(kv_heads, n_layer), per_layer(ffn, n_layer)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "intermediate_size": ffn, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
              "num_hidden_layers": n_layer, "max_position_embeddings": 64, "vocab_size": vocab,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "head_dim": head_dim, "hidden_act": "silu"}
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
    t = {"model.embed_tokens.weight": r(vocab, hidden), "model.norm.weight": r(hidden), "lm_head.weight": r(vocab, hidden)}
    for i in range(n_layer):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = r(hidden)
        t[p + "post_attention_layernorm.weight"] = r(hidden)
        t[p + "self_attn.q_proj.weight"] = r(hs[i] * head_dim, hidden)
        t[p + "self_attn.k_proj.weight"] = r(kvs[i] * head_dim, hidden)
        t[p + "self_attn.v_proj.weight"] = r(kvs[i] * head_dim, hidden)
        t[p + "self_attn.o_proj.weight"] = r(hidden, hs[i] * head_dim)
        if bias:
            t[p + "self_attn.q_proj.bias"] = r(hs[i] * head_dim)
            t[p + "self_attn.k_proj.bias"] = r(kvs[i] * head_dim)
            t[p + "self_attn.v_proj.bias"] = r(kvs[i] * head_dim)
        t[p + "mlp.gate_proj.weight"] = r(ffs[i], hidden)
        t[p + "mlp.up_proj.weight"] = r(ffs[i], hidden)
        t[p + "mlp.down_proj.weight"] = r(hidden, ffs[i])
    t["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.arange(head_dim // 2, dtype=torch.float32)
    return config, t


LLAMA_NAMES = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
               "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
               "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
               "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
               "self_attn.v_proj.bias": "attn_v.bias", "mlp.gate_proj.weight": "ffn_gate.weight",
               "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
GPT2_NAMES = {"ln_1.weight": "attn_norm.weight", "ln_1.bias": "attn_norm.bias", "ln_2.weight": "ffn_norm.weight",
              "ln_2.bias": "ffn_norm.bias", "attn.c_attn.weight": "attn_qkv.weight", "attn.c_attn.bias": "attn_qkv.bias",
              "attn.c_proj.weight": "attn_output.weight", "attn.c_proj.bias": "attn_output.bias",
              "mlp.c_fc.weight": "ffn_up.weight", "mlp.c_fc.bias": "ffn_up.bias",
              "mlp.c_proj.weight": "ffn_down.weight", "mlp.c_proj.bias": "ffn_down.bias"}


def to_gguf(name, t):
    """(GGUF name, tensor) the way convert_hf_to_gguf.py stores one F32/F16/BF16 tensor."""
    small = t.dim() <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") or name == "position_embd.weight"
    return name, (t.to(torch.float32) if small else t)


def expected_llama(config, tensors):
    n = config["num_hidden_layers"]
    hs, kvs = per_layer(config["num_attention_heads"], n), per_layer(config["num_key_value_heads"], n)
    out = []
    for name, t in tensors.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        if name.startswith("model.layers."):
            i, rest = name[len("model.layers."):].split(".", 1)
            i = int(i)
            if rest.startswith("self_attn.q_proj"):
                t = permute(t, hs[i])
            if rest.startswith("self_attn.k_proj"):
                t = permute(t, kvs[i])
            new = f"blk.{i}.{LLAMA_NAMES[rest]}"
        else:
            new = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                   "lm_head.weight": "output.weight"}[name]
        out.append(to_gguf(new, t))
    return out


def gpt2_model(prefix, seed):
    g = torch.Generator().manual_seed(seed)
    n_layer, n_embd, vocab, n_pos = 2, 8, 20, 16
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": n_embd, "n_head": 2,
              "n_layer": n_layer, "n_positions": n_pos, "n_ctx": n_pos, "n_inner": None, "vocab_size": vocab,
              "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    t = {prefix + "wte.weight": r(vocab, n_embd), prefix + "wpe.weight": r(n_pos, n_embd),
         prefix + "ln_f.weight": r(n_embd), prefix + "ln_f.bias": r(n_embd)}
    for i in range(n_layer):
        p = f"{prefix}h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[p + ln + ".weight"], t[p + ln + ".bias"] = r(n_embd), r(n_embd)
        t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"] = r(n_embd, 3 * n_embd), r(3 * n_embd)
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = r(n_embd, n_embd), r(n_embd)
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = r(n_embd, 4 * n_embd), r(4 * n_embd)
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = r(4 * n_embd, n_embd), r(n_embd)
        t[p + "attn.bias"] = torch.tril(torch.ones(n_pos, n_pos)).reshape(1, 1, n_pos, n_pos)
    return config, t


def expected_gpt2(prefix, tensors):
    out = []
    for name, t in tensors.items():
        short = name[len(prefix):]
        if short.endswith(".attn.bias"):
            continue
        if short.startswith("h."):
            i, rest = short[2:].split(".", 1)
            if rest in ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"):
                t = t.transpose(1, 0)
            new = f"blk.{i}.{GPT2_NAMES[rest]}"
        else:
            new = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
                   "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}[short]
        out.append(to_gguf(new, t))
        if new == "token_embd.weight":
            out.append(("output.weight", t))  # GPT-2's output is tied to wte: convert_hf_to_gguf.py writes a copy
    return out


def describe(pairs):
    return {name: {"ne": list(reversed(t.shape)), "type": GGML[t.dtype], "hex": hexbytes(t)} for name, t in pairs}


def rope_check():
    """Scores with HF rotary on original weights vs ggml's adjacent-pair rotary on permuted weights."""
    g = torch.Generator().manual_seed(5)
    n_head, d, hidden, n_tok = 3, 8, 12, 5
    wq, wk = torch.randn(n_head * d, hidden, generator=g, dtype=torch.float64), torch.randn(n_head * d, hidden, generator=g, dtype=torch.float64)
    x = torch.randn(n_tok, hidden, generator=g, dtype=torch.float64)
    pos = torch.arange(n_tok, dtype=torch.float64)
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # d/2 frequencies
    ang = pos[:, None] * theta[None, :]  # [n_tok, d/2]

    def hf_rope(v):  # v: [n_tok, heads, d]; rotate_half pairs (i, i + d/2)
        cos, sin = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :], torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
        rot = torch.cat([-v[..., d // 2:], v[..., : d // 2]], -1)
        return v * cos + rot * sin

    def ggml_rope(v):  # ggml's normal mode: pairs (2i, 2i + 1)
        a, b = v[..., 0::2], v[..., 1::2]
        c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
        out = torch.empty_like(v)
        out[..., 0::2], out[..., 1::2] = a * c - b * s, a * s + b * c
        return out

    def scores(q, k):
        return torch.einsum("thd,shd->hts", q, k)

    hf = scores(hf_rope((x @ wq.T).reshape(n_tok, n_head, d)), hf_rope((x @ wk.T).reshape(n_tok, n_head, d)))
    gg = scores(ggml_rope((x @ permute(wq, n_head).T).reshape(n_tok, n_head, d)),
                ggml_rope((x @ permute(wk, n_head).T).reshape(n_tok, n_head, d)))
    plain = scores(ggml_rope((x @ wq.T).reshape(n_tok, n_head, d)), ggml_rope((x @ wk.T).reshape(n_tok, n_head, d)))
    return float((hf - gg).abs().max()), float((hf - plain).abs().max())


def write(outdir):
    expected = {}
    models = {
        "llama-f32": llama_model(torch.float32, 4, 2, 24, True, 1),
        "llama-f16": llama_model(torch.float16, 4, 2, 24, False, 2),
        "llama-bf16": llama_model(torch.bfloat16, 4, 2, 24, False, 3),
        "llama-pruned": llama_model(torch.bfloat16, [4, 2], [2, 1], [24, 8], False, 4),
    }
    for name, (config, tensors) in models.items():
        expected[name] = describe(expected_llama(config, tensors))
    for name, prefix in (("gpt2", "transformer."), ("gpt2-noprefix", "")):
        config, tensors = gpt2_model(prefix, 6)
        models[name] = (config, tensors)
        expected[name] = describe(expected_gpt2(prefix, tensors))
    for name, (config, tensors) in models.items():
        os.makedirs(os.path.join(outdir, name), exist_ok=True)
        with open(os.path.join(outdir, name, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(outdir, name, "model.safetensors"), "wb") as f:
            f.write(ref.serialize(tensors, {"format": "pt"}))
    same, different = rope_check()
    expected["rope_max_abs_diff"] = same
    expected["rope_max_abs_diff_unpermuted"] = different
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "write":
        sys.exit("usage: gguf_convert_reference.py write OUTDIR")
    write(sys.argv[2])
