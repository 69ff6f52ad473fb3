// tests/io/gguf_reference.mjs: the independent side of prune's GGUF and imatrix tests, on
// Hugging Face's npm package @huggingface/gguf (installed into the build tree by
// tests/io/npm_install.sh; PREFIX below is that directory).
//
//   node gguf_reference.mjs read PREFIX FILE          parses FILE with @huggingface/gguf and
//        prints JSON: header, metadata (type, element type, value), tensor infos, the data
//        section's start, and every non-quantized tensor's bytes (hex) read at the offsets
//        the package computed.
//   node gguf_reference.mjs write PREFIX DIR          writes DIR/{default,align64}.gguf: the
//        metadata through the package's serializeGgufMetadata/buildGgufHeader, the tensor
//        infos and data section written here from the GGUF specification; DIR/expected.json
//        says what each file holds.
//   node gguf_reference.mjs write-imatrix PREFIX DIR  writes DIR/imatrix.gguf in llama-imatrix's
//        GGUF layout and DIR/imatrix.dat in its legacy binary layout, both from the same
//        statistics, and DIR/imatrix.json with those statistics and what each file must say.
//
// Values: u64/i64 are printed as decimal strings; floats as JSON numbers (exact: every
// value used here is a float32).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [mode, prefix, target] = process.argv.slice(2);
const require = createRequire(path.join(prefix, "package.json"));
const { gguf, buildGgufHeader, GGUFValueType } = require("@huggingface/gguf");

// ggml type id -> [block size, block bytes] for the types these tests use (ggml-common.h).
const LAYOUT = { 0: [1, 4], 1: [1, 2], 8: [32, 34], 24: [1, 1], 25: [1, 2], 26: [1, 4], 27: [1, 8], 28: [1, 8], 30: [1, 2] };
const QUANTIZED = new Set([8]);

const jsonable = (v) => (typeof v === "bigint" ? v.toString() : Array.isArray(v) ? v.map(jsonable) : v);
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const pad = (x, a) => Math.ceil(x / a) * a;

async function read(file) {
  const out = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const data = fs.readFileSync(file);
  const result = {
    version: out.metadata.version,
    tensor_count: out.metadata.tensor_count.toString(),
    kv_count: out.metadata.kv_count.toString(),
    little_endian: out.littleEndian,
    tensor_data_offset: out.tensorDataOffset.toString(),
    metadata: [],
    tensors: [],
  };
  for (const [key, entry] of Object.entries(out.typedMetadata)) {
    if (key === "version" || key === "tensor_count" || key === "kv_count") continue;
    result.metadata.push({ key, type: entry.type, sub_type: entry.subType ?? null, value: jsonable(entry.value) });
  }
  for (const t of out.tensorInfos) {
    const ne = t.shape.map(Number);
    const layout = LAYOUT[t.dtype];
    const info = { name: t.name, ne, type: t.dtype, offset: t.offset.toString() };
    if (layout && !QUANTIZED.has(t.dtype)) {
      const bytes = (ne.reduce((a, b) => a * b, 1) / layout[0]) * layout[1];
      const start = Number(out.tensorDataOffset + t.offset);
      info.hex = hex(data.subarray(start, start + bytes));
    }
    result.tensors.push(info);
  }
  process.stdout.write(JSON.stringify(result));
}

// A deterministic stream of float32 values and bytes (xorshift32).
function generator(seed) {
  let s = seed >>> 0;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
  return {
    float: () => Math.fround((next() / 4294967296) * 4 - 2),
    positive: () => Math.fround((next() / 4294967296) * 9 + 0.5),
    byte: () => next() & 0xff,
  };
}

function tensorBytes(type, ne, g) {
  const n = ne.reduce((a, b) => a * b, 1);
  const [block, bytesPerBlock] = LAYOUT[type];
  const buf = Buffer.alloc((n / block) * bytesPerBlock);
  if (type === 0) for (let i = 0; i < n; i++) buf.writeFloatLE(g.float(), i * 4);
  else if (type === 1 || type === 30) for (let i = 0; i < n; i++) buf.writeUInt16LE(g.byte() | (g.byte() << 8) & 0x7bff, i * 2);
  else if (type === 26) for (let i = 0; i < n; i++) buf.writeInt32LE((g.byte() << 16) - 8000000, i * 4);
  else for (let i = 0; i < buf.length; i++) buf[i] = g.byte();
  return buf;
}

