// What a version carries for tools that are not ttd's, both signed by the model signing key (./signing-key.ts):
// - the OpenSSF model signature: a Sigstore bundle (v0.3) holding a DSSE envelope over an in-toto statement with the
//   `https://model_signing/signature/v1.0` predicate, which `model_signing verify key` checks against a directory of
//   the version's artifact files (ARTIFACT_FILE_NAMES);
// - the SLSA provenance: a DSSE envelope over an in-toto statement with the SLSA provenance v1 predicate, whose
//   subjects are the same files.
// Both are made from digests the store has already checked, so nothing is downloaded to sign.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Format } from '../spec/spec';
import { digestHex } from '../store/digest';
import type { ModelSigner, ModelVerifier } from './signing-key';

/** The name of each format's artifact in a pulled version's directory (`ttd pull --signature -o DIR`). */
export const ARTIFACT_FILE_NAMES: Record<Format, string> = { torchscript: 'model.pt', aoti: 'model.pt2', onnx: 'model.onnx' };
/** The signature's name in that directory: model_signing's default, which its verifier skips when hashing the directory. */
export const SIGNATURE_FILE = 'model.sig';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const MODEL_SIGNING_PREDICATE = 'https://model_signing/signature/v1.0';
export const SLSA_PROVENANCE_PREDICATE = 'https://slsa.dev/provenance/v1';
export const SIGSTORE_BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
/** The buildType of ttd's provenance: how to read its build definition (docs/trust-provenance.md). */
export const TTD_BUILD_TYPE = 'urn:ttd:build-type:pipeline:v1';

/** A file of a version: its name in the pulled directory and its sha256 digest (`sha256:<hex>`). */
export interface NamedFile {
  name: string;
  digest: string;
}

/** The files of a version by format, named as `ttd pull --signature` writes them, sorted by name. */
export function artifactFiles(formats: Partial<Record<Format, { digest: string }>>): (NamedFile & { format: Format })[] {
  return (Object.entries(formats) as [Format, { digest: string }][])
    .map(([format, a]) => ({ name: ARTIFACT_FILE_NAMES[format], digest: a.digest, format }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** DSSE's pre-authentication encoding: what is signed, so the payload type is signed with the payload. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export const DsseEnvelope = z.object({
  payload: z.string(),
  payloadType: z.string(),
  signatures: z.array(z.object({ sig: z.string(), keyid: z.string().optional() })).min(1),
});
export type DsseEnvelope = z.infer<typeof DsseEnvelope>;

/** A DSSE envelope of an in-toto statement, signed with the model signing key. */
export function signStatement(statement: object, signer: ModelSigner, keyid: string): DsseEnvelope {
  const payload = Buffer.from(JSON.stringify(statement, null, 2), 'utf8');
  const sig = signer.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload));
  return { payload: payload.toString('base64'), payloadType: IN_TOTO_PAYLOAD_TYPE, signatures: [{ sig: sig.toString('base64'), keyid }] };
}

/** Why an envelope does not verify, or its statement. */
export type Opened = { ok: true; statement: Statement } | { ok: false; why: string };

const Subject = z.object({ name: z.string(), digest: z.record(z.string(), z.string()) });
const Statement = z.object({
  _type: z.literal(STATEMENT_TYPE),
  subject: z.array(Subject).min(1),
  predicateType: z.string(),
  predicate: z.unknown(),
});
export type Statement = z.infer<typeof Statement>;

/** Checks an envelope's signature with the public key and reads its statement; with no key at hand (null), reads it
 * unchecked, so that what it names can still be checked. */
export function openEnvelope(envelope: unknown, verifier: ModelVerifier | null): Opened {
  const env = DsseEnvelope.safeParse(envelope);
  if (!env.success)
    return { ok: false, why: `it is not a DSSE envelope (${env.error.issues[0]?.path.join('.')}: ${env.error.issues[0]?.message})` };
  if (env.data.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    return { ok: false, why: `its payload type is '${env.data.payloadType}', not ${IN_TOTO_PAYLOAD_TYPE}` };
  const payload = Buffer.from(env.data.payload, 'base64');
  const signed =
    !verifier || env.data.signatures.some((s) => verifier.verify(pae(env.data.payloadType, payload), Buffer.from(s.sig, 'base64')));
  if (!signed)
    return { ok: false, why: `its signature does not verify with the public key ${verifier.source} (key ${verifier.keyId.slice(0, 16)}…)` };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, why: 'its payload is not JSON' };
  }
  const statement = Statement.safeParse(json);
  if (!statement.success)
    return { ok: false, why: `its payload is not an in-toto v1 statement (${statement.error.issues[0]?.path.join('.')})` };
  return { ok: true, statement: statement.data };
}

