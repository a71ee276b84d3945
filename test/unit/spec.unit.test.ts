// The spec schema: defaults, and messages that name the field, the expectation and the value.
import { describe, expect, it } from 'vitest';
import { formatIssues, validateSpec } from '../../lib/spec';

describe('spec', () => {
  it('a minimal spec gets every documented default', () => {
    const r = validateSpec({ name: 'seed-mlp' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.spec).toEqual({
      name: 'seed-mlp',
      model: './model.py',
      params: {},
      train: { epochs: 10, batch_size: 32, optimizer: 'adam', lr: 0.001, loss: 'mse', seed: 0 },
      trace: { batch_sizes: [1, 7], mode: 'trace', target_device: 'cpu' },
      optimize: { method: 'freeze' },
      fusion: { require: 'none' },
      parity: { runtimes: ['python', 'libtorch'], atol: 1e-5, rtol: 1e-4 },
      promote: { alias: 'production', approval: 'none' },
    });
  });

  it('a negative learning rate is named with its path and value', () => {
    const r = validateSpec({ name: 'm', train: { lr: -1 } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatIssues(r.issues)).toBe('train.lr: train.lr must be a positive number (got -1)');
  });

  it('names, runtimes, batch sizes and unknown fields are checked', () => {
    const r = validateSpec({ name: '../x', parity: { runtimes: ['onnx'] }, trace: { batch_sizes: [0] }, trian: {} });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = formatIssues(r.issues);
    expect(text).toContain('name: name must match [a-z0-9][a-z0-9._-]{0,63} (got "../x")');
    expect(text).toContain('parity.runtimes.0: parity.runtimes entries must be one of python, libtorch (got "onnx")');
    expect(text).toContain('trace.batch_sizes.0: trace.batch_sizes[] must be a positive integer (got 0)');
    expect(text).toContain("(root): unknown field(s) 'trian'");
  });

  it('an empty batch_sizes list is allowed for inputs without a batch dimension', () => {
    const r = validateSpec({ name: 'm', trace: { batch_sizes: [] } });
    expect(r.ok && r.spec.trace.batch_sizes).toEqual([]);
  });
});
