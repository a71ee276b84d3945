// The verify stage of a foreign artifact: it must reproduce the references recorded where it was traced.
import type { CaseReport } from './verify-trace';
import { materialize, storeFiles, torchOp, withWorkDir, type TorchDeps } from './torch-stage';

/** Input of the foreign verify stage. */
export interface VerifyArtifactInput {
  artifactDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  targetDevice: string;
}

/** The trace gate's verdict on a foreign artifact, and canonical references for the runtimes. */
export interface VerifyArtifactOutput {
  passed: boolean;
  code: string | null;
  message: string;
  cases: CaseReport[];
  trainModeOps: string[];
  warnings: string[];
  devices: string[];
  nondeterministicNodes: string[];
  nodes: Record<string, number>;
  nodeTotal: number;
  referencesDigest: string;
}

/** Builds the foreign verify activity. */
export function verifyArtifactActivity(deps: TorchDeps) {
  return async function verifyArtifact(input: VerifyArtifactInput): Promise<VerifyArtifactOutput> {
    return withWorkDir(async (dir) => {
      const files = await materialize(deps.store, dir, {
        'artifact.pt': input.artifactDigest,
        'source-references.safetensors': input.referencesDigest,
      });
      const r = await torchOp(deps, 'verify_artifact', {
        artifact_path: files['artifact.pt'],
        references_path: files['source-references.safetensors'],
        atol: input.atol,
        rtol: input.rtol,
        target_device: input.targetDevice,
        out_dir: dir,
      });
      // A rejected artifact may have no canonical references; the gate's verdict is what matters then.
      const stored = r.references_path
        ? await storeFiles(deps.store, { references: String(r.references_path) })
        : { references: input.referencesDigest };
      return {
        passed: Boolean(r.passed),
        code: (r.code as string | null) ?? null,
        message: String(r.message),
        cases: (r.cases as CaseReport[]) ?? [],
        trainModeOps: (r.train_mode_ops as string[]) ?? [],
        warnings: (r.warnings as string[]) ?? [],
        devices: (r.devices as string[]) ?? [],
        nondeterministicNodes: (r.nondeterministic_nodes as string[]) ?? [],
        nodes: (r.nodes as Record<string, number>) ?? {},
        nodeTotal: Number(r.node_total ?? 0),
        referencesDigest: stored.references,
      };
    });
  };
}
