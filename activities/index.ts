// Activity factories: the worker builds them with their dependencies; workflows import only their types.
import { TorchStages, type DeclaredOutput, type StageInputOf } from '../lib/contract/stages';
import type { Config } from '../lib/config';
import { ApplicationFailure } from '@temporalio/activity';
import { CODES, isCode, type CodeEntry } from '../lib/contract/codes';
import { TtdError } from '../lib/contract/errors';
import type { ObjectStore } from '../lib/store/store';
import { environmentActivity } from './build-environment';
import { parityActivity } from './check-parity';
import { promoteActivity } from './promote-model';
import { registryRecordActivities } from './registry-records';
import { signingActivities, type BuilderInfo } from './sign-version';
import { withStepCache, type CacheOption, type StageRun } from './step-cache';
import { storeActivity } from './store-artifact';
import { allHeartbeating } from './heartbeat';
import { runTorchStage, stageConfig } from './torch-stage';
import { isaProbes } from './isa-probes';
import { trainActivity } from './train-model';

/** One activity per declared torch stage (lib/contract/ops.ts: TorchStages), named by its key. */
type DeclaredActivities = {
  [A in keyof TorchStages]: (input: StageInputOf<A> & CacheOption) => Promise<StageRun<DeclaredOutput<A>>>;
};

/** Activities of the torch queue: everything that runs torch. */
export function createTorchActivities(deps: { config: Config; store: ObjectStore }) {
  // Every torch stage is a pure function of its input and the torch environment: each goes through the step cache,
  // keyed by its op's name.
  const declared = Object.fromEntries(
    Object.entries(TorchStages).map(([name, stage]) => [name, withStepCache(deps, stage.op, runTorchStage(deps, stage as never))]),
  ) as unknown as DeclaredActivities;
  // Inductor's ISA probes (for the AOTInductor Python parity runner) are made beside the compile stage, whose g++
  // leaves a core idle, once per host and environment, unless a long-lived worker made them ahead (prestartTorch).
  const compile = declared.compilePackage;
  declared.compilePackage = (input) => {
    isaProbes(stageConfig(deps.config, input.environment)).catch(() => undefined);
    return compile(input);
  };
  return failuresWithCodes({
    buildEnvironment: environmentActivity(deps),
    train: withStepCache(deps, 'train', trainActivity(deps)),
    ...declared,
    checkParity: withStepCache(deps, 'parity', parityActivity(deps)),
  });
}

// The activity types of the torch queue, declared with the stages (lib/contract/stages.ts) so that `ttd status` knows
// them without loading the activities.
export { TORCH_ACTIVITY_TYPES } from '../lib/contract/stages';

/** Activities of the control queue: store and registry; `keysDir` holds the key that signs audit records. Each
 * heartbeats while it runs (workflows/definitions.ts: storeStage), so a killed host costs its run seconds, not minutes. */
export function createControlActivities(deps: {
  store: ObjectStore;
  keysDir: string;
  /** TTD_SIGNING_KEY: an operator's model signing key; else the keys directory's (lib/registry/signing-key.ts). */
  signingKey?: string | undefined;
  /** The workers' build, named as the builder of the provenance they sign. */
  builder?: BuilderInfo;
}) {
  return allHeartbeating(
    failuresWithCodes({
      storeArtifact: storeActivity(deps),
      promoteModel: promoteActivity(deps),
      ...registryRecordActivities(deps),
      ...signingActivities({ store: deps.store, keys: deps, builder: deps.builder }),
    }),
  );
}

/** A TtdError whose code the catalog lists as a stage failure (lib/contract/codes.ts) leaves the activity as that
 * failure type, retried only where the catalog says the same input may succeed again: a damaged object, a refused
 * credential, a missing bucket or bytes that do not match their digest fail at once with their code and the thing
 * named, instead of ten retries that meet the same answer (issue 15: 164 s, then "Unexpected end of JSON input";
 * issue 25: store_access_denied retried). Any other error is left to Temporal's retry policy. */
function failuresWithCodes<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [
      name,
      async (...args: never[]) => {
        try {
          return await fn(...args);
        } catch (err) {
          throw asFailure(err);
        }
      },
    ]),
  ) as T;
}

/** The ApplicationFailure a catalogued failure becomes; anything else as it is. */
export function asFailure(err: unknown): unknown {
  if (!(err instanceof TtdError) || !isCode(err.code)) return err;
  const entry: CodeEntry = CODES[err.code];
  if (!entry.uses.includes('failure')) return err;
  return ApplicationFailure.create({
    type: err.code,
    message: err.message,
    nonRetryable: !entry.retryable,
    details: [err.details],
  });
}

export type TorchActivities = ReturnType<typeof createTorchActivities>;
export type ControlActivities = ReturnType<typeof createControlActivities>;
export type { TrainInput, TrainOutput } from './train-model';
export type { ParityInput, ParityOutput } from './check-parity';
export type { StoreInput, StoreOutput } from './store-artifact';
export type { PromoteInput, PromoteOutput, VersionFacts } from './promote-model';
export type { StageRun } from './step-cache';
export type { SignInput, SignOutput, SigningKeyOutput } from './sign-version';
export type { EnvironmentInput, EnvironmentOutput } from './build-environment';