// Tensor infos (from the GGUF specification) + data section: [infoBytes, dataBytes, infos].
function tensorSection(tensors, alignment, g) {
  const parts = [];
  const data = [];
  const infos = [];
  let offset = 0;
  for (const { name, type, ne, bytes } of tensors) {
    const payload = bytes ?? tensorBytes(type, ne, g);
    const nameBytes = Buffer.from(name, "utf8");
    const head = Buffer.alloc(8 + nameBytes.length + 4 + 8 * ne.length + 4 + 8);
    let p = 0;
    head.writeBigUInt64LE(BigInt(nameBytes.length), p); p += 8;
    nameBytes.copy(head, p); p += nameBytes.length;
    head.writeUInt32LE(ne.length, p); p += 4;
    for (const e of ne) { head.writeBigUInt64LE(BigInt(e), p); p += 8; }
    head.writeUInt32LE(type, p); p += 4;
    head.writeBigUInt64LE(BigInt(offset), p);
    parts.push(head);
    const padded = Buffer.alloc(pad(payload.length, alignment));
    payload.copy(padded);
    data.push(padded);
    infos.push({ name, type, ne, offset: String(offset), hex: QUANTIZED.has(type) ? null : hex(payload) });
    offset += padded.length;
  }
  return [Buffer.concat(parts), Buffer.concat(data), infos];
}

// Writes one GGUF file; returns what it holds.
async function writeGguf(file, metadata, tensors, alignment, g) {
  const typed = {
    version: { value: 3, type: GGUFValueType.UINT32 },
    tensor_count: { value: BigInt(tensors.length), type: GGUFValueType.UINT64 },
    kv_count: { value: BigInt(metadata.length), type: GGUFValueType.UINT64 },
  };
  for (const m of metadata) {
    typed[m.key] = m.sub_type === undefined ? { value: m.value, type: m.type } : { value: m.value, type: m.type, subType: m.sub_type };
  }
  const [infoBytes, dataBytes, infos] = tensorSection(tensors, alignment, g);
  const header = await buildGgufHeader(new Blob([infoBytes]), typed, {
    littleEndian: true,
    tensorInfoByteRange: [0, infoBytes.length],
    alignment,
  });
  const headerBytes = Buffer.from(await header.arrayBuffer());
  fs.writeFileSync(file, Buffer.concat([headerBytes, dataBytes]));
  return {
    data_offset: headerBytes.length,
    metadata: metadata.map((m) => ({ key: m.key, type: m.type, sub_type: m.sub_type ?? null, value: jsonable(m.value) })),
    tensors: infos,
  };
}

const T = GGUFValueType;

async function write(dir) {
  const g = generator(20240601);
  const metadata = [
    { key: "general.architecture", type: T.STRING, value: "llama" },
    { key: "general.name", type: T.STRING, value: "tiny ünïcode ✓" },
    { key: "test.u8", type: T.UINT8, value: 200 },
    { key: "test.i8", type: T.INT8, value: -100 },
    { key: "test.u16", type: T.UINT16, value: 65000 },
    { key: "test.i16", type: T.INT16, value: -32000 },
    { key: "test.u32", type: T.UINT32, value: 4000000000 },
    { key: "test.i32", type: T.INT32, value: -2000000000 },
    { key: "test.f32", type: T.FLOAT32, value: Math.fround(0.1) },
    { key: "test.bool", type: T.BOOL, value: true },
    { key: "test.u64", type: T.UINT64, value: 18446744073709551615n },
    { key: "test.i64", type: T.INT64, value: -9223372036854775808n },
    { key: "test.f64", type: T.FLOAT64, value: 1e-300 },
    { key: "test.empty_string", type: T.STRING, value: "" },
    { key: "llama.attention.head_count", type: T.ARRAY, sub_type: T.INT32, value: [4, 2, 3] },
    { key: "test.strings", type: T.ARRAY, sub_type: T.STRING, value: ["a", "", "βγ", "<s>"] },
    { key: "test.floats", type: T.ARRAY, sub_type: T.FLOAT32, value: [0.5, -1.25, Math.fround(3.3)] },
    { key: "test.bools", type: T.ARRAY, sub_type: T.BOOL, value: [true, false, true] },
    { key: "test.u64s", type: T.ARRAY, sub_type: T.UINT64, value: [0n, 1n << 40n] },
    // (an array of u8 cannot be written by serializeGgufMetadata 0.4.6: it tests `!subType`, and u8 is 0)
    { key: "test.empty_array", type: T.ARRAY, sub_type: T.UINT16, value: [] },
  ];
  const tensors = [
    { name: "token_embd.weight", type: 0, ne: [5, 3] },
    { name: "blk.0.attn_norm.weight", type: 0, ne: [5] },
    { name: "blk.0.attn_q.weight", type: 1, ne: [5, 5] },
    { name: "blk.0.ffn_up.weight", type: 30, ne: [5, 7] },
    { name: "blk.0.q8", type: 8, ne: [64, 2] },
    { name: "cube", type: 0, ne: [2, 3, 4] },
    { name: "ids", type: 26, ne: [3] },
    { name: "nothing", type: 0, ne: [0] },
  ];
  const expected = {};
  expected.default = await writeGguf(path.join(dir, "default.gguf"), metadata, tensors, 32, g);
  const aligned = [{ key: "general.alignment", type: T.UINT32, value: 64 }, { key: "general.architecture", type: T.STRING, value: "gpt2" }];
  expected.align64 = await writeGguf(path.join(dir, "align64.gguf"), aligned,
    [{ name: "a", type: 0, ne: [3] }, { name: "b", type: 1, ne: [33] }, { name: "c", type: 30, ne: [2, 2] }], 64, g);
  fs.writeFileSync(path.join(dir, "expected.json"), JSON.stringify(expected));
}

