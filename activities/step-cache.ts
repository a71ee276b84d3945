// Step caching: a torch stage whose inputs (content digests, spec sections) and torch environment (torch and
// Python versions, our torch-side code, the libtorch runner) match an earlier successful stage reuses its outputs.
// Entries live in the store under cache/<stage>/<key>.json; a hit needs a valid MAC (made with the workers' key, which
// store writers do not hold: a rewritten entry cannot forge a verdict) and every blob it names to still exist.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { canonicalJson, digestBytes, digestFile, digestHex } from '../lib/store/digest';
import { ErrorCode, type TtdError } from '../lib/contract/errors';
import { blobKey, type ObjectStore } from '../lib/store/store';
import { forEnvironment, type Config } from '../lib/config';
import { stepCacheKey } from '../lib/registry/keys';
import { canExport } from '../lib/environments/environments';
import { isaProbes } from './isa-probes';
import { builtRecordOf, type DeclaredEnvironment } from '../lib/environments/declared-environments';
import { ensureDeclared } from './build-environment';
import { runTorchRequest, torchEnvironment } from './torch-process';
import { torchWorkMs } from './torch-stage';

/** What every torch stage's input may carry besides its own fields: `ttd run --no-cache`, and the torch environment
 * the run uses (lib/environments/environments.ts; the worker's configured one when absent). */
export interface CacheOption {
  noCache?: boolean;
  environment?: string;
  /** The run's declared environment: made sure of on this host before the stage (built here if it is not). */
  declared?: DeclaredEnvironment;
}

// 2: stage outputs are the contract's results (lib/contract/ops.ts); 3: each entry carries a MAC (unsigned entries miss).
const FORMAT = 'ttd-step-cache/3';
const DIGEST_IN_TEXT = /sha256:[0-9a-f]{64}/g;

const environments = new Map<string, Promise<string>>();

/** A digest of everything besides a stage's input that decides its output; computed once per process and environment. */
export function environmentDigest(config: Config): Promise<string> {
  const key = `${config.python}\0${config.libtorchRunner}`;
  let digest = environments.get(key);
  if (!digest) {
    digest = computeEnvironment(config).catch((err) => {
      environments.delete(key);
      throw err;
    });
    environments.set(key, digest);
  }
  return digest;
}

/** Starts the torch fork server and works out the environment digest in the background, so that the first stage
 * does not wait for `import torch`. A failure is left for that stage to report. `aoti`: whether AOTInductor packages
 * may reach Python parity here (a worker: yes; a run: if its spec asks for them), so that Inductor's ISA probes are
 * made ahead, once per host and environment; a TorchScript-only run never needs them. */
export function prestartTorch(config: Config, opts: { aoti: boolean } = { aoti: true }): void {
  environmentDigest(config).catch(() => undefined);
  const env = config.environments.find((e) => e.name === config.environment);
  if (opts.aoti && env && canExport(env)) isaProbes(config).catch(() => undefined);
}

async function computeEnvironment(config: Config): Promise<string> {
  const server = config.torchProcess === 'server' ? await torchEnvironment(config) : undefined;
  const hello = server ? undefined : await runTorchRequest(config, 'hello', {});
  const reported = (server ?? (hello?.kind === 'ok' ? hello.result : {})) as Record<string, unknown>;
  // Without knowing the torch it runs on, no entry can be trusted: no digest (and no caching) until it is known.
  if (typeof reported.torch_version !== 'string') throw new Error(`the torch environment '${config.python}' did not start`);
  // The exporters' packages too: the onnx stage's output changes with them as with torch.
  const versions = {
    torch: reported.torch_version,
    python: reported.python_version ?? null,
    ...(reported.packages ? { packages: reported.packages } : {}),
  };
  const pkg = join(config.pythonPackageDir, 'ttd_torch');
  const sources: Record<string, string> = {};
  for (const f of (await readdir(pkg)).filter((n) => n.endsWith('.py')).sort()) sources[f] = digestBytes(await readFile(join(pkg, f)));
  sources['ttd_parity_runner.py'] = digestBytes(await readFile(config.parityRunnerPy));
  const runner = existsSync(config.libtorchRunner) ? await digestFile(config.libtorchRunner) : null;
  // A declared environment's packages as this host resolved them: unpinned requirements may resolve differently on
  // another host or later, under the same directory name.
  const declared = config.basePython ? (builtRecordOf(config.python)?.resolved ?? null) : undefined;
  return digestBytes(
    canonicalJson({ interpreter: config.python, versions, sources, libtorchRunner: runner, ...(declared ? { declared } : {}) }),
  );
}

/** A torch stage's output with how it was obtained: reused from an earlier identical stage (`cached`), or worked out,
 * with the time the torch work itself took (`torchMs`; null when cached or not measured). `cacheRejected` says why
 * an entry that was there was not trusted (its MAC is missing or wrong, or it is unreadable). */
export interface StageRun<O> {
  output: O;
  cached: boolean;
  torchMs: number | null;
  cacheRejected?: string;
}

/** Wraps a torch stage: returns an earlier identical stage's outputs (`cached: true`) or runs it and records them.
 * Only outputs that passed are recorded: a rejection is always worked out again. */
