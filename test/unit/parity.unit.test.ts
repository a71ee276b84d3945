// Output comparison and the safetensors reader, on hand-built files.
import { describe, expect, it } from 'vitest';
import { compareOutputs } from '../../lib/parity/parity';
import { parseSafetensors, type SafetensorsFile } from '../../lib/parity/safetensors';

/** Builds a safetensors file of F32 tensors (the format is small enough to write in a test). */
function build(tensors: Record<string, { shape: number[]; values: number[] }>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const buf = Buffer.alloc(t.values.length * 4);
    t.values.forEach((v, i) => buf.writeFloatLE(v, i * 4));
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + buf.length] };
    offset += buf.length;
    chunks.push(buf);
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...chunks]);
}
const file = (values: number[], shape = [values.length]): SafetensorsFile =>
  parseSafetensors(build({ 'validation/input/0': { shape, values }, 'validation/output/0': { shape, values } }, { cases: 'validation' }));

describe('safetensors', () => {
  it('reads tensors and metadata', () => {
    const f = file([1, -2.5, 3], [3]);
    expect(f.metadata).toEqual({ cases: 'validation' });
    expect([...f.tensors.get('validation/output/0')!.values]).toEqual([1, -2.5, 3]);
  });

  it('rejects offsets that do not fit the shape', () => {
    const bad = build({ x: { shape: [2], values: [1, 2] } });
    const text = bad.toString('latin1').replace('"shape":[2]', '"shape":[3]');
    expect(() => parseSafetensors(Buffer.from(text, 'latin1'), 'bad.safetensors')).toThrow(
      "bad.safetensors: tensor 'x' has data_offsets [0, 8] spanning 8 bytes; dtype F32 and shape [3] need 12 (st_tensor_size_mismatch)",
    );
  });
});

describe('parity comparison', () => {
  it('equal outputs pass with zero error', () => {
    const cmp = compareOutputs(file([1, 2]), file([1, 2]), 1e-5, 1e-4, 'python');
    expect(cmp).toMatchObject({ passed: true, code: null, max_abs_error: 0 });
  });

  it('an output beyond atol + rtol·|ref| fails naming the runtime, the output, the measured and the allowed error', () => {
    const cmp = compareOutputs(file([1, 2]), file([1, 2.01]), 1e-5, 1e-4, 'libtorch');
    expect(cmp.passed).toBe(false);
    expect(cmp.code).toBe('tolerance_exceeded');
    expect(cmp.message).toMatch(
      /^libtorch: output 'validation\/output\/0' differs by up to 1\.00\de-2 \(relative 5\.00\de-3\), allowed atol 0\.00001 \+ rtol 0\.0001·\|reference\|$/,
    );
  });

  it('a shape difference and a NaN are their own codes', () => {
    expect(compareOutputs(file([1, 2]), file([1, 2, 3]), 1e-5, 1e-4, 'python').code).toBe('shape_mismatch');
    expect(compareOutputs(file([1, 2]), file([1, NaN]), 1e-5, 1e-4, 'python').code).toBe('non_finite_output');
  });
});
