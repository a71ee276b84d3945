// Signing a version for tools that are not ttd's (lib/registry/attestations.ts): the workers' model signing key is
// checked when a run starts, and signs the version's OpenSSF model signature and SLSA provenance once every gate has
// passed. Both are stored as blobs; the version record names them, so the audit chain backs them.
import { hostname } from 'node:os';
import {
  artifactFiles,
  modelSignatureBundle,
  provenanceStatement,
  signStatement,
  type ProvenanceFacts,
} from '../lib/registry/attestations';
import { fuserShown } from '../lib/contract/results';
import { formatsOf, readManifest, type Manifest } from '../lib/registry/records';
import { modelSigner, type SigningKeySource } from '../lib/registry/signing-key';
import { putBlob, type ObjectStore } from '../lib/store/store';
import type { VersionFacts } from './promote-model';

/** The build of the workers that sign: the provenance's builder. */
export interface BuilderInfo {
  deployment: string | null;
  buildId: string | null;
  ttdVersion: string;
}

/** The key a run will sign with, checked before anything trains. */
export interface SigningKeyOutput {
  keyId: string;
  curve: string;
}

/** What signVersion needs beyond a version's facts. */
export interface SignInput extends VersionFacts {
  modelFile: { digest: string; path: string } | null;
  /** When the run started (the workflow's start time), for the provenance's metadata. */
  startedOn: string;
}

/** The stored signature and provenance, by digest, and the key that signed them. */
export interface SignOutput {
  signature: string;
  provenance: string;
  keyId: string;
}

const record = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});

// The torch version and exporter packages the stages report (the stored stage outputs), for the provenance.
function environmentOf(manifest: Manifest): ProvenanceFacts['environment'] {
  const spec = record(manifest.spec);
  const named = typeof spec.environment === 'string' ? spec.environment : null;
  if (manifest.format !== 'ttd-manifest/2') return { name: named, torchVersion: null, declared: null, packages: {} };
  let torchVersion: string | null = manifest.environment?.torch_version ?? null;
  const packages: Record<string, string> = {};
  for (const out of Object.values(manifest.stages)) {
    const o = record(out);
    if (!torchVersion && typeof o.torch_version === 'string') torchVersion = o.torch_version;
    for (const [name, version] of Object.entries(record(o.packages))) if (typeof version === 'string') packages[name] = version;
  }
  const declared = manifest.environment
    ? {
        base: manifest.environment.base,
        digest: manifest.environment.digest,
        resolved: manifest.environment.resolved,
        installed: manifest.environment.installed,
      }
    : null;
  return { name: declared ? `${declared.base}+${declared.digest.slice(7, 19)}` : named, torchVersion, declared, packages };
}

/** Builds the signing activities of the control queue. */
export function signingActivities(deps: { store: ObjectStore; keys: SigningKeySource; builder?: BuilderInfo }) {
  return {
    /** The first thing a run does: a key that is missing or cannot sign fails the run before it trains. */
    async checkSigningKey(): Promise<SigningKeyOutput> {
      const signer = modelSigner(deps.keys, { create: true });
      return { keyId: signer.keyId, curve: signer.curve };
    },

    /** Signs a version whose every gate passed: the OpenSSF model signature and the SLSA provenance, stored as blobs. */
    async signVersion(input: SignInput): Promise<SignOutput> {
      const signer = modelSigner(deps.keys, { create: true });
      const manifest = await readManifest(deps.store, input.manifestDigest);
      const files = artifactFiles(formatsOf(manifest));
      const spec = record(manifest.spec);
      const promote = record(spec.promote);
      const facts: ProvenanceFacts = {
        model: input.model,
        files,
        spec: {
          digest: manifest.specDigest,
          formats: Array.isArray(spec.formats) ? spec.formats.map(String) : files.map((f) => f.name),
          alias: typeof promote.alias === 'string' ? promote.alias : 'production',
          environment: typeof spec.environment === 'string' ? spec.environment : null,
        },
        modelFile: input.modelFile,
        // A version with no model file was given as a foreign archive and its references.
        foreign: !input.modelFile ? { artifact: manifest.files.artifact, references: manifest.files.references } : null,
        params: spec.params ?? {},
        trigger: input.trigger,
        commit: input.commit,
        actor: input.actor,
        environment: environmentOf(manifest),
        gates: input.gates.map((g) => ({ gate: g.gate, passed: g.passed, code: g.code, message: g.message })),
        parity: input.parity
          ? {
              atol: input.parity.atol,
              rtol: input.parity.rtol,
              runtimes: input.parity.runtimes.map((r) => ({
                runtime: r.runtime,
                format: r.format ?? null,
                environment: r.environment ?? null,
                fuser: fuserShown(r),
                passed: r.passed,
                code: r.code,
                max_abs_error: r.max_abs_error,
                max_rel_error: r.max_rel_error,
              })),
            }
          : null,
        manifest: input.manifestDigest,
        builder: {
          identity: `${process.pid}@${hostname()}`,
          deployment: deps.builder?.deployment ?? null,
          buildId: deps.builder?.buildId ?? null,
          ttdVersion: deps.builder?.ttdVersion ?? 'unknown',
        },
        runId: input.runId,
        startedOn: input.startedOn,
        finishedOn: new Date().toISOString(),
      };
      const signature = await putBlob(deps.store, modelSignatureBundle(input.model, files, signer));
      const provenance = await putBlob(
        deps.store,
        `${JSON.stringify(signStatement(provenanceStatement(facts), signer, signer.dsseKeyId), null, 2)}\n`,
      );
      return { signature, provenance, keyId: signer.keyId };
    },
  };
}
