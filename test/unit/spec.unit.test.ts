// The spec schema: defaults, and messages that name the field, the expectation and the value.
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CARD_LIMITS, formatIssues, SPEC_LIMITS, validateSpec } from '../../lib/spec/spec';

describe('spec', () => {
  it('a minimal spec gets every documented default', () => {
    const r = validateSpec({ name: 'seed-mlp' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.spec).toEqual({
      name: 'seed-mlp',
      model: './model.py',
      formats: ['torchscript'],
      params: {},
      train: { epochs: 10, batch_size: 32, optimizer: 'adam', lr: 0.001, loss: 'mse', seed: 0 },
      trace: { batch_sizes: [1, 7], mode: 'trace', target_device: 'cpu' },
      optimize: { method: 'freeze' },
      fusion: { require: 'none' },
      parity: { runtimes: ['python', 'libtorch'], atol: 1e-5, rtol: 1e-4 },
      promote: { alias: 'production', approval: 'none' },
    });
  });

  it('formats are torchscript, aoti and onnx, each once, and a foreign archive is TorchScript only', () => {
    expect(validateSpec({ name: 'm', formats: ['torchscript', 'aoti', 'onnx'] }).ok).toBe(true);
    const unknown = validateSpec({ name: 'm', formats: ['tflite'] });
    expect(!unknown.ok && formatIssues(unknown.issues)).toContain(
      'formats.0: formats entries must be one of torchscript, aoti, onnx (got "tflite")',
    );
    const twice = validateSpec({ name: 'm', formats: ['aoti', 'aoti'] });
    expect(!twice.ok && formatIssues(twice.issues)).toContain('formats must list each format once; "aoti" appears more than once');
    const foreign = validateSpec({ name: 'm', artifact: 'a.pt', references: 'r.safetensors', formats: ['onnx'] });
    expect(foreign.ok).toBe(false);
    if (foreign.ok) return;
    expect(formatIssues(foreign.issues)).toContain('formats: formats: a foreign artifact is a TorchScript archive');
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
    expect(text).toContain(
      'parity.runtimes.0: parity.runtimes entries must be one of python, libtorch, optionally @ENVIRONMENT (python@torch-1.13) (got "onnx")',
    );
    expect(text).toContain('trace.batch_sizes.0: trace.batch_sizes[] must be a positive integer no larger than 65536 (got 0)');
    expect(text).toContain("(root): unknown field(s) 'trian'");
  });

  it('an empty batch_sizes list is allowed for inputs without a batch dimension', () => {
    const r = validateSpec({ name: 'm', trace: { batch_sizes: [] } });
    expect(r.ok && r.spec.trace.batch_sizes).toEqual([]);
  });

  // Anything the torch side would refuse or fail on is refused here first, before training, with the field named.
  // [what, the spec as YAML, the field, the whole line formatIssues prints for it]
  const refused: [string, string, string, string][] = [
    [
      'a batch size listed twice',
      'trace: { batch_sizes: [1, 7, 1] }',
      'trace.batch_sizes',
      'trace.batch_sizes: trace.batch_sizes must list each size once; 1 appears more than once (got [1,7,1])',
    ],
    [
      'a batch size above the bound',
      'trace: { batch_sizes: [1, 1000000000] }',
      'trace.batch_sizes.1',
      'trace.batch_sizes.1: trace.batch_sizes[] must be a positive integer no larger than 65536 (got 1000000000)',
    ],
    [
      'the ten-million batch size that cost 2.2 GB (issue 14)',
      'trace: { batch_sizes: [10000000] }',
      'trace.batch_sizes.0',
      'trace.batch_sizes.0: trace.batch_sizes[] must be a positive integer no larger than 65536 (got 10000000)',
    ],
    [
      'a training batch size above the bound',
      'train: { batch_size: 10000000 }',
      'train.batch_size',
      'train.batch_size: train.batch_size must be a positive integer no larger than 65536 (got 10000000)',
    ],
    [
      'a runtime listed twice',
      'parity: { runtimes: [python, libtorch, python] }',
      'parity.runtimes',
      'parity.runtimes: parity.runtimes must list each runtime once; "python" appears more than once (got ["python","libtorch","python"])',
    ],
    [
      'an atol that lets any output pass',
      'parity: { atol: 1.0e300 }',
      'parity.atol',
      'parity.atol: parity.atol must be a finite number from 0 to 1 (got 1e+300)',
    ],
    [
      'an infinite atol',
      'parity: { atol: .inf }',
      'parity.atol',
      'parity.atol: parity.atol must be a finite number from 0 to 1 (got Infinity)',
    ],
    ['an rtol above 1', 'parity: { rtol: 2 }', 'parity.rtol', 'parity.rtol: parity.rtol must be a finite number from 0 to 1 (got 2)'],
    ['a NaN rtol', 'parity: { rtol: .nan }', 'parity.rtol', 'parity.rtol: parity.rtol must be a finite number from 0 to 1 (got NaN)'],
    [
      'epochs that would never end',
      'train: { epochs: 1e12 }',
      'train.epochs',
      'train.epochs: train.epochs must be a positive integer no larger than 10000 (got 1000000000000)',
    ],
    ['a NaN learning rate', 'train: { lr: .nan }', 'train.lr', 'train.lr: train.lr must be a positive number (got NaN)'],
    [
      'a seed beyond what a JSON number carries exactly',
      'train: { seed: 12345678901234567890 }',
      'train.seed',
      'train.seed: train.seed must be an integer from 0 to 9007199254740991 (got 12345678901234567000)',
    ],
    [
      'an infinite number in params',
      'params: { scale: .inf }',
      'params.scale',
      'params.scale: params.scale must be JSON data (null, a boolean, a finite number, a string, a list or a mapping) (got Infinity)',
    ],
    [
      'a NaN deep inside params',
      'params: { layers: [{ dropout: .nan }] }',
      'params.layers.0.dropout',
      'params.layers.0.dropout: params.layers.0.dropout must be JSON data (null, a boolean, a finite number, a string, a list or a mapping) (got NaN)',
    ],
    [
      'binary data in params',
      'params: { blob: !!binary aGVsbG8= }',
      'params.blob',
      'params.blob: params.blob must be JSON data (null, a boolean, a finite number, a string, a list or a mapping) (got binary data of 5 bytes)',
    ],
    [
      'a timestamp in params',
      'params: { since: !!timestamp 2001-12-14 }',
      'params.since',
      'params.since: params.since must be JSON data (null, a boolean, a finite number, a string, a list or a mapping) (got the timestamp 2001-12-14T00:00:00.000Z)',
    ],
    [
      'an approval timeout without approval',
      'promote: { approval_timeout: 2h }',
      'promote.approval_timeout',
      'promote.approval_timeout: promote.approval_timeout applies only with promote.approval: required (approval is none: nothing waits) (got "2h")',
    ],
    [
      'an approval timeout of zero',
      'promote: { approval: required, approval_timeout: 0s }',
      'promote.approval_timeout',
      'promote.approval_timeout: promote.approval_timeout must be longer than 0, such as 30m, 2h or 7d (got "0s")',
    ],
  ];

  it.each(refused)('%s is refused with the field, what was expected and what came', (_what, yaml, field, line) => {
    const r = validateSpec(parseYaml(`name: m\n${yaml}`));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path)).toEqual([field]);
    expect(formatIssues(r.issues)).toBe(line);
  });

  it('an approval timeout without approval is reported alongside issues in other sections', () => {
    const r = validateSpec({ name: 'm', train: { lr: -1 }, promote: { approval_timeout: '2h' } });
    expect(r.ok ? [] : r.issues.map((i) => i.path)).toEqual(['train.lr', 'promote.approval_timeout']);
  });

  it('a spec that is not a mapping is refused as a whole', () => {
    const r = validateSpec([1, 2]);
    expect(!r.ok && formatIssues(r.issues)).toBe('(root): a spec must be a mapping of fields (name, model, train, trace, …) (got [1,2])');
  });

  it('values at the documented bounds are accepted, and so is what JSON carries in params', () => {
    const r = validateSpec(
      parseYaml(`
name: m
params: { hidden: [8, 16], dropout: 0.2, label: "x", on: true, none: null, big: 1.0e300, date: 2001-12-14 }
train: { epochs: ${SPEC_LIMITS.epochs}, batch_size: ${SPEC_LIMITS.trainBatchSize} }
trace: { batch_sizes: [1, ${SPEC_LIMITS.traceBatchSize}] }
parity: { runtimes: [libtorch, python], atol: ${SPEC_LIMITS.tolerance}, rtol: 0 }
promote: { approval: required, approval_timeout: 0.5h }
`),
    );
    expect(r.ok ? null : formatIssues(r.issues)).toBeNull();
    expect(r.ok && r.spec.params.date).toBe('2001-12-14'); // YAML 1.2: a date without a tag stays a string
  });

  it('a cuda target device stays valid: parity on CPU does not make a GPU deployment wrong', () => {
    expect(validateSpec({ name: 'm', trace: { target_device: 'cuda:1' } }).ok).toBe(true);
  });

  it('trace.accept_captures takes FILE:LINE entries and names a malformed or repeated one with its value', () => {
    const ok = validateSpec({ name: 'm', trace: { accept_captures: ['model.py:22', 'helpers.py:7'] } });
    expect(ok.ok && ok.spec.trace.accept_captures).toEqual(['model.py:22', 'helpers.py:7']);
    const bad = (value: unknown) => {
      const r = validateSpec({ name: 'm', trace: { accept_captures: value } });
      return r.ok ? null : formatIssues(r.issues);
    };
    expect(bad(['model.py'])).toContain(
      'trace.accept_captures entries must be FILE:LINE, a model file name and a line number such as model.py:22 (got "model.py")',
    );
    expect(bad(['src/model.py:3'])).toContain('(got "src/model.py:3")');
    expect(bad(['model.py:0'])).toContain('(got "model.py:0")');
    expect(bad([22])).toContain('trace.accept_captures entries must be FILE:LINE');
    expect(bad('model.py:22')).toContain('trace.accept_captures must be a list of FILE:LINE strings');
    expect(bad(['model.py:22', 'model.py:22'])).toContain('"model.py:22" appears more than once');
  });

  it('a spec without trace.accept_captures keeps no such key, so its digest stays what it was', () => {
    const r = validateSpec({ name: 'm' });
    expect(r.ok && 'accept_captures' in r.spec.trace).toBe(false);
  });

  it('card: takes intended_use, limitations as a string or a list, and owners; a spec without it keeps no such key', () => {
    const none = validateSpec({ name: 'm' });
    expect(none.ok && 'card' in none.spec).toBe(false);
    const one = validateSpec({ name: 'm', card: { intended_use: 'demo', limitations: 'toy data', owners: ['ml@example.com'] } });
    expect(one.ok && one.spec.card).toEqual({ intended_use: 'demo', limitations: 'toy data', owners: ['ml@example.com'] });
    const list = validateSpec({ name: 'm', card: { limitations: ['a | b', '<script>x</script>'] } });
    expect(list.ok && list.spec.card).toEqual({ limitations: ['a | b', '<script>x</script>'] });
  });

  it('card: names the field, the value and what was expected for each malformed entry', () => {
    const bad = (card: unknown) => {
      const r = validateSpec({ name: 'm', card });
      return r.ok ? null : formatIssues(r.issues);
    };
    expect(bad({ intended_use: 3 })).toBe(
      'card.intended_use: card.intended_use must be a string saying what the model is for, from 1 to 4000 characters (got 3)',
    );
    expect(bad({ intended_use: '' })).toContain(
      'card.intended_use must be a string saying what the model is for, from 1 to 4000 characters (got "")',
    );
    expect(bad({ intended_use: 'x'.repeat(CARD_LIMITS.text + 1) })).toContain('from 1 to 4000 characters (got "xxx');
    expect(bad({ limitations: 5 })).toBe(
      'card.limitations: card.limitations must be a string, or a list of strings (one limitation each) (got 5)',
    );
    expect(bad({ limitations: [''] })).toBe('card.limitations.0: card.limitations[] must be a string, from 1 to 1000 characters (got "")');
    expect(bad({ limitations: Array.from({ length: 51 }, (_, i) => `l${i}`) })).toContain(
      'card.limitations must list at most 50 limitations',
    );
    expect(bad({ owners: 'me' })).toBe(
      'card.owners: card.owners must be a list of the people or teams who answer for the model, such as [ml-team@example.com] (got "me")',
    );
    expect(bad({ owners: ['a', 'a'] })).toContain('card.owners must list each owner once; "a" appears more than once');
    expect(bad({ owners: [7] })).toBe('card.owners.0: card.owners[] must be a name or address, from 1 to 200 characters (got 7)');
    expect(bad({ owner: ['a'] })).toBe(`card: unknown field(s) 'owner' (got {"owner":["a"]})`);
    expect(bad('for demos')).toBe('card: card must be a mapping of intended_use, limitations and owners (got "for demos")');
  });
});
