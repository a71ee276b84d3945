// The environment stage: builds a spec's declared environment (lib/environments/declared-environments.ts) on this worker, or finds
// it built; every later torch stage makes sure of it too, since a pool's stages may run on another host.
import { existsSync } from 'node:fs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { forEnvironment, type Config } from '../lib/config';
import {
  buildEnvironment,
  declaredDigest,
  declaredId,
  type BuiltEnvironment,
  type DeclaredEnvironment,
} from '../lib/environments/declared-environments';
import { digestHex } from '../lib/store/digest';
import { getBlob, type ObjectStore } from '../lib/store/store';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { NonRetryable } from '../lib/contract/gate-codes';
import type { StageRun } from './step-cache';
import { torchEnvironment } from './torch-process';

/** Input of the environment stage: the declaration (the run's environment id is derived from it). */
export interface EnvironmentInput {
  declared: DeclaredEnvironment;
  /** The run's model file: the environment's fork server, started here, preloads what it imports from the declared
   * requirements (absent in runs started before this field, and for foreign artifacts). */
  modelFileDigest?: string;
  environment?: string;
  noCache?: boolean;
}

/** What the environment stage reports: the environment, its torch, what the requirements resolved to. */
export interface EnvironmentOutput {
  base: string;
  digest: string;
  torch_version: string;
  /** Every package the requirements resolved to (name==version), the base's shared ones included. */
  resolved: string[];
  /** The packages installed beside the base's. */
  installed: string[];
  /** Already built on this host (by an earlier run, or another worker). */
  reused: boolean;
}

/** Builds the environment stage's activity. */
export function environmentActivity(deps: { config: Config; store: ObjectStore }) {
  return async function buildDeclaredEnvironment(input: EnvironmentInput): Promise<StageRun<EnvironmentOutput>> {
    const started = performance.now();
    const built = await ensureDeclared(deps.config, input.declared);
    const output: EnvironmentOutput = {
      base: built.base,
      digest: built.digest,
      torch_version: built.torch_version,
      resolved: built.resolved,
      installed: built.installed,
      reused: built.cached,
    };
    // The environment's fork server starts now, beside the workflow's next steps: the train stage finds its torch
    // and the requirements its model file imports already imported. A failure to start is left for that stage.
    const environment = forEnvironment(deps.config, input.environment ?? declaredId(input.declared));
    if (environment && environment.torchProcess === 'server') void prestartServer(deps.store, environment, input.modelFileDigest);
    return { output, cached: built.cached, torchMs: built.cached ? null : Math.round(performance.now() - started) };
  };
}

// Starts an environment's fork server with its model file as a hint (the file is small: read whole, verified).
async function prestartServer(store: ObjectStore, config: Config, modelFileDigest: string | undefined): Promise<void> {
  try {
    const modelSource = modelFileDigest ? await getBlob(store, modelFileDigest).catch(() => undefined) : undefined;
    await torchEnvironment(config, { modelSource });
  } catch {
    // the first stage that needs the server reports why it cannot start
  }
}

const building = new Map<string, Promise<BuiltEnvironment & { cached: boolean }>>();

/** The declared environment built on this host (built now when it is not: with heartbeats when inside an activity).
 * Fails the activity for good with environment_invalid, index_unreachable or environment_missing. */
export async function ensureDeclared(config: Config, declared: DeclaredEnvironment): Promise<BuiltEnvironment & { cached: boolean }> {
  const hex = digestHex(declaredDigest(declared));
  let pending = building.get(hex);
  if (!pending) {
    pending = build(config, declared).finally(() => building.delete(hex));
    building.set(hex, pending);
  }
  return pending;
}

async function build(config: Config, declared: DeclaredEnvironment): Promise<BuiltEnvironment & { cached: boolean }> {
  const base = forEnvironment(config, declared.base);
  if (!base || config.environments.every((e) => e.name !== declared.base)) {
    throw ApplicationFailure.create({
      type: NonRetryable.environmentMissing,
      message: `environment.base '${declared.base}' is not a torch environment of this worker; it has ${config.environments.map((e) => `'${e.name}'`).join(', ')}`,
      nonRetryable: true,
    });
  }
  if (!existsSync(config.uv)) {
    throw ApplicationFailure.create({
      type: NonRetryable.environmentMissing,
      message: `this worker cannot build environment.requirements: uv '${config.uv}' does not exist; make setup installs it (or set TTD_UV)`,
      nonRetryable: true,
    });
  }
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined; // outside an activity (tests, tools): no heartbeats
  }
  let phase = 'starting';
  // Keep what the stage's last attempt said (a train stage's checkpoint, to resume from), adding the phase.
  const prior = ctx?.info.heartbeatDetails;
  const details = () => ({ ...(prior && typeof prior === 'object' ? prior : {}), phase });
  const timer = ctx && setInterval(() => ctx.heartbeat(details()), 2_000);
  try {
    return await buildEnvironment(declared, {
      uv: config.uv,
      cacheDir: config.envCache,
      basePython: base.python,
      indexUrl: config.indexUrl,
      signal: ctx?.cancellationSignal,
      onProgress: (p) => {
        phase = p;
        ctx?.heartbeat(details());
      },
    });
  } catch (err) {
    if (err instanceof TtdError) {
      const type =
        err.code === ErrorCode.indexUnreachable
          ? NonRetryable.indexUnreachable
          : err.code === ErrorCode.environmentInvalid
            ? NonRetryable.environmentInvalid
            : undefined;
      if (type) throw ApplicationFailure.create({ type, message: err.message, nonRetryable: true, details: [err.details] });
    }
    throw err;
  } finally {
    if (timer) clearInterval(timer);
  }
}
