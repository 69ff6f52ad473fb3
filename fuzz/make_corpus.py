#!/usr/bin/python3
"""Writes the seed corpora for fuzz/ from valid files: make_corpus.py OUTDIR
OUTDIR/<target>/seed-N for every fuzz target. The safetensors seeds come from the
torch-based reference writer of the tests (tests/io/safetensors_reference.py), the data
seeds from tests/datafiles/make_data.py, so the fuzzers start from what real files
look like."""
import json
import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
out = sys.argv[1]
sys.path.insert(0, os.path.join(root, "tests", "io"))
import safetensors_reference as ref  # noqa: E402
import torch  # noqa: E402


def seed(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


tensors = ref.reference_tensors()
seed("fuzz_safetensors", "reference", ref.serialize(tensors, {"format": "pt"}))
seed("fuzz_safetensors", "one-f32", ref.serialize({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}))
seed("fuzz_safetensors", "empty", ref.serialize({}))
for name in ["encoder.weight", "half", "brain", "ids", "flags", "scalar", "empty"]:
    seed("fuzz_safetensors", "single-" + name, ref.serialize({name: tensors[name]}))

masks = {"a.weight": (torch.arange(12).reshape(3, 4) % 3 > 0).to(torch.uint8),
         "b.bias": torch.tensor([True, False, True])}
seed("fuzz_element_masks", "masks", ref.serialize(masks))
seed("fuzz_element_masks", "one", ref.serialize({"w": torch.ones(5, dtype=torch.uint8)}))
seed("fuzz_element_masks", "empty", ref.serialize({}))
# packed bits (docs/formats.md): numpy's packbits(axis=-1, bitorder='little') of a 3 x 13 and a 5 mask
bits = {"a.weight": torch.tensor([[0xff, 0x1f], [0x01, 0x10], [0x55, 0x0a]], dtype=torch.uint8),
        "b.bias": torch.tensor([0x15], dtype=torch.uint8)}
seed("fuzz_element_masks", "bits", ref.serialize(bits, {"prune.mask_layout": "bits-lsb",
                                                        "prune.mask_last_dims": '{"a.weight": 13, "b.bias": 5}'}))

shard = ref.serialize({"w": torch.ones(2, 2), "b": torch.zeros(2, dtype=torch.float16)})
index = json.dumps({"metadata": {"total_size": len(shard)},
                    "weight_map": {"b": "model-00001.safetensors", "w": "model-00001.safetensors"}})
seed("fuzz_safetensors_index", "two-tensors", index.encode() + b"\n--SHARD--\n" + shard)
seed("fuzz_safetensors_index", "index-only", index)

seed("fuzz_structure_mask", "full", '{"heads": [[1, 0, 1], [1, 1, 1], [0, 0]], "mlps": [1, 0, 1]}')
seed("fuzz_structure_mask", "heads", '{"heads": [[1, 1], [0, 1, 1], [1, 0]]}')
seed("fuzz_structure_mask", "mlps", '{"mlps": [true, false, 1]}')
seed("fuzz_structure_mask", "empty", "{}")

with tempfile.TemporaryDirectory() as d:
    subprocess.run([sys.executable, os.path.join(root, "tests", "datafiles", "make_data.py"), d], check=True)
    # jsonl: first byte = options (see fuzz_jsonl.cpp)
    ids = open(os.path.join(d, "ids.jsonl"), "rb").read()
    text = open(os.path.join(d, "text.jsonl"), "rb").read()
    seed("fuzz_jsonl", "ids-3-classes", b"\x02" + b"\n".join(ids.split(b"\n")[:6]))
    seed("fuzz_jsonl", "ids-vocab", b"\x06" + b"\n".join(ids.split(b"\n")[:3]))
    seed("fuzz_jsonl", "text-regression", b"\x00" + b"\n".join(text.split(b"\n")[:4]))
    seed("fuzz_jsonl", "names", b"\x12" + b'{"text": "a", "label": "maybe"}\n{"text": "b", "text_pair": "c", "label": "no"}\n')
    # tsv: first byte = options (see fuzz_glue_tsv.cpp)
    mnli = open(os.path.join(d, "mnli.tsv"), "rb").read().split(b"\n")
    header = b"sentence1\tsentence2\tlabel"
    rows = [b"\t".join([r.split(b"\t")[2], r.split(b"\t")[3], r.split(b"\t")[4]]) for r in mnli[1:5] if r]
    seed("fuzz_glue_tsv", "mnli-names", b"\x0a" + b"\n".join([header] + rows) + b"\n")
    seed("fuzz_glue_tsv", "regression", b"\x06" + header + b"\na\tb\t3.8\r\nc\td\t0\r\n")
    seed("fuzz_glue_tsv", "no-header", b"\x01" + b"a sentence\tx\t1\nanother\ty\t0\n")

# config.json (fuzz_config): the presets as prune writes them, Hugging Face's bert-base
# config.json, a pruned model's config, and one with id2label instead of num_labels.
hf_base = {"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
           "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
           "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
           "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
           "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
           "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
           "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}
seed("fuzz_config", "hf-bert-base", json.dumps(hf_base, indent=2))
tiny = {"hidden_size": 128, "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 512,
        "vocab_size": 100, "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu", "num_labels": 3}
seed("fuzz_config", "tiny", json.dumps(tiny))
seed("fuzz_config", "pruned", json.dumps(dict(tiny, pruned_heads={"0": [1], "1": [0, 1]}, pruned_mlps=[1])))
seed("fuzz_config", "id2label", json.dumps(dict({k: v for k, v in tiny.items() if k != "num_labels"},
                                                id2label={"0": "no", "1": "yes"},
                                                label2id={"no": 0, "yes": 1})))
seed("fuzz_config", "regression", json.dumps(dict(tiny, num_labels=1, hidden_act="gelu_python")))

# vocab.txt + text (fuzz_tokenizer): vocab bytes, "\n--TEXT--\n", an option byte, the text.
vocab = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "un", "##want",
                   "##ed", "runn", "##ing", ",", ".", "!", "é", "##é", "中", "σ", "ς"]) + "\n"
