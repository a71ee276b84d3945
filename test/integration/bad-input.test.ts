// What a user gets wrong: a clear message with a code, the right exit code, and nothing left registered.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, freePort, quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

const address = () => inject('temporalAddress');

async function registeredModels(env: Record<string, string | undefined>): Promise<unknown[]> {
  const listed = await runTtd(['models', '--json'], env);
  expect(listed.code, listed.stderr).toBe(0);
  return JSON.parse(listed.stdout).models;
}

describe('bad input', () => {
  it('a spec that fails the schema exits 2 naming each field, what was expected and what came, and starts nothing', async () => {
    const home = tempDir();
    const dir = tempDir();
    const spec = writeSpec(
      dir,
      { ...quickSeedSpec('Bad Name'), train: { lr: -1, optimizer: 'rmsprop' }, extra: 1 },
      join(seedDir, 'model.py'),
    );
    const run = await runTtd(['run', spec, '--json'], testEnv(home, address()));
    expect(run.code).toBe(2);
    const out = JSON.parse(run.stdout);
    expect(out.status).toBe('failed');
    expect(out.error.code).toBe('spec_invalid');
    expect(run.stderr).toContain('train.lr: train.lr must be a positive number (got -1)');
    expect(run.stderr).toContain('train.optimizer: train.optimizer must be one of adam, sgd (got "rmsprop")');
    expect(run.stderr).toContain('name: name must match [a-z0-9][a-z0-9._-]{0,63} (got "Bad Name")');
    expect(run.stderr).toContain("unknown field(s) 'extra'");
    expect(existsSync(join(home, 'store'))).toBe(false);
  });

  it('a spec whose model file does not exist exits 2 naming the resolved path', async () => {
    const dir = tempDir();
    const spec = join(dir, 'pipeline.yaml');
    writeFileSync(spec, 'name: nofile\nmodel: ./missing.py\n');
    const run = await runTtd(['run', spec], testEnv(tempDir(), address()));
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`model: file './missing.py' (resolved to ${join(dir, 'missing.py')}) does not exist`);
    expect(run.stderr).toContain('[model_file_not_found]');
  });

  it('a model file that raises fails the run at training with the traceback, and registers nothing', async () => {
    const home = tempDir();
    const spec = writeSpec(tempDir(), quickSeedSpec('raises'), join(fixtureModels, 'raises.py'));
    const env = testEnv(home, address());
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code, run.stderr).toBe(2);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.status).toBe('failed');
    expect(result.gates).toHaveLength(1);
    expect(result.gates[0]).toMatchObject({ gate: 'training', passed: false, code: 'model_error' });
    expect(result.gates[0].message).toContain('ValueError: bad layer size');
    expect(result.gates[0].message).toContain('raises.py');
    expect(result.gates[0].message).toMatch(/line \d+/); // the traceback's last lines
    expect(await registeredModels(env)).toEqual([]);
  });

  it.each([
    ['exit', 'server', /exited with status 3/],
    ['segv', 'server', /was killed by SIGSEGV/],
    ['segv', 'fresh', /was killed by SIGSEGV/], // in the sandbox: bwrap's exit status 139, said as the signal
  ])('a model file that ends its own process (%s, %s process) fails as model_crashed after one retry', async (how, mode, said) => {
    const home = tempDir();
    const spec = writeSpec(tempDir(), quickSeedSpec(`crashes-${how}`, { params: { how } }), join(fixtureModels, 'crashes.py'));
    const env = { ...testEnv(home, address()), TTD_TORCH_PROCESS: mode };
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code, run.stderr).toBe(2);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.status).toBe('failed');
    expect(result.gates).toHaveLength(1);
    expect(result.gates[0]).toMatchObject({ gate: 'training', passed: false, code: 'model_crashed' });
    expect(result.gates[0].message).toMatch(said);
    expect(result.gates[0].message).toContain("the torch process running 'train'");
    expect(result.gates[0].message).toContain('(attempt 2; not retried again)');
    expect(await registeredModels(env)).toEqual([]);
  });

  it('a model file that raises KeyboardInterrupt fails as model_error naming it and its line, not as a crash or an interrupt', async () => {
    const home = tempDir();
    const dir = tempDir();
    const spec = writeSpec(
      dir,
      quickSeedSpec('keyboard-interrupt', { params: { raise: 'KeyboardInterrupt', where: 'forward' } }),
      join(fixtureModels, 'raises-not-exception.py'),
    );
    const env = testEnv(home, address());
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code, run.stderr).toBe(2);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.status).toBe('failed');
    expect(result.gates).toHaveLength(1);
    expect(result.gates[0]).toMatchObject({ gate: 'training', passed: false, code: 'model_error' });
    expect(result.gates[0].message).toMatch(
      /^train failed: the model raised KeyboardInterrupt at \S*raises-not-exception\.py:19 \(in training step 1 of epoch 1 of \S*raises-not-exception\.py\); no SIGINT reached the stage/,
    );
    expect(result.gates[0].message).not.toContain('attempt 2'); // the model's error: not retried
    expect(await registeredModels(env)).toEqual([]);
  });

  it('a model file without dataset() fails at training naming the function and the file', async () => {
    const spec = writeSpec(tempDir(), quickSeedSpec('missing-fn'), join(fixtureModels, 'missing-fn.py'));
    const run = await runTtd(['run', spec, '--json'], testEnv(tempDir(), address()));
    expect(run.code, run.stderr).toBe(2);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.gates[0]).toMatchObject({ gate: 'training', passed: false, code: 'model_error' });
    expect(result.gates[0].message).toContain('dataset');
    expect(result.gates[0].message).toContain('missing-fn.py');
  });

  it('a loss that becomes infinite stops training at once: rejected at training with the epoch and step, nothing registered', async () => {
    const home = tempDir();
    const spec = writeSpec(
      tempDir(),
      quickSeedSpec('nan-loss', { train: { epochs: 5, batch_size: 4 } }),
      join(fixtureModels, 'nan-loss.py'),
    );
    const env = testEnv(home, address());
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code, run.stderr).toBe(1);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.status).toBe('rejected');
    expect(result.gates).toEqual([
      {
        gate: 'training',
        passed: false,
        code: 'non_finite_loss',
        message: expect.stringMatching(/loss became (nan|inf) at epoch 1, step \d+/),
      },
    ]);
    expect(result.version).toBeNull();
    expect(Object.keys(result.timings)).toEqual(['signing_key', 'train']);
    expect(await registeredModels(env)).toEqual([]);
  });

  it('a missing python names TTD_PYTHON and make setup, and starts nothing', async () => {
    const home = tempDir();
    const spec = join(seedDir, 'pipeline.yaml');
    const run = await runTtd(['run', spec, '--json'], { ...testEnv(home, address()), TTD_PYTHON: '/nonexistent/python3' });
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('python_missing');
    expect(run.stderr).toContain("TTD_PYTHON='/nonexistent/python3' does not exist; expected the path of a Python interpreter with torch");
    expect(run.stderr).toContain('make setup');
    expect(existsSync(join(home, 'store'))).toBe(false);
  });

  it('a signing key that cannot sign is refused by ttd run and ttd worker before anything starts, naming the file', async () => {
    const home = tempDir();
    const spec = join(seedDir, 'pipeline.yaml');
    const ed25519 = join(home, 'ed25519.pem');
    writeFileSync(ed25519, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const refused = await runTtd(['run', spec, '--json'], { ...testEnv(home, address()), TTD_SIGNING_KEY: ed25519 });
    expect(refused.code).toBe(2);
    const { error } = JSON.parse(refused.stdout);
    expect(error.code).toBe('signing_key_invalid');
    expect(error.message).toContain(`${ed25519}: it holds a ed25519 key, which model_signing refuses`);
    expect(error.message).toContain('expected an unencrypted PEM ECDSA private key on P-256');
    expect(existsSync(join(home, 'store'))).toBe(false);

    const missing = join(home, 'nowhere.pem');
    const none = await runTtd(['run', spec, '--json'], { ...testEnv(home, address()), TTD_SIGNING_KEY: missing });
    expect(none.code).toBe(2);
    expect(JSON.parse(none.stdout).error).toMatchObject({
      code: 'signing_key_missing',
      message: expect.stringContaining(`TTD_SIGNING_KEY names ${missing}, which does not exist`),
    });
    expect(existsSync(join(home, 'store'))).toBe(false);
    expect(existsSync(missing)).toBe(false);

    const worker = await runTtd(['worker', '--queue', 'control'], { ...testEnv(home, address()), TTD_SIGNING_KEY: ed25519 });
    expect(worker.code).toBe(2);
    expect(worker.stderr).toContain('[signing_key_invalid]');
  });

  it('an environment the checkout does not know is refused before anything starts, naming the ones it has', async () => {
    const home = tempDir();
    const spec = writeSpec(home, { name: 'seed', environment: 'torch-9.99' }, join(seedDir, 'model.py'));
    const run = await runTtd(['run', spec, '--json'], testEnv(home, address()));
    expect(run.code).toBe(2);
    const { error } = JSON.parse(run.stdout);
    expect(error.code).toBe('spec_invalid');
    expect(error.message).toContain(
      "environment: 'torch-9.99' is not a torch environment of this checkout; expected one of torch-2.13, torch-1.13",
    );
    expect(existsSync(join(home, 'store'))).toBe(false);
  });

  it('a python without torch is named as such', async () => {
    const run = await runTtd(['run', join(seedDir, 'pipeline.yaml')], {
      ...testEnv(tempDir(), address()),
      TTD_PYTHON: join(__dirname, '..', '..', '.venv', 'bin', 'python'),
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('has no torch module');
    expect(run.stderr).toContain('[torch_missing]');
  });

  it('a missing temporal binary is named when no server is configured or listening', async () => {
    const port = await freePort();
    const run = await runTtd(['run', join(seedDir, 'pipeline.yaml'), '--json'], {
      TTD_HOME: tempDir(),
      TEMPORAL_ADDRESS: undefined,
      TTD_TEMPORAL_PORT: String(port),
      TTD_TEMPORAL_BIN: '/nonexistent/temporal',
    });
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('temporal_missing');
    expect(run.stderr).toContain("the Temporal CLI '/nonexistent/temporal' is missing");
    expect(run.stderr).toContain('make setup');
  });

  it('an unknown alias is named with the aliases that exist', async () => {
    const run = await runTtd(['show', 'seed-mlp@staging'], testEnv(tempDir(), address()));
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("model 'seed-mlp' is not in the registry");
  });
});
