// A safetensors reader: references and runtime outputs are compared here, never unpickled.
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { codesWith, codeView, type CodeWith } from '../contract/codes';

/** Bytes per element of each dtype we read. */
const DTYPE_SIZE = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as const;
export type Dtype = keyof typeof DTYPE_SIZE;
const LITTLE_ENDIAN = endianness() === 'LE';
// The dtypes a typed array reads as they are stored, converted to float64 by `set`.
const VIEWS: Partial<Record<Dtype, new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ArrayLike<number>>> = {
  F64: Float64Array,
  F32: Float32Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
};

/** The rules of docs/trust-safetensors.md, in the order they are checked; the codes are the Python and C++ readers' too.
 * A view of the catalog (lib/contract/codes.ts): the codes whose uses include `safetensors`. */
export const SafetensorsRule = codeView(codesWith('safetensors'), 'st_');
export type SafetensorsRule = CodeWith<'safetensors'>;

/** A file that breaks a rule: `code` names the rule, the message the file, the value and what was expected. */
export class SafetensorsError extends Error {
  constructor(
    readonly where: string,
    readonly code: SafetensorsRule,
    readonly detail: string,
  ) {
    super(`${where}: ${detail} (${code})`);
    this.name = 'SafetensorsError';
  }
}

const MAX_HEADER_BYTES = 100_000_000n;
const MAX_DEPTH = 3;
const MAX_INT = BigInt(Number.MAX_SAFE_INTEGER);
const ENTRY_KEYS = ['data_offsets', 'dtype', 'shape'];

/** One tensor: dtype, shape and its little-endian bytes, decoded to float64 (ints and bools included) on demand: a
 * chunk at a time with `read` (a runtime's logits can be hundreds of MB), or whole with `values`. */
export class Tensor {
  /** Elements in the tensor (the product of its shape). */
  readonly count: number;

  constructor(
    readonly dtype: Dtype,
    readonly shape: number[],
    /** The values as stored: little-endian, contiguous. */
    readonly bytes: Buffer,
  ) {
    this.count = bytes.length / DTYPE_SIZE[dtype];
  }

  /** Every value as float64, decoded afresh on each call (for large tensors, `read` a chunk at a time). */
  get values(): Float64Array {
    const out = new Float64Array(this.count);
    this.read(0, this.count, out);
    return out;
  }

  /** Decodes the values [start, start + n) into out[0, n). */
  read(start: number, n: number, out: Float64Array): void {
    if (start < 0 || n < 0 || start + n > this.count || n > out.length) {
      throw new RangeError(`read(${start}, ${n}) of a tensor of ${this.count} elements into ${out.length}`);
    }
    decodeInto(this.dtype, this.bytes.subarray(start * DTYPE_SIZE[this.dtype], (start + n) * DTYPE_SIZE[this.dtype]), n, out);
  }
}

/** A whole file: tensors by name (in header order) and the string metadata. */
export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

// The header as parsed, keeping what JSON.parse loses: key order, duplicate keys and how numbers were written.
type Json =
  | { kind: 'object'; pairs: [string, Json][] }
  | { kind: 'array'; items: Json[] }
  | { kind: 'string'; value: string }
  | { kind: 'number'; text: string; value: number }
  | { kind: 'literal'; value: boolean | null };

