// Shared test helpers: run the real `ttd` binary in a fresh TTD_HOME, write specs, find free ports.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { TtdError } from '../lib/contract/errors';

export const repoRoot = resolve(__dirname, '..');
export const seedDir = join(repoRoot, 'examples', 'seed-mlp');
export const fixtureModels = join(repoRoot, 'test', 'fixtures', 'models');

/** What a `ttd` invocation did. */
export interface TtdRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/ttd with a clean TTD_HOME and its own task queues, so tests never share workers or stores. */
export function runTtd(args: string[], env: Record<string, string | undefined>, started?: (pid: number) => void): Promise<TtdRun> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid !== undefined) started?.(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** What `command` needs beyond its arguments. `env` replaces the environment unless `extendEnv` is set. */
export interface CommandOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  extendEnv?: boolean;
  input?: string;
  timeout?: number;
}

/** Runs a program without blocking this process, and resolves with its exit code and output whatever the code.
 *
 * Tests never wait on a child synchronously (spawnSync, execFileSync): a fork that blocks its event loop for longer
 * than vitest's fixed 60 s worker RPC timeout loses its results ("Timeout calling onTaskUpdate", an unhandled error
 * that fails the suite), which a torch import or a whole `ttd run` does on a loaded host. ESLint refuses the sync forms
 * in test/. */
export async function command(file: string, args: string[], options: CommandOptions = {}): Promise<TtdRun> {
  const r = await execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: options.extendEnv ?? options.env === undefined,
    input: options.input,
    timeout: options.timeout,
    reject: false,
    stripFinalNewline: false,
  });
  return { code: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr };
}

/** `command` that must succeed: rejects with the program's stderr when it exits non-zero; resolves with its stdout. */
export async function mustRun(file: string, args: string[], options: CommandOptions = {}): Promise<string> {
  const r = await command(file, args, options);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

/** A fresh directory for TTD_HOME and spec files. */
export function tempDir(prefix = 'ttd-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The environment of one test: its own home, store and task queues on the suite's server. */
export function testEnv(home: string, temporalAddress: string | undefined): Record<string, string | undefined> {
  return {
    TTD_HOME: home,
    TEMPORAL_ADDRESS: temporalAddress,
    TTD_QUEUE_PREFIX: `ttd-test-${basename(home)}`,
    // One Inductor cache for the whole suite (and across suites): AOTInductor compiles are the slowest thing we run.
    TTD_INDUCTOR_CACHE: join(repoRoot, 'test-output', 'inductor-cache'),
  };
}

/** Writes a spec (as YAML) into `dir`, copying the model file beside it; returns the spec's path. */
export function writeSpec(dir: string, spec: Record<string, unknown>, modelFile: string, name = 'pipeline.yaml'): string {
  copyFileSync(modelFile, join(dir, basename(modelFile)));
  const path = join(dir, name);
  writeFileSync(path, stringify({ ...spec, model: `./${basename(modelFile)}` }));
  return path;
}

/** A quick variant of the seed pipeline (one epoch, batches of 32) for tests that need a good model fast. */
export function quickSeedSpec(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    train: { epochs: 1, batch_size: 32, optimizer: 'adam', lr: 0.01, loss: 'mse', seed: 0 },
    trace: { batch_sizes: [1, 7] },
    parity: { runtimes: ['python', 'libtorch'], atol: 1e-5, rtol: 1e-4 },
    ...extra,
  };
}

/** A TCP port nobody listens on right now, with port + 1000 free too (a dev server's UI port), both below the kernel's
 * ephemeral range: a port the kernel hands out (listen(0)) is one that the outgoing connections of the files running
 * beside can take before the server binds it (a run once failed with server_conflict so). */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (low - 1_000 - 10_000));
    if ((await bindable(port)) && (await bindable(port + 1_000))) return port;
  }
  throw new Error(`no free port with port + 1000 free between 10000 and ${low}`);
}

// The first port of the kernel's ephemeral range (32768 where /proc does not say).
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', () => resolvePromise(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePromise(true)));
  });
}

/** Where browser tests keep their screenshots. */
export const screenshotDir = join(repoRoot, 'test-output', 'screenshots');

/** Debian's chromium, headless, kept off the network it would otherwise keep trying. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** The per-epoch checkpoints in a filesystem store: blobs holding a training state (its pickle names rng_state). */
export function checkpointBlobs(home: string): string[] {
  const dir = join(home, 'store', 'blobs', 'sha256');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((hex) => readFileSync(join(dir, hex)).includes('rng_state'));
}

/** The TtdError `fn` throws (any other error is rethrown; none at all fails the test). */
export function thrownTtdError(fn: () => unknown): TtdError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TtdError) return err;
    throw err;
  }
  throw new Error('expected a TtdError');
}