// ---- the OpenSSF model signature

/** The model_signing v1.0 statement of a directory holding `files`: the resources sorted by name, and one subject whose
 * digest is the sha256 of their digests' bytes in that order (model_signing's manifest root). */
export function modelSignatureStatement(model: string, files: NamedFile[]): object {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const root = createHash('sha256');
  for (const f of sorted) root.update(Buffer.from(digestHex(f.digest), 'hex'));
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: model, digest: { sha256: root.digest('hex') } }],
    predicateType: MODEL_SIGNING_PREDICATE,
    predicate: {
      serialization: { method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: [SIGNATURE_FILE] },
      resources: sorted.map((f) => ({ name: f.name, algorithm: 'sha256', digest: digestHex(f.digest) })),
    },
  };
}

/** The OpenSSF model signature of a version's files: a Sigstore bundle that `model_signing verify key` accepts. */
export function modelSignatureBundle(model: string, files: NamedFile[], signer: ModelSigner): string {
  const bundle = {
    mediaType: SIGSTORE_BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint: signer.keyId }, tlogEntries: [] },
    // model_signing leaves the DSSE key id empty and names the key by the bundle's hint.
    dsseEnvelope: signStatement(modelSignatureStatement(model, files), signer, ''),
  };
  return `${JSON.stringify(bundle, null, 2)}\n`;
}

const Bundle = z.object({
  mediaType: z.string(),
  verificationMaterial: z.object({ publicKey: z.object({ hint: z.string() }).optional() }).loose(),
  dsseEnvelope: z.unknown(),
});
const SignaturePredicate = z.object({
  resources: z.array(z.object({ name: z.string(), algorithm: z.literal('sha256'), digest: z.string().regex(/^[0-9a-f]{64}$/) })),
});

/** Checks a model signature bundle: signed by the key (when one is at hand), and naming exactly `files` with their
 * digests. Returns why not. */
export function checkModelSignature(bundleText: string, verifier: ModelVerifier | null, files: NamedFile[]): string | null {
  let json: unknown;
  try {
    json = JSON.parse(bundleText);
  } catch {
    return 'it is not JSON';
  }
  const bundle = Bundle.safeParse(json);
  if (!bundle.success) return 'it is not a Sigstore bundle';
  if (bundle.data.mediaType !== SIGSTORE_BUNDLE_MEDIA_TYPE) return `its media type is '${bundle.data.mediaType}'`;
  const hint = bundle.data.verificationMaterial.publicKey?.hint;
  if (verifier && hint !== undefined && hint !== verifier.keyId)
    return `it names key ${hint.slice(0, 16)}…, not ${verifier.keyId.slice(0, 16)}… (${verifier.source})`;
  const opened = openEnvelope(bundle.data.dsseEnvelope, verifier);
  if (!opened.ok) return opened.why;
  if (opened.statement.predicateType !== MODEL_SIGNING_PREDICATE) return `its predicate is '${opened.statement.predicateType}'`;
  const predicate = SignaturePredicate.safeParse(opened.statement.predicate);
  if (!predicate.success) return 'its predicate does not list resources';
  const signed = new Map(predicate.data.resources.map((r) => [r.name, `sha256:${r.digest}`]));
  const expected = new Map(files.map((f) => [f.name, f.digest]));
  const wrong = [...new Set([...signed.keys(), ...expected.keys()])].filter((n) => signed.get(n) !== expected.get(n));
  if (wrong.length) return `it does not sign this version's files as they are (${wrong.join(', ')})`;
  const root = (modelSignatureStatement('', files) as { subject: [{ digest: { sha256: string } }] }).subject[0].digest.sha256;
  if (opened.statement.subject[0]?.digest.sha256 !== root) return 'its subject digest does not match its resources';
  return null;
}

// ---- SLSA provenance

/** What a version's provenance states (docs/trust-provenance.md names each field). */
export interface ProvenanceFacts {
  model: string;
  files: NamedFile[];
  spec: { digest: string; path?: string | undefined; formats: string[]; alias: string; environment: string | null };
  modelFile: { digest: string; path: string } | null;
  /** A foreign archive's references, when the version was not built from a model file. */
  foreign: { artifact: string; references: string } | null;
  params: unknown;
  trigger: string;
  commit: string | null;
  actor: string;
  environment: {
    name: string | null;
    torchVersion: string | null;
    declared: { base: string; digest: string; resolved: string[]; installed: string[] } | null;
    packages: Record<string, string>;
  };
  gates: { gate: string; passed: boolean; code: string | null; message: string }[];
  parity: {
    atol: number;
    rtol: number;
    runtimes: {
      runtime: string;
      format: string | null;
      environment: string | null;
      fuser: string;
      passed: boolean;
      code: string | null;
      max_abs_error: number | null;
      max_rel_error: number | null;
    }[];
  } | null;
  manifest: string;
  builder: { identity: string; deployment: string | null; buildId: string | null; ttdVersion: string };
  runId: string;
  startedOn: string;
  finishedOn: string;
}

