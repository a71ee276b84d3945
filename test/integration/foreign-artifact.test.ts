// Foreign artifacts (the seed's R case): a TorchScript archive and its references, made by another program,
// verified, checked in both runtimes and promoted without training or tracing.
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { command, mustRun, repoRoot, runTtd, tempDir, testEnv } from '../helpers';

const makePython = join(repoRoot, 'test', 'fixtures', 'foreign', 'make_python_artifact.py');
const makeCpp = join(repoRoot, 'build', 'libtorch', 'ttd-make-foreign-artifact');

/** Writes a spec beside the artifact; `form` chooses `artifact:` or a `model:` that names the archive. */
function foreignSpec(dir: string, name: string, form: 'artifact' | 'model' = 'artifact', extra = ''): string {
  const path = join(dir, 'pipeline.yaml');
  writeFileSync(path, `name: ${name}\n${form}: ./model.pt\nreferences: ./refs.safetensors\n${extra}`);
  return path;
}

describe('foreign artifacts', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));

  it('an archive and references made by a separate Python process are verified and promoted without training', async () => {
    const dir = tempDir();
    await mustRun('/usr/bin/python3', [makePython, dir]);
    const run = await runTtd(['run', foreignSpec(dir, 'from-python'), '--json'], env());
    expect(run.code, run.stderr).toBe(0);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.gates.map((g) => [g.gate, g.passed])).toEqual([
      ['trace', true],
      ['parity', true],
      ['promotion', true],
    ]);
    expect(Object.keys(result.timings)).toEqual(['signing_key', 'verify', 'store', 'parity', 'sign', 'promote']);
    expect(result.parity).toHaveLength(2); // python and libtorch as their servers run them: no LLVM, no fused run
    // The exact bytes the user made are what is promoted.
    const pulled = join(tempDir(), 'pulled.pt');
    expect((await runTtd(['pull', 'from-python@production', '-o', pulled], env())).code).toBe(0);
    expect((await command('cmp', [pulled, join(dir, 'model.pt')])).code).toBe(0);
    const shown = JSON.parse((await runTtd(['show', 'from-python@production', '--json'], env())).stdout);
    expect(shown.reports.trace.mode).toBe('foreign');
    expect(shown.reports.training).toBeUndefined();
    expect(shown.files.sourceReferences).toMatch(/^sha256:/);
  });

  it('an archive made by a small libtorch C++ program is verified and promoted, given as model:', async () => {
    const dir = tempDir();
    await mustRun(makeCpp, [dir]);
    const run = await runTtd(['run', foreignSpec(dir, 'from-cpp', 'model'), '--json'], env());
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).status).toBe('promoted');
  });

  it('an archive traced in train mode is rejected at the trace gate, telling an R user to call model$eval()', async () => {
    const dir = tempDir();
    await mustRun('/usr/bin/python3', [makePython, dir, '--train-mode']);
    const run = await runTtd(['run', foreignSpec(dir, 'train-mode'), '--json'], env());
    expect(run.code, run.stderr).toBe(1);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.gates).toEqual([
      { gate: 'trace', passed: false, code: 'train_mode_ops', message: expect.stringContaining('model$eval()') },
    ]);
    expect(existsSync(join(home, 'store', 'registry', 'train-mode.json'))).toBe(false);
  });

  it('references that the archive does not reproduce are rejected with the numbers', async () => {
    const a = tempDir();
    const b = tempDir();
    await mustRun('/usr/bin/python3', [makePython, a]);
    await mustRun(makeCpp, [b]);
    copyFileSync(join(b, 'refs.safetensors'), join(a, 'refs.safetensors')); // another model's references
    const run = await runTtd(['run', foreignSpec(a, 'mismatch'), '--json'], env());
    const result: RunResult = JSON.parse(run.stdout);
    expect(run.code, run.stderr).toBe(1);
    expect(result.gates).toHaveLength(1);
    expect(result.gates[0]).toMatchObject({ gate: 'trace', passed: false, code: 'reference_mismatch' });
    expect(result.gates[0].message).toMatch(/case batch: max abs error \d/);
  });

  it('references with names we do not understand are bad input: exit 2 before anything starts', async () => {
    const dir = tempDir();
    await mustRun('/usr/bin/python3', [makePython, dir]);
    // A valid safetensors file whose one tensor is called 'weights'.
    const header = Buffer.from(JSON.stringify({ weights: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(dir, 'refs.safetensors'), Buffer.concat([len, header, Buffer.alloc(4)]));
    const home2 = tempDir();
    const run = await runTtd(['run', foreignSpec(dir, 'bad-refs'), '--json'], testEnv(home2, inject('temporalAddress')));
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('references_invalid');
    expect(run.stderr).toContain("tensor names 'weights' are not understood; expected reference inputs and outputs named input/output");
    expect(existsSync(join(home2, 'store'))).toBe(false);
  });

  it('a spec with both model and artifact, or an artifact without references, names the problem', async () => {
    const dir = tempDir();
    await mustRun('/usr/bin/python3', [makePython, dir]);
    writeFileSync(join(dir, 'both.yaml'), 'name: both\nmodel: ./model.py\nartifact: ./model.pt\nreferences: ./refs.safetensors\n');
    const both = await runTtd(['run', join(dir, 'both.yaml')], env());
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('artifact: set either model (a Python file to train) or artifact (a TorchScript archive), not both');
    writeFileSync(join(dir, 'norefs.yaml'), 'name: norefs\nartifact: ./model.pt\n');
    const norefs = await runTtd(['run', join(dir, 'norefs.yaml')], env());
    expect(norefs.code).toBe(2);
    expect(norefs.stderr).toContain('references: an artifact needs references');
  });
});
