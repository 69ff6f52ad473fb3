// hf_tokenize.js: Hugging Face's tokenizers (npm `tokenizers`, the Rust library as a Node addon)
// encoding a local text, for benchmarks/bpe_vs_hf.sh. Usage: node hf_tokenize.js NPM_DIR
// TOKENIZER_JSON TEXT_FILE [CHUNK_BYTES=4096] [PASSES=1]. Same chunks as bench_bpe (about
// CHUNK_BYTES, cut after a newline), each encoded by one awaited encode() call without special
// tokens (one thread: the addon parallelises only encodeBatch). Prints
// "hf tokens=N bytes=B seconds=S tokens_per_s=T" with the fastest pass.
'use strict';
const fs = require('fs');
const path = require('path');
const [npmDir, tokFile, textFile, chunkArg, passArg] = process.argv.slice(2);
const {Tokenizer} = require(path.join(npmDir, 'node_modules', 'tokenizers'));
const tok = Tokenizer.fromFile(tokFile);
const bytes = fs.readFileSync(textFile);
const chunkBytes = Number(chunkArg || 4096);
const chunks = [];
for (let pos = 0; pos < bytes.length;) {
  let end = Math.min(bytes.length, pos + chunkBytes);
  const nl = bytes.indexOf(10, end);
  end = nl < 0 ? bytes.length : nl + 1;
  chunks.push(bytes.subarray(pos, end).toString('utf8'));
  pos = end;
}
(async () => {
  let best = Infinity, tokens = 0;
  for (let p = 0; p < Math.max(Number(passArg || 1), 1); ++p) {
    tokens = 0;
    const start = process.hrtime.bigint();
    for (const c of chunks) tokens += (await tok.encode(c, null, {addSpecialTokens: false})).getLength();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  console.log(`hf tokens=${tokens} bytes=${bytes.length} seconds=${best.toFixed(4)} tokens_per_s=${(tokens / best).toFixed(0)}`);
})();
