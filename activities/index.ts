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

/** Activities of the torch queue: everything that runs torch. */
export function createTorchActivities(deps: { config: Config; store: ObjectStore }) {
  return {
    train: trainActivity(deps),
    trace: traceActivity(deps),
    verify: verifyActivity(deps),
    optimize: optimizeActivity(deps),
    checkFusion: fusionActivity(deps),
    verifyArtifact: verifyArtifactActivity(deps),
    evaluate: evaluateActivity(deps),
    checkParity: parityActivity(deps),
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
export type { FusionInput, FusionOutput, FusionGroup } from './check-fusion';
export type { Capture } from './trace-model';
export type { VerifyArtifactInput, VerifyArtifactOutput } from './verify-artifact';
export type { StoreInput, StoreOutput, ArtifactFiles } from './store-artifact';
export type { PromoteInput, PromoteOutput } from './promote-model';
