// The store stage: checks every file of the run is in the store under its digest and writes the manifest.
import { ApplicationFailure } from '@temporalio/activity';
import { DigestMismatchError } from '../lib/errors';
import { getBlob, putBlob, type ObjectStore } from '../lib/store';
import { NonRetryable } from '../lib/failures';

/** The digests a version is made of, by role: the artifact and its references always, the rest as the path made them. */
export type ArtifactFiles = { artifact: string; references: string } & Record<string, string>;

/** Input of the store stage: the files and the build reports (training, trace, optimize). */
export interface StoreInput {
  model: string;
  runId: string;
  specDigest: string;
  spec: unknown;
  files: ArtifactFiles;
  reports: Record<string, unknown>;
}

/** The manifest's digest and the artifact it names. */
export interface StoreOutput {
  manifestDigest: string;
  artifactDigest: string;
}

/** Builds the store activity. */
export function storeActivity(deps: { store: ObjectStore }) {
  return async function storeArtifact(input: StoreInput): Promise<StoreOutput> {
    for (const [role, digest] of Object.entries(input.files)) {
      try {
        await getBlob(deps.store, digest); // reads and re-hashes: what we register is what was produced
      } catch (err) {
        if (err instanceof DigestMismatchError) {
          throw ApplicationFailure.create({ type: NonRetryable.digestMismatch, message: `${role}: ${err.message}`, nonRetryable: true });
        }
        throw err;
      }
    }
    const manifest = {
      format: 'ttd-manifest/1',
      model: input.model,
      runId: input.runId,
      artifact: { digest: input.files.artifact, format: 'torchscript' },
      files: input.files,
      specDigest: input.specDigest,
      spec: input.spec,
      reports: input.reports,
    };
    const manifestDigest = await putBlob(deps.store, JSON.stringify(manifest, null, 2));
    return { manifestDigest, artifactDigest: input.files.artifact };
  };
}
