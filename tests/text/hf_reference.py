#!/usr/bin/python3
"""Reference for tests/text/test_tokenizer.cpp: Hugging Face's slow BertTokenizer algorithm
(BasicTokenizer + WordpieceTokenizer of transformers' tokenization_bert.py, uncased
defaults), re-typed here because transformers cannot be installed offline. The Unicode
truth comes from Python itself (unicodedata, str.lower, str.split, bytes.decode), which is
what the real BertTokenizer calls.

Usage: hf_reference.py VOCAB_TXT CASES_TXT OUT_JSONL
CASES_TXT: one case per line, the UTF-8 bytes in hex. OUT_JSONL: per case
{"decoded": [code points of bytes.decode('utf-8', 'replace')], "basic": [...], "tokens": [...]}.
"basic" is BasicTokenizer.tokenize(text); "tokens" is BertTokenizer.tokenize(text), which first
lower-cases the text one character at a time (PreTrainedTokenizer.tokenize's do_lower_case regex
`(special)|(.+?)`), then runs BasicTokenizer and WordPiece on each basic token.
"""
import json
import sys
import unicodedata


def _is_whitespace(char):
    if char == " " or char == "\t" or char == "\n" or char == "\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char):
    if char == "\t" or char == "\n" or char == "\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char):
    cp = ord(char)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp):
    return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or (0x20000 <= cp <= 0x2A6DF)
            or (0x2A700 <= cp <= 0x2B73F) or (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF)
            or (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


def whitespace_tokenize(text):
    text = text.strip()
    return text.split() if text else []


def clean_text(text):
    out = []
    for char in text:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
            continue
        out.append(" " if _is_whitespace(char) else char)
    return "".join(out)


def tokenize_chinese_chars(text):
    out = []
    for char in text:
        if _is_chinese_char(ord(char)):
            out += [" ", char, " "]
        else:
            out.append(char)
    return "".join(out)


def strip_accents(text):
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def split_on_punc(text):
    output, start_new_word = [], True
    for char in text:
        if _is_punctuation(char):
            output.append([char])
            start_new_word = True
        else:
            if start_new_word:
                output.append([])
            start_new_word = False
            output[-1].append(char)
    return ["".join(x) for x in output]


def basic_tokenize(text):
    text = clean_text(text)
    text = tokenize_chinese_chars(text)
    text = unicodedata.normalize("NFC", text)  # transformers >= 4.3x
    split_tokens = []
    for token in whitespace_tokenize(text):
        token = strip_accents(token.lower())
        split_tokens.extend(split_on_punc(token))
    return whitespace_tokenize(" ".join(split_tokens))


def wordpiece(text, vocab, unk="[UNK]", max_chars=100):
    output = []
    for token in whitespace_tokenize(text):
        chars = list(token)
        if len(chars) > max_chars:
            output.append(unk)
            continue
        is_bad, start, sub_tokens = False, 0, []
        while start < len(chars):
            end, cur = len(chars), None
            while start < end:
                substr = "".join(chars[start:end])
                if start > 0:
                    substr = "##" + substr
                if substr in vocab:
                    cur = substr
                    break
                end -= 1
            if cur is None:
                is_bad = True
                break
            sub_tokens.append(cur)
            start = end
        output.extend([unk] if is_bad else sub_tokens)
    return output


def main():
    vocab_path, cases_path, out_path = sys.argv[1:4]
    vocab = set(line.rstrip("\n") for line in open(vocab_path, encoding="utf-8"))
    with open(out_path, "w", encoding="utf-8") as out:
        for line in open(cases_path):
            raw = bytes.fromhex(line.strip())
            text = raw.decode("utf-8", "replace")
            basic = basic_tokenize(text)
            tokens = []
            for t in basic_tokenize("".join(c.lower() for c in text)):
                tokens.extend(wordpiece(t, vocab))
            out.write(json.dumps({"decoded": [ord(c) for c in text], "basic": basic, "tokens": tokens}) + "\n")


if __name__ == "__main__":
    main()
