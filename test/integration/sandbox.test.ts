// The sandbox of code we did not write (docs/trust.md): a foreign archive that writes or reads a host file while it is
// verified is rejected with sandbox_refused and the file is untouched; a model file that raises the worker's secret
// puts it in neither the run's result, its workflow history nor its report; without bwrap a run fails clearly.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, mustRun, quickSeedSpec, repoRoot, runTtd, tempDir, testEnv, writeSpec } from '../helpers';

const makeHostile = join(repoRoot, 'test', 'fixtures', 'foreign', 'make_hostile_artifact.py');
const HOST_TEXT = `host file of the sandbox test ${randomUUID()}\n`;

/** A host file outside any work dir, and a hostile archive (with its references and spec) aimed at it. */
async function hostileRun(mode: '--write' | '--read', name: string): Promise<{ spec: string; hostFile: string }> {
  const hostFile = join(tempDir('ttd-host-'), 'host.txt');
  writeFileSync(hostFile, HOST_TEXT);
  const dir = tempDir();
  await mustRun('/usr/bin/python3', [makeHostile, dir, mode, hostFile]);
  const spec = join(dir, 'pipeline.yaml');
  writeFileSync(spec, `name: ${name}\nartifact: ./model.pt\nreferences: ./refs.safetensors\n`);
  return { spec, hostFile };
}

async function history(runId: string): Promise<string> {
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  try {
    return JSON.stringify(await new Client({ connection }).workflow.getHandle(runId).fetchHistory());
  } finally {
    await connection.close();
  }
}

describe('sandbox', () => {
  const home = tempDir();
  const env = (extra: Record<string, string> = {}) => ({ ...testEnv(home, inject('temporalAddress')), ...extra });

  for (const process of ['server', 'fresh'] as const) {
    it(`a foreign archive that maps a host file shared and fills it is rejected with sandbox_refused and the file is unchanged (TTD_TORCH_PROCESS=${process})`, async () => {
      const { spec, hostFile } = await hostileRun('--write', `hostile-write-${process}`);
      const run = await runTtd(['run', spec, '--json'], env({ TTD_TORCH_PROCESS: process }));
      expect(run.code, run.stderr).toBe(1);
      const result: RunResult = JSON.parse(run.stdout);
      expect(result.status).toBe('rejected');
      expect(result.gates).toEqual([
        {
          gate: 'trace',
          passed: false,
          code: 'sandbox_refused',
          message: expect.stringContaining(`the sandbox refused access to '${hostFile}' (No such file or directory)`),
        },
      ]);
      expect(result.gates[0].message).toContain('in read-write mode');
      expect(readFileSync(hostFile, 'utf8')).toBe(HOST_TEXT);
      expect(existsSync(join(home, 'store', 'registry', `hostile-write-${process}.json`))).toBe(false);
    });
  }

  it('a foreign archive that reads a host file is rejected with sandbox_refused, and the file reaches nothing', async () => {
    const { spec, hostFile } = await hostileRun('--read', 'hostile-read');
    const run = await runTtd(['run', spec, '--json'], env());
    expect(run.code, run.stderr).toBe(1);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result).toMatchObject({ status: 'rejected', gates: [{ gate: 'trace', passed: false, code: 'sandbox_refused' }] });
    expect(result.gates[0].message).toContain(`the sandbox refused access to '${hostFile}' (No such file or directory)`);
    expect(result.gates[0].message).toContain('in read-only mode');
    for (const text of [run.stdout, run.stderr, await history(result.runId)]) expect(text).not.toContain(HOST_TEXT.trim());
  });

  it('a model file that raises the worker secret it finds puts it in neither the result, the history nor the report', async () => {
    const secret = `ttd-test-secret-${randomUUID()}`;
    // In the sandbox the model finds no secret at all; without it (TTD_SANDBOX=off) it reads the worker's from /proc,
    // and redaction is what keeps it out.
    for (const [sandbox, shown] of [
      ['on', 'credentials: absent'],
      ['off', 'credentials: [redacted AWS_SECRET_ACCESS_KEY]'],
    ] as const) {
      const spec = writeSpec(tempDir(), quickSeedSpec(`leaks-secret-${sandbox}`), join(fixtureModels, 'leaks-secret.py'));
      const run = await runTtd(['run', spec, '--json'], env({ AWS_SECRET_ACCESS_KEY: secret, TTD_SANDBOX: sandbox }));
      expect(run.code, run.stderr).toBe(2);
      const result: RunResult = JSON.parse(run.stdout);
      expect(result).toMatchObject({ status: 'failed', gates: [{ gate: 'training', passed: false, code: 'model_error' }] });
      expect(result.gates[0].message).toContain(shown);
      const report = join(tempDir(), 'report.html');
      const reported = await runTtd(['report', result.runId, '-o', report], env());
      expect(reported.code, reported.stderr).toBe(0);
      for (const text of [run.stdout, run.stderr, await history(result.runId), readFileSync(report, 'utf8')]) {
        expect(text).not.toContain(secret);
      }
    }
  });

  it('a model file that leaves a symlink to a host file as its weights is rejected with sandbox_refused, and the file is not stored', async () => {
    const hostFile = join(tempDir('ttd-host-'), 'credentials');
    writeFileSync(hostFile, HOST_TEXT);
    const spec = writeSpec(
      tempDir(),
      { ...quickSeedSpec('symlinks-weights'), params: { target: hostFile } },
      join(fixtureModels, 'symlinks-weights.py'),
    );
    const run = await runTtd(['run', spec, '--json'], env());
    expect(run.code, run.stderr).toBe(1);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result).toMatchObject({ status: 'rejected', gates: [{ gate: 'training', passed: false, code: 'sandbox_refused' }] });
    expect(result.gates[0].message).toMatch(/the torch side named '.*\/weights\.pt' as a file it wrote, but it is a symbolic link/);
    // The training checkpoint was stored (so blobs of this run exist), the host file was not.
    const blobs = readdirSync(join(home, 'store', 'blobs', 'sha256'));
    expect(blobs.length).toBeGreaterThan(0);
    expect(blobs).not.toContain(createHash('sha256').update(HOST_TEXT).digest('hex'));
  });

  it('a run on a host whose bwrap is missing is refused before anything starts with sandbox_unavailable, naming TTD_SANDBOX=off', async () => {
    const runHome = tempDir();
    const spec = writeSpec(tempDir(), quickSeedSpec('no-bwrap'), join(repoRoot, 'examples', 'seed-mlp', 'model.py'));
    const run = await runTtd(['run', spec, '--json'], { ...testEnv(runHome, inject('temporalAddress')), TTD_BWRAP: '/nonexistent/bwrap' });
    expect(run.code, run.stderr).toBe(2);
    expect(JSON.parse(run.stdout)).toEqual({
      status: 'failed',
      error: {
        code: 'sandbox_unavailable',
        message:
          "model files and archives run in a bubblewrap sandbox, but '/nonexistent/bwrap' does not exist (install Debian's bubblewrap; make setup does); or set TTD_SANDBOX=off to run them without it (only for code you trust)",
      },
    });
    expect(readdirSync(runHome)).toEqual([]);
  });
});
