#!/usr/bin/python3
"""Writes data files with Python's own json and csv modules (an independent writer)
for tests/datafiles: OUTDIR/ids.jsonl, OUTDIR/text.jsonl, OUTDIR/mnli.tsv,
OUTDIR/cola.tsv (no header) and OUTDIR/expected.json holding what each row must read as."""
import csv
import json
import os
import random
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(5)
expected = {}

rows = []
for i in range(40):
    n = rng.randint(1, 12)
    row = {"input_ids": [rng.randint(0, 30521) for _ in range(n)], "label": rng.randint(0, 2)}
    if i % 3 == 0:
        row["token_type_ids"] = [0] * (n // 2) + [1] * (n - n // 2)
    if i % 4 == 0:
        row["attention_mask"] = [1] * (n - 1) + [rng.randint(0, 1)]
    if i % 5 == 0:
        row["idx"] = i  # an extra key: ignored
    rows.append(row)
with open(os.path.join(out, "ids.jsonl"), "w", newline="\n") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
expected["ids"] = rows

texts = []
samples = ["plain", "quote \" and backslash \\", "tab\tinside", "unicode: café, 東京, 🙂", "newline\\n literal", "\u00e9\u0301"]
for i in range(12):
    row = {"text": rng.choice(samples) + f" #{i}", "label": rng.random() * 5}
    if i % 2:
        row["text_pair"] = rng.choice(samples)
    texts.append(row)
with open(os.path.join(out, "text.jsonl"), "w", newline="\r\n") as f:  # CRLF ends, non-ASCII escaped or not
    for i, r in enumerate(texts):
        f.write(json.dumps(r, ensure_ascii=(i % 2 == 0)) + "\n")
expected["text"] = texts

labels = ["entailment", "neutral", "contradiction"]
mnli = []
with open(os.path.join(out, "mnli.tsv"), "w", newline="\n") as f:
    w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=None, quotechar=None, lineterminator="\n")
    w.writerow(["index", "genre", "sentence1", "sentence2", "gold_label"])
    for i in range(10):
        s1 = rng.choice(samples).replace("\t", " ")
        s2 = rng.choice(samples).replace("\t", " ") + ' "quoted"'
        label = rng.choice(labels)
        w.writerow([i, "fiction", s1, s2, label])
        mnli.append({"text": s1, "text_pair": s2, "label": labels.index(label)})
expected["mnli"] = mnli

cola = []
with open(os.path.join(out, "cola.tsv"), "w", newline="\n") as f:
    for i in range(6):
        s = rng.choice(samples).replace("\t", " ")
        label = rng.randint(0, 1)
        f.write(f"gj04\t{label}\t{'*' if label == 0 else ''}\t{s}\n")
        cola.append({"text": s, "label": label})
expected["cola"] = cola

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