export function withStepCache<I extends object, O>(
  deps: { config: Config; store: ObjectStore },
  stage: string,
  fn: (input: I) => Promise<O>,
): (input: I & CacheOption) => Promise<StageRun<O>> {
  return async (input) => {
    const { noCache, ...rest } = input;
    if (input.declared) await ensureDeclared(deps.config, input.declared);
    const config = forEnvironment(deps.config, input.environment) ?? deps.config; // an unknown one: the stage says so
    const ran = async (): Promise<StageRun<O>> => {
      const output = await fn(rest as I);
      const torchMs = torchWorkMs();
      return { output, cached: false, torchMs: torchMs === undefined ? null : Math.round(torchMs) };
    };
    let env: string;
    try {
      env = await environmentDigest(config);
    } catch {
      return ran(); // the stage itself reports what is wrong with torch
    }
    const key = `cache/${stage}/${digestHex(digestBytes(canonicalJson({ format: FORMAT, stage, input: keyed(rest), env })))}.json`;
    const macKey = stepCacheKey(config.keysDir);
    let rejected: { reason: string; etag: string } | undefined;
    if (!noCache) {
      const found = await lookupEntry<O>(deps.store, key, macKey);
      if (found?.kind === 'hit') return { output: found.output, cached: true, torchMs: null };
      if (found?.kind === 'rejected') {
        rejected = found;
        process.stderr.write(`ttd: step cache entry ${key} not trusted: ${found.reason}; running the ${stage} stage again\n`);
      }
    }
    const run = await ran();
    if (passed(run.output)) await recordEntry(deps.store, key, stage, run.output, macKey, rejected?.etag);
    return rejected ? { ...run, cacheRejected: rejected.reason } : run;
  };
}

// Where the user's files were is for messages only: a checkout in another directory (another CI runner) hits the
// same entries, as do runs whose time limits differ. The model file's name stays in the key: it is the module's name when the stage imports it.
function keyed(input: object): object {
  const out: Record<string, unknown> = { ...input };
  delete out.limits; // a time limit decides whether a stage finishes, never what it computes
  for (const field of ['modelFilePath', 'artifactPath']) if (typeof out[field] === 'string') out[field] = basename(out[field] as string);
  return out;
}

function passed(output: unknown): boolean {
  const o = output as { passed?: unknown; status?: unknown } | null;
  return !!o && o.passed !== false && o.status !== 'rejected';
}

/** The MAC of an entry: HMAC-SHA256 with the workers' key over its canonical content and the key it is stored under
 * (so an entry cannot be moved to another stage's or input's key either). */
export function entryMac(macKey: Buffer, key: string, stage: string, output: unknown): string {
  return createHmac('sha256', macKey)
    .update(canonicalJson({ format: FORMAT, key, stage, output }))
    .digest('hex');
}

/** What a cache lookup found: a trusted hit, an entry that is there but not trusted (and why), or nothing usable. */
export type Lookup<O> = { kind: 'hit'; output: O } | { kind: 'rejected'; reason: string; etag: string } | undefined;

/** Reads an entry and trusts it only if its MAC is right and every blob it names is still in the store. */
export async function lookupEntry<O>(store: ObjectStore, key: string, macKey: Buffer): Promise<Lookup<O>> {
  const entry = await store.get(key);
  if (!entry) return undefined;
  const reject = (reason: string): Lookup<O> => ({ kind: 'rejected', reason, etag: entry.etag });
  let parsed: { format?: unknown; stage?: unknown; key?: unknown; output?: O; mac?: unknown };
  try {
    parsed = JSON.parse(entry.body.toString('utf8'));
  } catch {
    return reject('it is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object') return reject('it is not a JSON object');
  if (parsed.format !== FORMAT) return reject(`its format is ${JSON.stringify(parsed.format)}, expected '${FORMAT}'`);
  if (parsed.output === undefined || typeof parsed.stage !== 'string') return reject('it has no stage or output');
  if (typeof parsed.mac !== 'string') return reject('it has no MAC');
  const expected = Buffer.from(entryMac(macKey, key, parsed.stage, parsed.output), 'hex');
  const given = Buffer.from(parsed.mac, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return reject('its MAC does not match its content and key: it was not written by a worker holding the step-cache key');
  }
  // Every file the outputs name must still be in the store; otherwise the stage runs again.
  const blobs = [...new Set(JSON.stringify(parsed.output).match(DIGEST_IN_TEXT) ?? [])];
  const present = await Promise.all(blobs.map((d) => store.head(blobKey(d))));
  return present.every(Boolean) ? { kind: 'hit', output: parsed.output } : undefined;
}

/** Records a stage's outputs with their MAC: create-only, or replacing an untrusted entry (`replace`: its etag). */
export async function recordEntry(
  store: ObjectStore,
  key: string,
  stage: string,
  output: unknown,
  macKey: Buffer,
  replace?: string,
): Promise<void> {
  const plain = JSON.parse(JSON.stringify(output)) as unknown; // the MAC covers what a reader will parse
  const body = Buffer.from(JSON.stringify({ format: FORMAT, stage, key, output: plain, mac: entryMac(macKey, key, stage, plain) }));
  try {
    await store.put(key, body, replace ? { ifMatch: replace } : { ifNoneMatch: '*' });
  } catch (err) {
    // A concurrent identical stage wrote it first, or the store is failing: the cache is an optimisation, the
    // stage's work is done, and failing it now would only make a retry do that work again.
    if ((err as TtdError).code !== ErrorCode.preconditionFailed)
      process.stderr.write(`ttd: step cache entry ${key} not written: ${(err as Error).message}\n`);
  }
}
