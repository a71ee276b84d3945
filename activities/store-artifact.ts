// The store stage: checks every file of the run is in the store under its digest and writes the manifest.
import { ApplicationFailure } from '@temporalio/activity';
import { DigestMismatchError } from '../lib/contract/errors';
import { NonRetryable } from '../lib/contract/gate-codes';
import { writeManifest, type ArtifactFiles, type EnvironmentRecord, type StageOutputs } from '../lib/registry/records';
import type { Format } from '../lib/spec/spec';
import { verifyBlob, type ObjectStore } from '../lib/store/store';
import { beatProgress, resumedProgress } from './heartbeat';

/** Input of the store stage: the files and every build stage's output. */
export interface StoreInput {
  model: string;
  runId: string;
  specDigest: string;
  spec: unknown;
  files: ArtifactFiles;
  stages: StageOutputs;
  /** Each format's artifact and references, the primary (`files.artifact`) first; absent in runs before formats. */
  formats?: Partial<Record<Format, { digest: string; references: string }>>;
  /** The declared environment the version was built in, with what its requirements resolved to. */
  environment?: EnvironmentRecord;
}

/** The manifest's digest and the artifact it names. */
export interface StoreOutput {
  manifestDigest: string;
  artifactDigest: string;
}

/** Builds the store activity. */
export function storeActivity(deps: { store: ObjectStore }) {
  return async function storeArtifact(input: StoreInput): Promise<StoreOutput> {
    // A retry (its host was killed) skips the blobs the previous attempt verified: blobs are immutable, named by content.
    const verified = new Set(resumedProgress<{ verified?: string[] }>()?.verified ?? []);
    for (const [role, digest] of Object.entries(input.files)) {
      if (verified.has(digest)) continue;
      try {
        await verifyBlob(deps.store, digest); // reads (streamed) and re-hashes: what we register is what was produced
        verified.add(digest);
        beatProgress({ verified: [...verified] }); // between blobs; the activity's timer beats during each
      } catch (err) {
        if (err instanceof DigestMismatchError) {
          throw ApplicationFailure.create({ type: NonRetryable.digestMismatch, message: `${role}: ${err.message}`, nonRetryable: true });
        }
        throw err;
      }
    }
    const primary = (Object.keys(input.formats ?? {})[0] as Format | undefined) ?? 'torchscript';
    const manifestDigest = await writeManifest(deps.store, {
      format: 'ttd-manifest/2',
      model: input.model,
      runId: input.runId,
      artifact: { digest: input.files.artifact, format: primary },
      files: input.files,
      specDigest: input.specDigest,
      spec: input.spec,
      stages: input.stages,
      formats: input.formats ?? { torchscript: { digest: input.files.artifact, references: input.files.references } },
      ...(input.environment ? { environment: input.environment } : {}),
    });
    return { manifestDigest, artifactDigest: input.files.artifact };
  };
}