sep = b"\n--TEXT--\n"
seed("fuzz_tokenizer", "ascii", vocab.encode() + sep + b"\x00The cats sat, unwanted running!")
seed("fuzz_tokenizer", "unicode", vocab.encode() + sep + "\x00Ét\u00e9 中文 ΣΑΣ naïve \u3000x".encode())
seed("fuzz_tokenizer", "truncate", vocab.encode() + sep + b"\x40the cat sat the cat sat [MASK] the cat [SEP] sat")
seed("fuzz_tokenizer", "crlf", vocab.replace("\n", "\r\n").encode() + sep + b"\x0fTHE Cat")
seed("fuzz_tokenizer", "fixed-vocab", b"\x00ab aab ba \xc3\xa9 \xff\xfe invalid")
seed("fuzz_tokenizer", "bad-vocab", b"[PAD]\n[UNK]\n[CLS]\n" + sep + b"\x00the cat")


# GGUF (fuzz_gguf): a minimal writer from the GGUF specification (independent of prune's):
# a tiny Llama-like model with metadata of several types and per-layer arrays, F32/F16/BF16
# and a Q8_0 tensor, an alignment-64 file, llama-imatrix's GGUF layout and its legacy binary
# layout (the target reads every input both ways).
def gguf_bytes(kvs, tensors, alignment=32):
    import struct as st

    def text(s):
        b = s.encode()
        return st.pack("<Q", len(b)) + b

    def value(kind, v):
        scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
        if kind == 8:
            return text(v)
        if isinstance(kind, tuple):  # (9, element kind)
            return st.pack("<IQ", kind[1], len(v)) + b"".join(value(kind[1], x) for x in v)
        return st.pack(scalar[kind], v)

    out = b"GGUF" + st.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, kind, v in kvs:
        out += text(key) + st.pack("<I", kind[0] if isinstance(kind, tuple) else kind) + value(kind, v)
    offset, data = 0, b""
    for name, ne, ggml_type, payload in tensors:
        out += text(name) + st.pack("<I", len(ne)) + b"".join(st.pack("<Q", e) for e in ne)
        out += st.pack("<IQ", ggml_type, offset)
        padded = payload + b"\0" * ((-len(payload)) % alignment)
        data += padded
        offset += len(padded)
    return out + b"\0" * ((-len(out)) % alignment) + data


def f32s(values):
    import struct as st
    return b"".join(st.pack("<f", v) for v in values)


llama_kvs = [("general.architecture", 8, "llama"), ("llama.block_count", 4, 2), ("llama.context_length", 4, 16),
             ("llama.embedding_length", 4, 4), ("llama.feed_forward_length", (9, 5), [6, 4]),
             ("llama.attention.head_count", (9, 5), [2, 1]), ("llama.attention.head_count_kv", 4, 1),
             ("llama.rope.freq_base", 6, 10000.0), ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
             ("llama.attention.key_length", 4, 2), ("tokenizer.ggml.tokens", (9, 8), ["<s>", "a", "b"]),
             ("test.flags", (9, 7), [True, False]), ("test.big", 10, 2**63), ("test.f64", 12, 0.5)]
llama_tensors = [("token_embd.weight", [4, 3], 0, f32s(range(12))),
                 ("blk.0.attn_q.weight", [4, 4], 1, bytes(32)),
                 ("blk.0.ffn_up.weight", [4, 6], 30, bytes(48)),
                 ("blk.1.attn_norm.weight", [4], 0, f32s([1, 2, 3, 4])),
                 ("blk.1.ffn_down.weight", [32, 2], 8, bytes(68))]
