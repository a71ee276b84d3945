// The torch ops' contract: one definition (lib/contract/ops.ts), the JSON Schema the torch side checks generated from it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { contractJsonSchema, stageOutputSchema, TorchOps } from '../../lib/contract/ops';

describe('the torch contract', () => {
  it('the committed runtimes/python/ttd_torch/contract.json is what lib/contract/ops.ts generates (run make setup after a change)', () => {
    const committed = JSON.parse(readFileSync(join(__dirname, '..', '..', 'runtimes', 'python', 'ttd_torch', 'contract.json'), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(contractJsonSchema())));
  });

  it('verify accepts an empty batch_sizes list (an unbatched example) and refuses a non-positive size, naming the path', () => {
    const base = {
      model_path: '/m.py',
      params: {},
      weights_path: '/w.pt',
      traced_path: '/t.pt',
      atol: 1e-5,
      rtol: 1e-4,
      captures: [],
      target_device: 'cpu',
      out_dir: '/tmp',
    };
    expect(TorchOps.verify.args.safeParse({ ...base, batch_sizes: [] }).success).toBe(true);
    const bad = TorchOps.verify.args.safeParse({ ...base, batch_sizes: [1, 0] });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['batch_sizes', 1]);
  });

  it('a result with a field the contract does not name is refused, so the two sides cannot drift apart', () => {
    const ok = { protocol: 1, torch_version: '1.13.0', python_version: '3.11.2' };
    expect(TorchOps.hello.result.safeParse(ok).success).toBe(true);
    expect(TorchOps.hello.result.safeParse({ ...ok, extra: 1 }).success).toBe(false);
  });

  it('a stage output is the op result without scratch paths, with the stored files by role', () => {
    const output = {
      files: { traced: `sha256:${'a'.repeat(64)}` },
      example_shapes: [[4, 3]],
      nodes: { 'aten::linear': 3 },
      node_total: 3,
      warnings: [],
      captures: [],
      mode: 'trace',
    };
    expect(stageOutputSchema('trace').safeParse(output).success).toBe(true);
    expect(stageOutputSchema('trace').safeParse({ ...output, node_total: -1 }).success).toBe(false);
  });
});
