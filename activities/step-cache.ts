// Step caching: a torch stage whose inputs (content digests, spec sections) and torch environment (torch and
// Python versions, our torch-side code, the libtorch runner) match an earlier successful stage reuses its outputs.
// Entries live in the store under cache/<stage>/<key>.json; a hit needs every blob it names to still exist.
import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { canonicalJson, digestBytes, digestFile, digestHex } from '../lib/digest';
import { ErrorCode, type TtdError } from '../lib/errors';
import { blobKey, type ObjectStore } from '../lib/store';
import { forEnvironment, type Config } from '../lib/config';
import { runTorchRequest, torchEnvironment } from './torch-process';
import { torchWorkMs } from './torch-stage';

/** What every torch stage's input may carry besides its own fields: `ttd run --no-cache`, and the torch environment
 * the run uses (lib/environments.ts; the worker's configured one when absent). */
export interface CacheOption {
  noCache?: boolean;
  environment?: string;
}

const FORMAT = 'ttd-step-cache/2'; // 2: stage outputs are the contract's results (lib/contract.ts)
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
 * does not wait for `import torch`. A failure is left for that stage to report. */
export function prestartTorch(config: Config): void {
  environmentDigest(config).catch(() => undefined);
}

async function computeEnvironment(config: Config): Promise<string> {
  const server = config.torchProcess === 'server' ? await torchEnvironment(config) : undefined;
  const hello = server ? undefined : await runTorchRequest(config, 'hello', {});
  const reported = (server ?? (hello?.kind === 'ok' ? hello.result : {})) as Record<string, unknown>;
  // Without knowing the torch it runs on, no entry can be trusted: no digest (and no caching) until it is known.
  if (typeof reported.torch_version !== 'string') throw new Error(`the torch environment '${config.python}' did not start`);
  const versions = { torch: reported.torch_version, python: reported.python_version ?? null };
  const pkg = join(config.pythonPackageDir, 'ttd_torch');
  const sources: Record<string, string> = {};
  for (const f of (await readdir(pkg)).filter((n) => n.endsWith('.py')).sort()) sources[f] = digestBytes(await readFile(join(pkg, f)));
  sources['ttd_parity_runner.py'] = digestBytes(await readFile(config.parityRunnerPy));
  const runner = existsSync(config.libtorchRunner) ? await digestFile(config.libtorchRunner) : null;
  return digestBytes(canonicalJson({ interpreter: config.python, versions, sources, libtorchRunner: runner }));
}

/** A torch stage's output with how it was obtained: reused from an earlier identical stage (`cached`), or worked out,
 * with the time the torch work itself took (`torchMs`; null when cached or not measured). */
export interface StageRun<O> {
  output: O;
  cached: boolean;
  torchMs: number | null;
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
    if (!noCache) {
      const hit = await lookup<O>(deps.store, key);
      if (hit) return { output: hit, cached: true, torchMs: null };
    }
    const run = await ran();
    if (passed(run.output)) await record(deps.store, key, stage, run.output);
    return run;
  };
}

// Where the user's files were is for messages only: a checkout in another directory (another CI runner) hits the
// same entries. The model file's name stays in the key: it is the module's name when the stage imports it.
function keyed(input: object): object {
  const out: Record<string, unknown> = { ...input };
  for (const field of ['modelFilePath', 'artifactPath']) if (typeof out[field] === 'string') out[field] = basename(out[field] as string);
  return out;
}

function passed(output: unknown): boolean {
  const o = output as { passed?: unknown; status?: unknown } | null;
  return !!o && o.passed !== false && o.status !== 'rejected';
}

async function lookup<O>(store: ObjectStore, key: string): Promise<O | undefined> {
  const entry = await store.get(key);
  if (!entry) return undefined;
  let parsed: { format?: string; output?: O };
  try {
    parsed = JSON.parse(entry.body.toString('utf8'));
  } catch {
    return undefined; // unreadable: work it out again (and the entry stays as it is: entries are create-only)
  }
  if (parsed.format !== FORMAT || parsed.output === undefined) return undefined;
  // Every file the outputs name must still be in the store; otherwise the stage runs again.
  const blobs = [...new Set(JSON.stringify(parsed.output).match(DIGEST_IN_TEXT) ?? [])];
  const present = await Promise.all(blobs.map((d) => store.head(blobKey(d))));
  return present.every(Boolean) ? parsed.output : undefined;
}

async function record(store: ObjectStore, key: string, stage: string, output: unknown): Promise<void> {
  const body = Buffer.from(JSON.stringify({ format: FORMAT, stage, output }));
  try {
    await store.put(key, body, { ifNoneMatch: '*' });
  } catch (err) {
    // A concurrent identical stage wrote it first, or the store is failing: the cache is an optimisation, the
    // stage's work is done, and failing it now would only make a retry do that work again.
    if ((err as TtdError).code !== ErrorCode.preconditionFailed)
      process.stderr.write(`ttd: step cache entry ${key} not written: ${(err as Error).message}\n`);
  }
}