seed("fuzz_gguf", "llama", gguf_bytes(llama_kvs, llama_tensors))
seed("fuzz_gguf", "huge-block-count", gguf_bytes([(k, t, 4000000000 if k == "llama.block_count" else v)
                                                  for k, t, v in llama_kvs if k != "llama.feed_forward_length"]
                                                 + [("llama.feed_forward_length", 4, 8)], llama_tensors))
seed("fuzz_gguf", "align64", gguf_bytes([("general.alignment", 4, 64), ("general.architecture", 8, "gpt2")],
                                        [("a", [3], 0, f32s([1, 2, 3])), ("b", [2, 2], 1, bytes(8))], 64))
seed("fuzz_gguf", "empty", gguf_bytes([], []))
imatrix_kvs = [("general.type", 8, "imatrix"), ("imatrix.datasets", (9, 8), ["calib.txt"]),
               ("imatrix.chunk_count", 4, 2), ("imatrix.chunk_size", 4, 512)]
seed("fuzz_gguf", "imatrix", gguf_bytes(imatrix_kvs, [
    ("blk.0.attn_q.weight.in_sum2", [4, 1], 0, f32s([1, 2, 3, 4])), ("blk.0.attn_q.weight.counts", [1, 1], 0, f32s([512])),
    ("blk.1.ffn_up_exps.weight.in_sum2", [2, 2], 0, f32s([1, 2, 3, 4])),
    ("blk.1.ffn_up_exps.weight.counts", [1, 2], 0, f32s([10, 0])),
    ("blk.1.ffn_up_exps.weight.in_sum", [2, 2], 0, f32s([-1, 2, 0, 0]))]))


def legacy_dat(entries, chunks, dataset):
    import struct as st
    out = st.pack("<i", len(entries))
    for name, ncall, values in entries:
        out += st.pack("<i", len(name)) + name.encode() + st.pack("<ii", ncall, len(values)) + f32s(values)
    return out + st.pack("<i", chunks) + st.pack("<i", len(dataset)) + dataset.encode()


seed("fuzz_gguf", "legacy-dat", legacy_dat([("blk.0.attn_q.weight", 2, [0.5, 1.5, 2.0]), ("output.weight", 1, [1.0])],
                                           2, "wiki.train.raw"))

# tokenizer.json + text (fuzz_bpe): a small byte-level BPE as prune's trainer writes it (GPT-2
# pre-tokenizer), one with Llama-3's regex, NFC and added tokens with every option, then text.
byte_chars = [c for c in range(256)]
def byte_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = list(bs), 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
bmap = byte_to_unicode()
bpe_vocab = {bmap[b]: b for b in range(256)}
bpe_merges = [["\u0120", "t"], ["h", "e"], ["\u0120t", "he"], ["i", "n"], ["\u0120", "\u0120"]]
for a, b in bpe_merges:
    bpe_vocab.setdefault(a + b, len(bpe_vocab))
n = len(bpe_vocab)
gpt2_style = {"version": "1.0", "truncation": None, "padding": None,
              "added_tokens": [{"id": n, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": False, "special": True}],
              "normalizer": None,
              "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
              "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
              "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
              "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False, "byte_fallback": False,
                        "vocab": bpe_vocab, "merges": [" ".join(m) for m in bpe_merges]}}
llama_style = json.loads(json.dumps(gpt2_style))
llama_style["normalizer"] = {"type": "NFC"}
llama_style["model"]["merges"] = bpe_merges
llama_style["model"]["ignore_merges"] = True
llama_style["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
     "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"String": ", "}, "behavior": "MergedWithNext", "invert": True},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
llama_style["added_tokens"] += [
    {"id": n + 1, "content": "<s>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
    {"id": n + 2, "content": "[w]", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True, "special": False}]
llama_style["post_processor"] = {"type": "TemplateProcessing",
                                 "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                                 "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [n + 1], "tokens": ["<s>"]}}}
text = "The cat's 12345 <|endoftext|>  e\u0301 \u65e5\u672c <s> [w] x[w]\n\n\tend  ".encode()
seed("fuzz_bpe", "gpt2-style", json.dumps(gpt2_style).encode() + sep + text)
seed("fuzz_bpe", "llama-style", json.dumps(llama_style, ensure_ascii=False).encode() + sep + text + b"\xff\xc3")
seed("fuzz_bpe", "fixed", text + b" </s><s> <|x|> a<|x|>")
seed("fuzz_bpe", "fixed-invalid", b"\xf0\x9f\xa4 \xed\xa0\x80 ok's   \r\n")
