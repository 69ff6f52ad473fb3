// Hugging Face's BpeTrainer (npm `tokenizers`, the Rust library as a Node addon) on a corpus, for
// tests/text/test_bpe_reference.cpp. The addon exposes only the BPE model's default trainer:
// vocabulary of at most 30000, min_frequency 0, no special tokens, the alphabet of the text.
// Usage: node bpe_train_reference.js NPM_DIR CORPUS_TXT OUT_JSON (a tokenizer.json with the
// trained vocab and merges; pre-tokenizer GPT-2's ByteLevel, no prefix space).
'use strict';
const path = require('path');
const [npmDir, corpus, out] = process.argv.slice(2);
const {Tokenizer, BPE, byteLevelPreTokenizer} = require(path.join(npmDir, 'node_modules', 'tokenizers'));
const t = new Tokenizer(BPE.empty());
t.setPreTokenizer(byteLevelPreTokenizer(false, true));
t.train([corpus]);
t.save(out, true);
