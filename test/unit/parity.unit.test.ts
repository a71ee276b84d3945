// Output comparison and the safetensors reader, on hand-built files.
import { describe, expect, it } from 'vitest';
import { compareOutputs } from '../../lib/parity/parity';
import { HISTOGRAM_EDGES, histogramBin, histogramBinBySearch } from '../../lib/parity/report';
import { encodeSafetensors, parseSafetensors, type SafetensorsFile } from '../../lib/parity/safetensors';

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

  it('a finite output where the reference is NaN or Inf fails, as torch.isclose and compare.py say; the same NaN or Inf passes', () => {
    const cmp = compareOutputs(file([1, NaN]), file([1, 0]), 1e-5, 1e-4, 'python');
    expect(cmp).toMatchObject({ passed: false, code: 'tolerance_exceeded' });
    expect(cmp.message).toBe(
      "python: output 'validation/output/0' is finite where the reference is NaN or Inf; expected the same non-finite value",
    );
    expect(compareOutputs(file([NaN, Infinity, -Infinity]), file([NaN, Infinity, -Infinity]), 1e-5, 1e-4, 'python').passed).toBe(true);
    expect(compareOutputs(file([Infinity]), file([-Infinity]), 1e-5, 1e-4, 'python').code).toBe('non_finite_output');
  });

  it('large outputs are compared a chunk at a time: a difference in the last element, past the first chunk, is found', () => {
    const n = (1 << 20) * 2 + 3;
    const ref = Array.from({ length: n }, (_, i) => (i % 1000) / 7);
    const off = [...ref];
    off[n - 1] += 0.5;
    const cmp = compareOutputs(file(ref), file(off), 1e-5, 1e-4, 'libtorch');
    expect(cmp).toMatchObject({ passed: false, code: 'tolerance_exceeded', max_abs_error: expect.closeTo(0.5, 9) });
    expect(cmp.outputs[0].elements).toBe(n);
    expect(cmp.histogram.reduce((a, b) => a + b, 0)).toBe(n);
    expect(compareOutputs(file(ref), file(ref), 1e-5, 1e-4, 'libtorch').histogram[0]).toBe(n);
  });
});

describe('safetensors decoding', () => {
  // One tensor of each dtype, its data starting at an odd offset (header padded with spaces), so that typed views
  // cannot be taken in place.
  function raw(tensors: [string, string, Buffer][], pad: number): Buffer {
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, dtype, bytes] of tensors) {
      header[name] = {
        dtype,
        shape: [bytes.length / { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2 }[dtype]!],
        data_offsets: [offset, offset + bytes.length],
      };
      offset += bytes.length;
    }
    const json = JSON.stringify(header);
    const text = Buffer.from(json + ' '.repeat(pad));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(text.length));
    return Buffer.concat([len, text, ...tensors.map(([, , b]) => b)]);
  }
  const u16 = (...bits: number[]) => Buffer.from(new Uint16Array(bits).buffer);
  const tensors: [string, string, Buffer][] = [
    ['f16', 'F16', u16(0x3c00, 0xc000, 0x7c00, 0xfc00, 0x0001, 0x7e00, 0x8000)],
    ['bf16', 'BF16', u16(0x3f80, 0xc000, 0x7f80, 0xff80, 0x7fc0, 0x0001)],
    ['f64', 'F64', Buffer.from(new Float64Array([1.5, -0.1, Number.MAX_VALUE]).buffer)],
    ['f32', 'F32', Buffer.from(new Float32Array([0.1, -3, 2 ** -149]).buffer)],
    ['i64', 'I64', Buffer.from(new BigInt64Array([-5n, 2n ** 53n, -(2n ** 62n)]).buffer)],
    ['i32', 'I32', Buffer.from(new Int32Array([-(2 ** 31), 7]).buffer)],
    ['i16', 'I16', Buffer.from(new Int16Array([-32768, 32767]).buffer)],
  ];
  const want: Record<string, number[]> = {
    f16: [1, -2, Infinity, -Infinity, 2 ** -24, NaN, -0],
    bf16: [1, -2, Infinity, -Infinity, NaN, 2 ** -133],
    f64: [1.5, -0.1, Number.MAX_VALUE],
    f32: [Math.fround(0.1), -3, 2 ** -149],
    i64: [-5, 2 ** 53, -(2 ** 62)],
    i32: [-(2 ** 31), 7],
    i16: [-32768, 32767],
  };

  it.each([0, 1, 2, 3, 5])('every dtype decodes the same whole and a chunk at a time, the data %i bytes past alignment', (pad) => {
    const f = parseSafetensors(raw(tensors, pad));
    for (const [name, values] of Object.entries(want)) {
      const t = f.tensors.get(name)!;
      expect(t.count).toBe(values.length);
      expect([...t.values]).toEqual(values);
      const out = new Float64Array(8).fill(99);
      t.read(1, values.length - 1, out);
      expect([...out.subarray(0, values.length - 1)]).toEqual(values.slice(1));
    }
  });

  it('a subset of a file encodes to a file the reader takes back, its data section aligned to 8 bytes', () => {
    const f = parseSafetensors(raw(tensors, 3));
    const kept = [...f.tensors].filter(([name]) => name !== 'f64');
    const buf = encodeSafetensors(kept, { cases: 'validation' });
    expect(Number(buf.readBigUInt64LE(0)) % 8).toBe(0);
    const back = parseSafetensors(buf);
    expect(back.metadata).toEqual({ cases: 'validation' });
    expect([...back.tensors.keys()]).toEqual(kept.map(([name]) => name));
    for (const [name, t] of kept) {
      expect(back.tensors.get(name)!.dtype).toBe(t.dtype);
      expect(back.tensors.get(name)!.shape).toEqual(t.shape);
      expect([...back.tensors.get(name)!.values]).toEqual([...t.values]);
    }
  });

  it('a read outside the tensor is refused', () => {
    const t = parseSafetensors(raw(tensors, 0)).tensors.get('i16')!;
    expect(() => t.read(1, 2, new Float64Array(2))).toThrow(RangeError);
    expect(() => t.read(0, 2, new Float64Array(1))).toThrow(RangeError);
  });
});

describe('parity histogram', () => {
  it('the bin from the exponent table is the bin from the edge search: at, just below and above every edge, and across the range', () => {
    const values = [0, -0, 5e-324, 2.2e-308, Number.MAX_VALUE, Infinity, NaN, 1, 2, 0.5];
    for (const edge of HISTOGRAM_EDGES) values.push(edge, edge * (1 - 2 ** -52), edge * (1 + 2 ** -52), edge / 2, edge * 2);
    let x = 12345;
    for (let i = 0; i < 20000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      values.push(10 ** ((x / 2147483648) * 40 - 30));
    }
    for (const v of values) expect([v, histogramBin(v)]).toEqual([v, histogramBinBySearch(v)]);
    expect(histogramBin(1e-12)).toBe(2);
    expect(histogramBin(0.999e-12)).toBe(1);
    expect(histogramBin(NaN)).toBe(HISTOGRAM_EDGES.length + 1);
  });
});