// llama-imatrix's statistics for a few weights: sums of squares per column (per expert), token counts.
function imatrixStats(g) {
  const entries = [
    { name: "blk.0.attn_q.weight", columns: 8, counts: [512] },
    { name: "blk.0.ffn_down.weight", columns: 16, counts: [512] },
    { name: "blk.1.ffn_gate_exps.weight", columns: 8, counts: [300, 0], with_sum: true },
    { name: "output.weight", columns: 8, counts: [1024] },
  ];
  for (const e of entries) {
    e.sum2 = [];
    e.sum = [];
    for (let m = 0; m < e.counts.length; m++) {
      for (let j = 0; j < e.columns; j++) {
        e.sum2.push(e.counts[m] === 0 ? 0 : Math.fround(g.positive() * e.counts[m]));
        e.sum.push(e.counts[m] === 0 ? 0 : Math.fround(g.float() * e.counts[m]));
      }
    }
  }
  return entries;
}

// The legacy binary layout, as llama-imatrix's save_imatrix_legacy writes it (all little-endian):
// i32 n_entries; per entry i32 name length, name, i32 ncall, i32 nval, nval x f32; then
// i32 chunk count and i32 length + the dataset name. Values are (sum2 / count) * ncall with
// ncall = ceil(max count / chunk_size), in float arithmetic; a matrix with count 0 stores 1.
function legacyBytes(entries, chunkSize, chunkCount, dataset) {
  const parts = [];
  const i32 = (v) => { const b = Buffer.alloc(4); b.writeInt32LE(v); parts.push(b); };
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : 1));
  i32(sorted.length);
  const values = {};
  for (const e of sorted) {
    const name = Buffer.from(e.name, "utf8");
    i32(name.length); parts.push(name);
    const ncall = Math.floor((Math.max(...e.counts) + chunkSize - 1) / chunkSize);
    i32(ncall);
    const nval = e.sum2.length;
    i32(nval);
    const out = Buffer.alloc(4 * nval);
    values[e.name] = { ncall, values: [] };
    for (let i = 0; i < nval; i++) {
      let count = Math.fround(e.counts[Math.floor(i / e.columns)]);
      let value = e.sum2[i];
      if (count === 0) { value = 1; count = 1; }
      const v = Math.fround(Math.fround(value / count) * ncall);
      out.writeFloatLE(v, 4 * i);
      values[e.name].values.push(v);
    }
    parts.push(out);
  }
  i32(chunkCount);
  const d = Buffer.from(dataset, "utf8");
  i32(d.length); parts.push(d);
  return [Buffer.concat(parts), values];
}

async function writeImatrix(dir) {
  const g = generator(7);
  const entries = imatrixStats(g);
  const chunkSize = 512;
  const chunkCount = 2;
  const datasets = ["wiki.train.raw", "code.txt"];
  const metadata = [
    { key: "general.type", type: T.STRING, value: "imatrix" },
    { key: "imatrix.datasets", type: T.ARRAY, sub_type: T.STRING, value: datasets },
    { key: "imatrix.chunk_count", type: T.UINT32, value: chunkCount },
    { key: "imatrix.chunk_size", type: T.UINT32, value: chunkSize },
  ];
  const f32 = (values) => { const b = Buffer.alloc(4 * values.length); values.forEach((v, i) => b.writeFloatLE(v, 4 * i)); return b; };
  const tensors = [];
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const nmat = e.counts.length;
    tensors.push({ name: `${e.name}.in_sum2`, type: 0, ne: [e.columns, nmat], bytes: f32(e.sum2) });
    tensors.push({ name: `${e.name}.counts`, type: 0, ne: [1, nmat], bytes: f32(e.counts) });
    if (e.with_sum) tensors.push({ name: `${e.name}.in_sum`, type: 0, ne: [e.columns, nmat], bytes: f32(e.sum) });
  }
  await writeGguf(path.join(dir, "imatrix.gguf"), metadata, tensors, 32, g);
  const [legacy, legacyValues] = legacyBytes(entries, chunkSize, chunkCount, datasets[0]);
  fs.writeFileSync(path.join(dir, "imatrix.dat"), legacy);
  fs.writeFileSync(path.join(dir, "imatrix.json"), JSON.stringify({
    chunk_size: chunkSize, chunk_count: chunkCount, datasets, entries, legacy: legacyValues,
  }));
}

if (mode === "read") await read(target);
else if (mode === "write") await write(target);
else if (mode === "write-imatrix") await writeImatrix(target);
else { console.error(`gguf_reference.mjs: unknown mode '${mode}' (expected read, write or write-imatrix)`); process.exit(2); }
