// The shared safetensors vectors (test/vectors/safetensors, docs/trust-safetensors.md) against the TypeScript reader.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkReferences } from '../../lib/spec/references';
import { parseSafetensors, readSafetensors, SafetensorsError } from '../../lib/parity/safetensors';

const DIR = join(__dirname, '..', 'vectors', 'safetensors');

interface Vector {
  file: string;
  valid: boolean;
  about: string;
  code?: string;
  tensors?: { name: string; dtype: string; shape: number[]; hex: string; values: (number | string)[] }[];
  metadata?: Record<string, string>;
}
const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as { vectors: Vector[] };
const special: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

describe('safetensors reader (TypeScript)', () => {
  it.each(manifest.vectors.filter((v) => !v.valid).map((v) => [v.file, v] as const))(
    'safetensors reader rejects %s with its rule code',
    async (_file, vector) => {
      const path = join(DIR, vector.file);
      const err = await readSafetensors(path).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, vector.about).toBeInstanceOf(SafetensorsError);
      expect((err as SafetensorsError).code, (err as Error).message).toBe(vector.code);
      expect((err as Error).message.startsWith(`${path}: `)).toBe(true);
      expect((err as Error).message.endsWith(`(${vector.code})`)).toBe(true);
    },
  );

  it.each(manifest.vectors.filter((v) => v.valid).map((v) => [v.file, v] as const))(
    'safetensors reader returns the tensors and metadata of %s',
    async (_file, vector) => {
      const file = await readSafetensors(join(DIR, vector.file));
      expect(file.metadata).toEqual(vector.metadata);
      expect([...file.tensors.keys()]).toEqual(vector.tensors!.map((t) => t.name));
      for (const want of vector.tensors!) {
        const got = file.tensors.get(want.name)!;
        expect(got.dtype).toBe(want.dtype);
        expect(got.shape).toEqual(want.shape);
        expect([...got.values]).toEqual(want.values.map((v) => (typeof v === 'string' ? special[v] : v)));
      }
    },
  );

  it('safetensors reader rejects a file whose tensor claims 4 KB of data it does not have, instead of inventing values', () => {
    const header = Buffer.from('{"a":{"dtype":"F32","shape":[1024],"data_offsets":[0,0]}}');
    const buf = Buffer.concat([Buffer.alloc(8), header]);
    buf.writeBigUInt64LE(BigInt(header.length));
    expect(() => parseSafetensors(buf, 'refs.safetensors')).toThrow(
      "refs.safetensors: tensor 'a' has data_offsets [0, 0] spanning 0 bytes; dtype F32 and shape [1024] need 4096 (st_tensor_size_mismatch)",
    );
  });

  it('references check names the file and the rule broken by an overlapping references file', () => {
    const path = join(DIR, 'invalid-layout-same-bytes.safetensors');
    expect(() => checkReferences('references', path)).toThrow(
      `references: '${path}' is not a readable safetensors file: ${path}: tensor 'b' begins at 0 but the previous tensor ends at 4: it overlaps the tensor before it (st_tensors_not_contiguous)`,
    );
  });
});
