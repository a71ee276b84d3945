// Hostile references files (docs/trust-safetensors.md): a file that breaks a safetensors rule is bad input, rejected
// with the rule's code before anything is stored or started.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { mustRun, repoRoot, runTtd, tempDir, testEnv } from '../helpers';

const makePython = join(repoRoot, 'test', 'fixtures', 'foreign', 'make_python_artifact.py');

/** A safetensors file with this header (as written) and data section. */
function file(header: object, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

/** Runs `ttd run` on a real traced archive with these references; returns the run and its TTD_HOME. */
async function runWithReferences(refs: Buffer) {
  const dir = tempDir();
  await mustRun('/usr/bin/python3', [makePython, dir]);
  writeFileSync(join(dir, 'refs.safetensors'), refs);
  writeFileSync(join(dir, 'pipeline.yaml'), 'name: hostile-refs\nartifact: ./model.pt\nreferences: ./refs.safetensors\n');
  const home = tempDir();
  const run = await runTtd(['run', join(dir, 'pipeline.yaml'), '--json'], testEnv(home, inject('temporalAddress')));
  return { run, home };
}

describe('hostile safetensors references', () => {
  it('references whose output claims 64 bytes at begin == end are rejected, not read as uninitialised memory', async () => {
    const refs = file(
      {
        input: { dtype: 'F32', shape: [16, 3], data_offsets: [0, 192] },
        output: { dtype: 'F32', shape: [16, 1], data_offsets: [192, 192] },
      },
      Buffer.alloc(192),
    );
    const { run, home } = await runWithReferences(refs);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('references_invalid');
    expect(run.stderr).toContain(
      "tensor 'output' has data_offsets [192, 192] spanning 0 bytes; dtype F32 and shape [16, 1] need 64 (st_tensor_size_mismatch)",
    );
    expect(existsSync(join(home, 'store'))).toBe(false);
  });

  it('references whose input and output share the same bytes are rejected with the layout rule', async () => {
    const refs = file(
      {
        input: { dtype: 'F32', shape: [16, 1], data_offsets: [0, 64] },
        output: { dtype: 'F32', shape: [16, 1], data_offsets: [0, 64] },
      },
      Buffer.alloc(64),
    );
    const { run, home } = await runWithReferences(refs);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('references_invalid');
    expect(run.stderr).toContain(
      "tensor 'output' begins at 0 but the previous tensor ends at 64: it overlaps the tensor before it (st_tensors_not_contiguous)",
    );
    expect(existsSync(join(home, 'store'))).toBe(false);
  });
});