/** The in-toto statement with the SLSA provenance v1 predicate of one version. */
export function provenanceStatement(f: ProvenanceFacts): object {
  const packages = (list: string[]) =>
    list.map((p) => {
      const [name, version] = p.split('==');
      return {
        uri: `pkg:pypi/${encodeURIComponent((name ?? p).toLowerCase())}${version ? `@${encodeURIComponent(version)}` : ''}`,
        name: p,
      };
    });
  const sha = (digest: string) => ({ sha256: digestHex(digest) });
  return {
    _type: STATEMENT_TYPE,
    subject: f.files.map((file) => ({ name: file.name, digest: sha(file.digest) })),
    predicateType: SLSA_PROVENANCE_PREDICATE,
    predicate: {
      buildDefinition: {
        buildType: TTD_BUILD_TYPE,
        externalParameters: {
          model: f.model,
          spec: { digest: f.spec.digest, formats: f.spec.formats, alias: f.spec.alias, environment: f.spec.environment },
          ...(f.modelFile ? { modelFile: f.modelFile } : {}),
          ...(f.foreign ? { foreignArtifact: f.foreign } : {}),
          params: f.params,
          trigger: f.trigger,
          commit: f.commit,
          actor: f.actor,
        },
        internalParameters: {
          environment: {
            name: f.environment.name,
            torchVersion: f.environment.torchVersion,
            packages: f.environment.packages,
            ...(f.environment.declared ? { declared: f.environment.declared } : {}),
          },
          gates: f.gates,
          ...(f.parity ? { parity: f.parity } : {}),
        },
        resolvedDependencies: [
          ...(f.modelFile ? [{ name: 'model file', uri: `file:${f.modelFile.path}`, digest: sha(f.modelFile.digest) }] : []),
          ...(f.foreign
            ? [
                { name: 'foreign artifact', digest: sha(f.foreign.artifact) },
                { name: 'references', digest: sha(f.foreign.references) },
              ]
            : []),
          { name: 'spec', digest: sha(f.spec.digest) },
          ...(f.environment.torchVersion && !('torch' in f.environment.packages)
            ? [{ uri: `pkg:pypi/torch@${encodeURIComponent(f.environment.torchVersion)}`, name: 'torch' }]
            : []),
          ...Object.entries(f.environment.packages).map(([name, version]) => ({
            uri: `pkg:pypi/${encodeURIComponent(name)}@${encodeURIComponent(version)}`,
            name,
          })),
          ...(f.environment.declared ? packages(f.environment.declared.resolved) : []),
          ...(f.environment.declared ? [{ name: 'environment', digest: sha(f.environment.declared.digest) }] : []),
        ],
      },
      runDetails: {
        builder: {
          id: `urn:ttd:worker:${f.builder.identity}`,
          version: {
            ttd: f.builder.ttdVersion,
            ...(f.builder.deployment ? { deployment: f.builder.deployment } : {}),
            ...(f.builder.buildId ? { buildId: f.builder.buildId } : {}),
          },
        },
        metadata: { invocationId: f.runId, startedOn: f.startedOn, finishedOn: f.finishedOn },
        byproducts: [{ name: 'ttd manifest', digest: sha(f.manifest) }],
      },
    },
  };
}

/** Checks a provenance envelope: signed by the key, and its subjects exactly `files`. Returns the statement, or why not. */
export function checkProvenance(envelopeText: string, verifier: ModelVerifier | null, files: NamedFile[]): Opened {
  let json: unknown;
  try {
    json = JSON.parse(envelopeText);
  } catch {
    return { ok: false, why: 'it is not JSON' };
  }
  const opened = openEnvelope(json, verifier);
  if (!opened.ok) return opened;
  if (opened.statement.predicateType !== SLSA_PROVENANCE_PREDICATE)
    return { ok: false, why: `its predicate is '${opened.statement.predicateType}'` };
  const subjects = new Map(opened.statement.subject.map((s) => [s.name, s.digest.sha256 ? `sha256:${s.digest.sha256}` : undefined]));
  const expected = new Map(files.map((f) => [f.name, f.digest]));
  const wrong = [...new Set([...subjects.keys(), ...expected.keys()])].filter((n) => subjects.get(n) !== expected.get(n));
  if (wrong.length) return { ok: false, why: `its subjects are not this version's files as they are (${wrong.join(', ')})` };
  return opened;
}
