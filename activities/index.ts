// Activity factories: the worker builds them with their dependencies; workflows import only their types.
import type { Config } from '../lib/config';
import type { ObjectStore } from '../lib/store';
import { fusionActivity } from './check-fusion';
import { evaluateActivity } from './evaluate-models';
import { registryRecordActivities } from './registry-records';
import { parityActivity } from './check-parity';
import { optimizeActivity } from './optimize-model';
import { promoteActivity } from './promote-model';
import { storeActivity } from './store-artifact';
import { trainActivity } from './train-model';
import { verifyArtifactActivity } from './verify-artifact';
import { traceActivity } from './trace-model';
import { verifyActivity } from './verify-trace';
import { withStepCache } from './step-cache';

/** Activities of the torch queue: everything that runs torch. */
export function createTorchActivities(deps: { config: Config; store: ObjectStore }) {
  // Every torch stage is a pure function of its input and the torch environment: each goes through the step cache.
  return {
    train: withStepCache(deps, 'train', trainActivity(deps)),
    trace: withStepCache(deps, 'trace', traceActivity(deps)),
    verify: withStepCache(deps, 'verify', verifyActivity(deps)),
    optimize: withStepCache(deps, 'optimize', optimizeActivity(deps)),
    checkFusion: withStepCache(deps, 'fusion', fusionActivity(deps)),
    verifyArtifact: withStepCache(deps, 'verify-artifact', verifyArtifactActivity(deps)),
    evaluate: withStepCache(deps, 'evaluate', evaluateActivity(deps)),
    checkParity: withStepCache(deps, 'parity', parityActivity(deps)),
  };
}

/** Activities of the control queue: store and registry. */
export function createControlActivities(deps: { store: ObjectStore }) {
  return {
    storeArtifact: storeActivity(deps),
    promoteModel: promoteActivity(deps),
    ...registryRecordActivities(deps),
  };
}

export type TorchActivities = ReturnType<typeof createTorchActivities>;
export type ControlActivities = ReturnType<typeof createControlActivities>;
export type { TrainInput, TrainOutput } from './train-model';
export type { TraceInput, TraceOutput } from './trace-model';
export type { VerifyInput, VerifyOutput } from './verify-trace';
export type { OptimizeInput, OptimizeOutput } from './optimize-model';
export type { ParityInput, ParityOutput } from './check-parity';
export type { FusionInput, FusionOutput } from './check-fusion';
export type { StageRun } from './step-cache';
export type { VerifyArtifactInput, VerifyArtifactOutput } from './verify-artifact';
export type { StoreInput, StoreOutput } from './store-artifact';
export type { PromoteInput, PromoteOutput, VersionFacts } from './promote-model';