/** Parses safetensors bytes, checking every rule of docs/trust-safetensors.md; throws SafetensorsError. */
export function parseSafetensors(buf: Buffer, where = 'safetensors'): SafetensorsFile {
  const fail = (code: SafetensorsRule, detail: string): never => {
    throw new SafetensorsError(where, code, detail);
  };
  if (buf.length < 8) fail(SafetensorsRule.fileTooShort, `file is ${buf.length} bytes; expected at least 8 (the header length)`);
  const size = buf.readBigUInt64LE(0);
  if (size > MAX_HEADER_BYTES) fail(SafetensorsRule.headerTooLarge, `header length ${size} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  if (8n + size > BigInt(buf.length)) {
    fail(
      SafetensorsRule.headerOutOfBounds,
      `header length ${size} runs past the end of the file (${buf.length - 8} bytes follow the length field)`,
    );
  }
  const headerLen = Number(size);
  const header = buf.subarray(8, 8 + headerLen);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch {
    fail(SafetensorsRule.headerNotUtf8, 'header is not UTF-8');
  }
  const body = text.replace(/ +$/, '');
  if (!body.startsWith('{') || !body.endsWith('}')) {
    fail(
      SafetensorsRule.headerFraming,
      `header must begin with '{' and end with '}' followed only by spaces (got ${JSON.stringify(text.slice(0, 1))} ... ${JSON.stringify(body.slice(-1))})`,
    );
  }
  if (nestingTooDeep(header)) fail(SafetensorsRule.headerTooDeep, `header nests deeper than ${MAX_DEPTH} levels of objects and arrays`);
  let doc: Json = { kind: 'literal', value: null };
  try {
    JSON.parse(body); // the syntax check; parseTree below reads what JSON.parse accepted
    doc = parseTree(body);
  } catch (err) {
    fail(SafetensorsRule.headerNotJson, `header is not valid JSON: ${(err as Error).message}`);
  }
  const duplicate = duplicateKey(doc);
  if (duplicate !== undefined)
    fail(SafetensorsRule.headerDuplicateKey, `header has the key ${quote(duplicate)} twice; keys must be unique`);
  const pairs = doc.kind === 'object' ? doc.pairs : [];

  let metadata: Record<string, string> = {};
  for (const [name, value] of pairs) {
    if (name !== '__metadata__') continue;
    if (value.kind !== 'object' || !value.pairs.every(([, v]) => v.kind === 'string')) {
      fail(SafetensorsRule.metadataInvalid, `__metadata__ must be an object of strings (got ${show(value)})`);
    }
    metadata = Object.fromEntries((value as { pairs: [string, { value: string }][] }).pairs.map(([k, v]) => [k, v.value]));
  }

  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number; index: number }[] = [];
  for (const [name, info] of pairs) {
    if (name === '__metadata__') continue;
    if (name === '') fail(SafetensorsRule.tensorNameEmpty, 'a tensor has an empty name');
    const label = `tensor ${quote(name)}`;
    if (
      info.kind !== 'object' ||
      info.pairs
        .map(([k]) => k)
        .sort()
        .join(',') !== ENTRY_KEYS.join(',')
    ) {
      fail(SafetensorsRule.tensorEntryInvalid, `${label} must be an object with exactly dtype, shape and data_offsets (got ${show(info)})`);
    }
    const fields = new Map((info as { pairs: [string, Json][] }).pairs);
    const dtype = fields.get('dtype')!;
    const shape = fields.get('shape')!;
    const offsets = fields.get('data_offsets')!;
    if (dtype.kind !== 'string' || !Object.hasOwn(DTYPE_SIZE, dtype.value)) {
      fail(SafetensorsRule.tensorDtype, `${label} has dtype ${show(dtype)}; expected one of ${Object.keys(DTYPE_SIZE).join(' ')}`);
    }
    if (shape.kind !== 'array' || !shape.items.every(isInt)) {
      fail(SafetensorsRule.tensorShape, `${label} has shape ${show(shape)}; expected integers from 0 to 2^53-1`);
    }
    const dims = (shape as { items: { value: number }[] }).items.map((d) => d.value + 0); // + 0: -0 is 0
    if (dims.reduce((a, d) => a * BigInt(Math.max(d, 1)), 1n) > MAX_INT) {
      fail(SafetensorsRule.tensorShape, `${label} has shape ${show(shape)} whose size exceeds 2^53-1`);
    }
    if (
      offsets.kind !== 'array' ||
      offsets.items.length !== 2 ||
      !offsets.items.every(isInt) ||
      num(offsets.items[0]) > num(offsets.items[1])
    ) {
      fail(
        SafetensorsRule.tensorOffsets,
        `${label} has data_offsets ${show(offsets)}; expected [begin, end], integers from 0 to 2^53-1 with begin <= end`,
      );
    }
    const [begin, end] = (offsets as { items: { value: number }[] }).items.map((o) => o.value + 0);
    const type = (dtype as { value: Dtype }).value;
    const need = dims.reduce((a, d) => a * BigInt(d), 1n) * BigInt(DTYPE_SIZE[type]);
    if (BigInt(end - begin) !== need) {
      fail(
        SafetensorsRule.tensorSizeMismatch,
        `${label} has data_offsets [${begin}, ${end}] spanning ${end - begin} bytes; dtype ${type} and shape [${dims.join(', ')}] need ${need}`,
      );
    }
    entries.push({ name, dtype: type, shape: dims, begin, end, index: entries.length });
  }

  let position = 0;
  for (const e of [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end || a.index - b.index)) {
    if (e.begin !== position) {
      fail(
        SafetensorsRule.tensorsNotContiguous,
        `tensor ${quote(e.name)} begins at ${e.begin} but the previous tensor ends at ${position}: it ${e.begin > position ? 'leaves a gap' : 'overlaps the tensor before it'}`,
      );
    }
    position = e.end;
  }
  const data = buf.subarray(8 + headerLen);
  if (position > data.length) fail(SafetensorsRule.dataTruncated, `tensors need ${position} bytes of data but the file has ${data.length}`);
  if (position < data.length)
    fail(SafetensorsRule.dataTrailing, `${data.length - position} bytes follow the last tensor; the data section must end there`);

  const tensors = new Map<string, Tensor>();
  for (const e of entries) tensors.set(e.name, new Tensor(e.dtype, e.shape, data.subarray(e.begin, e.end)));
  return { tensors, metadata };
}

/** A safetensors file of `tensors` (in this order) and `metadata`, its data section aligned to 8 bytes as the Python
 * writer aligns it (the header padded with spaces). */
export function encodeSafetensors(tensors: [string, Tensor][], metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = JSON.stringify(header);
  const text = Buffer.from(json + ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([length, text, ...tensors.map(([, t]) => t.bytes)]);
}

/** Reads and parses a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readFile(path), path);
}

// Rule 6, on the bytes: `{` and `[` outside strings open a level; inside a string `\` skips the next byte.
function nestingTooDeep(header: Buffer): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (const byte of header) {
    if (inString) {
      if (escaped) escaped = false;
      else if (byte === 0x5c) escaped = true;
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x7b || byte === 0x5b) {
      if (++depth > MAX_DEPTH) return true;
    } else if (byte === 0x7d || byte === 0x5d) depth--;
  }
  return false;
}

// Reads JSON text that JSON.parse has accepted. Throws for what JSON.parse lets through but the other readers refuse:
// numbers beyond a double's range and lone surrogates.
function parseTree(text: string): Json {
  const token = /[ \t\n\r]*(?:("(?:[^"\\]|\\[\s\S])*")|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false|null)|([{}[\]:,]))/y;
  const next = (): RegExpExecArray => {
    const m = token.exec(text);
    if (!m) throw new Error(`unexpected text at ${token.lastIndex}`);
    return m;
  };
  const str = (literal: string): string => {
    const value = JSON.parse(literal) as string;
    if (/[\uD800-\uDFFF]/u.test(value)) throw new Error(`string ${literal.slice(0, 40)} holds a lone surrogate`);
    return value;
  };
  const value = (m: RegExpExecArray): Json => {
    if (m[1] !== undefined) return { kind: 'string', value: str(m[1]) };
    if (m[2] !== undefined) {
      const n = Number(m[2]);
      if (!Number.isFinite(n)) throw new Error(`number ${m[2].slice(0, 40)} overflows a double`);
      return { kind: 'number', text: m[2], value: n };
    }
    if (m[3] !== undefined) return { kind: 'literal', value: m[3] === 'null' ? null : m[3] === 'true' };
    if (m[4] === '{') {
      const pairs: [string, Json][] = [];
      let t = next();
      while (t[4] !== '}') {
        if (t[4] === ',') t = next();
        const key = str(t[1]);
        next(); // ':'
        pairs.push([key, value(next())]);
        t = next();
      }
      return { kind: 'object', pairs };
    }
    const items: Json[] = [];
    let t = next();
    while (t[4] !== ']') {
      if (t[4] === ',') t = next();
      items.push(value(t));
      t = next();
    }
    return { kind: 'array', items };
  };
  return value(next());
}

// The first key seen twice in any object, looking at an object's own keys before its children's.
function duplicateKey(v: Json): string | undefined {
  if (v.kind === 'object') {
    const seen = new Set<string>();
    for (const [k] of v.pairs) {
      if (seen.has(k)) return k;
      seen.add(k);
    }
  }
  const children = v.kind === 'object' ? v.pairs.map(([, c]) => c) : v.kind === 'array' ? v.items : [];
  for (const c of children) {
    const found = duplicateKey(c);
    if (found !== undefined) return found;
  }
  return undefined;
}

function isInt(v: Json): boolean {
  return v.kind === 'number' && /^-?\d+$/.test(v.text) && v.value >= 0 && v.value <= Number.MAX_SAFE_INTEGER;
}

function num(v: Json): number {
  return (v as { value: number }).value;
}

function plain(v: Json): unknown {
  if (v.kind === 'object') return Object.fromEntries(v.pairs.map(([k, c]) => [k, plain(c)]));
  if (v.kind === 'array') return v.items.map(plain);
  if (v.kind === 'number') return Number(v.text);
  return v.value;
}

function show(v: Json): string {
  return JSON.stringify(plain(v)).slice(0, 80);
}

// Names come from the file: control characters are shown escaped, never sent to a terminal as they are.
function quote(s: string): string {
  return `'${JSON.stringify(s.slice(0, 80)).slice(1, -1)}'`;
}

// The values of `bytes` (n elements of dtype, little-endian) into out[0, n), through typed-array views: whole chunks
// converted natively rather than an element at a time. Views need aligned offsets; unaligned bytes are copied first.
function decodeInto(dtype: Dtype, bytes: Buffer, n: number, out: Float64Array): void {
  if (!LITTLE_ENDIAN) throw new Error('safetensors data is little-endian; this reader needs a little-endian host');
  const size = DTYPE_SIZE[dtype];
  const aligned = (bytes.byteOffset % size === 0 ? bytes : Uint8Array.prototype.slice.call(bytes)) as Uint8Array;
  const { buffer, byteOffset } = aligned;
  const View = VIEWS[dtype];
  if (View) {
    out.set(new View(buffer, byteOffset, n));
    return;
  }
  switch (dtype) {
    case 'BOOL': {
      const v = new Uint8Array(buffer, byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = v[i] ? 1 : 0;
      break;
    }
    case 'I64': {
      const v = new BigInt64Array(buffer, byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = Number(v[i]);
      break;
    }
    case 'F16': {
      const v = new Uint16Array(buffer, byteOffset, n);
      const table = halfTable();
      for (let i = 0; i < n; i++) out[i] = table[v[i]];
      break;
    }
    case 'BF16': {
      // A bfloat16 is the top half of a float32: widened in a scratch array, then converted as F32.
      const v = new Uint16Array(buffer, byteOffset, n);
      const wide = new Uint32Array(n);
      for (let i = 0; i < n; i++) wide[i] = v[i] << 16;
      out.set(new Float32Array(wide.buffer, 0, n));
      break;
    }
  }
}

// Every float16 bit pattern's value, built on first use (512 KiB).
let halves: Float64Array | undefined;
function halfTable(): Float64Array {
  if (!halves) {
    halves = new Float64Array(65536);
    for (let bits = 0; bits < 65536; bits++) halves[bits] = half(bits);
  }
  return halves;
}

function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}
