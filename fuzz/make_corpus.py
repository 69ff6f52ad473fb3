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
