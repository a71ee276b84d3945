// The verify stage of a foreign artifact: it must reproduce the references recorded where it was traced.
import { runTorchStage, type StageOutput, type TorchDeps } from './torch-stage';

/** Input of the foreign verify stage. */
export interface VerifyArtifactInput {
  artifactDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  targetDevice: string;
}

/** The trace gate's verdict on a foreign artifact, and canonical references for the runtimes (`files.references`,
 * absent when the recorded references could not be read). */
export type VerifyArtifactOutput = StageOutput<'verify_artifact', 'references_path'>;

/** Builds the foreign verify activity. */
export const verifyArtifactActivity = (deps: TorchDeps) =>
  runTorchStage(deps, {
    op: 'verify_artifact',
    fetch: (i: VerifyArtifactInput) => ({ 'artifact.pt': i.artifactDigest, 'source-references.safetensors': i.referencesDigest }),
    args: (i, f, dir) => ({
      artifact_path: f['artifact.pt'],
      references_path: f['source-references.safetensors'],
      atol: i.atol,
      rtol: i.rtol,
      target_device: i.targetDevice,
      out_dir: dir,
    }),
    store: ['references_path'],
  });
