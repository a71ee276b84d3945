// A safetensors reader: references and runtime outputs are compared here, never unpickled.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/** Bytes per element of each dtype we read. */
const DTYPE_SIZE = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as const;
export type Dtype = keyof typeof DTYPE_SIZE;

const EntrySchema = z.object({
  dtype: z.enum(Object.keys(DTYPE_SIZE) as [Dtype, ...Dtype[]]),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

/** One tensor: dtype, shape and its values as float64 (ints and bools included). */
export interface Tensor {
  dtype: Dtype;
  shape: number[];
  values: Float64Array;
}

/** A whole file: tensors by name and the string metadata. */
export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Parses safetensors bytes, validating the header against the data. */
export function parseSafetensors(buf: Buffer, where = 'safetensors'): SafetensorsFile {
  if (buf.length < 8) throw new Error(`${where}: file is ${buf.length} bytes, shorter than the 8-byte header length`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > buf.length - 8) throw new Error(`${where}: header length ${headerLen} exceeds the file size ${buf.length}`);
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  const data = buf.subarray(8 + headerLen);
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = z.record(z.string(), z.string()).parse(raw);
      continue;
    }
    const entry = EntrySchema.parse(raw);
    const [begin, end] = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * DTYPE_SIZE[entry.dtype] || end > data.length) {
      throw new Error(
        `${where}: tensor '${name}' has offsets [${begin}, ${end}] that do not fit shape ${JSON.stringify(entry.shape)} of ${entry.dtype}`,
      );
    }
    tensors.set(name, { dtype: entry.dtype, shape: entry.shape, values: decode(entry.dtype, data.subarray(begin, end), count) });
  }
  return { tensors, metadata };
}

/** Reads and parses a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readFile(path), path);
}

function decode(dtype: Dtype, bytes: Buffer, count: number): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case 'F64':
        out[i] = bytes.readDoubleLE(i * 8);
        break;
      case 'F32':
        out[i] = bytes.readFloatLE(i * 4);
        break;
      case 'F16':
        out[i] = half(bytes.readUInt16LE(i * 2));
        break;
      case 'BF16':
        out[i] = bfloat(bytes.readUInt16LE(i * 2));
        break;
      case 'I64':
        out[i] = Number(bytes.readBigInt64LE(i * 8));
        break;
      case 'I32':
        out[i] = bytes.readInt32LE(i * 4);
        break;
      case 'I16':
        out[i] = bytes.readInt16LE(i * 2);
        break;
      case 'I8':
        out[i] = bytes.readInt8(i);
        break;
      case 'U8':
        out[i] = bytes.readUInt8(i);
        break;
      case 'BOOL':
        out[i] = bytes.readUInt8(i) ? 1 : 0;
        break;
    }
  }
  return out;
}

function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function bfloat(bits: number): number {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE((bits << 16) >>> 0);
  return buf.readFloatLE(0);
}
