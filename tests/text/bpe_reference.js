// Reference for tests/text/test_bpe_reference.cpp and test_bpe_trainer.cpp: encodes and decodes
// texts with Hugging Face's Rust `tokenizers` (npm `tokenizers`, the library itself as a Node
// addon) and with its JavaScript reimplementation (npm `@huggingface/tokenizers`).
//
// Usage: node bpe_reference.js NPM_DIR CASES_TXT OUT_JSON TOKENIZER_JSON...
// CASES_TXT: one text per line as the hex of its bytes (invalid UTF-8 reaches both libraries
// as Node's lossy decode makes it: each maximal invalid subsequence becomes U+FFFD).
// OUT_JSON: {"<tokenizer path>": {"rust": [case...], "js": [case...] or {"error": "..."}}}, each
// case {"ids": encode(text, add_special_tokens), "plain": encode(text) without special tokens,
// "text": decode(plain), "skipped": decode(ids, skip_special_tokens)}.
'use strict';
const fs = require('fs');
const path = require('path');
const [npmDir, casesFile, outFile, ...tokenizerFiles] = process.argv.slice(2);
const rust = require(path.join(npmDir, 'node_modules', 'tokenizers'));
const js = require(path.join(npmDir, 'node_modules', '@huggingface', 'tokenizers'));

const texts = fs.readFileSync(casesFile, 'ascii').split('\n');
texts.pop();  // after the last newline
const cases = texts.map((hex) => Buffer.from(hex, 'hex').toString('utf8'));

async function runRust(file) {
  const t = rust.Tokenizer.fromFile(file);
  const out = [];
  for (const text of cases) {
    const ids = (await t.encode(text, null, {addSpecialTokens: true})).getIds();
    const plain = (await t.encode(text, null, {addSpecialTokens: false})).getIds();
    out.push({ids, plain, text: await t.decode(plain, false), skipped: await t.decode(ids, true)});
  }
  return out;
}

function runJs(file) {
  try {
    const t = new js.Tokenizer(JSON.parse(fs.readFileSync(file, 'utf8')), {});
    // (its decode refuses an empty list of ids)
    const decode = (ids, skip) =>
      ids.length ? t.decode(ids, {skip_special_tokens: skip, clean_up_tokenization_spaces: false}) : '';
    return cases.map((text) => {
      const ids = t.encode(text, {add_special_tokens: true}).ids;
      const plain = t.encode(text, {add_special_tokens: false}).ids;
      return {ids, plain, text: decode(plain, false), skipped: decode(ids, true)};
    });
  } catch (e) {
    return {error: String(e)};
  }
}

(async () => {
  const result = {};
  for (const file of tokenizerFiles) result[file] = {rust: await runRust(file), js: runJs(file)};
  fs.writeFileSync(outFile, JSON.stringify(result));
})().catch((e) => { console.error(e); process.exit(1); });
