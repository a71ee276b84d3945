// The records a version is made of, one schema each, shared by their writers and every reader: the manifest (what
// was built, and each stage's result as the stage returned it) and the version record (who, what was checked).
// Records written by earlier versions of ttd still read.
import { z } from 'zod';
import { stageOutputSchema, TorchOps, type StageOutputOf, type TorchOpName } from '../contract/ops';
import { GateResult, ParityRuntimeReport } from '../contract/results';
import { FORMATS, type Format } from '../spec/spec';
import { getBlob, putBlob, type ObjectStore } from '../store/store';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);

/** The digests a version is made of, by role: the artifact and its references always, the rest as the path made them. */
export const ArtifactFiles = z.object({ artifact: digest, references: digest }).catchall(digest);
export type ArtifactFiles = z.infer<typeof ArtifactFiles>;

/** Each build stage's output, unchanged (lib/contract/ops.ts), by op name: the trained, traced, verified, optimized and
 * fused model, or a foreign archive's verification. Every op but hello and evaluate is a build stage. */
type BuildOp = Exclude<TorchOpName, 'hello' | 'evaluate'>;
const BUILD_OPS = (Object.keys(TorchOps) as TorchOpName[]).filter((op): op is BuildOp => op !== 'hello' && op !== 'evaluate');
export const StageOutputs = z.object(
  Object.fromEntries(BUILD_OPS.map((op) => [op, stageOutputSchema(op).optional()])) as {
    [K in BuildOp]: z.ZodOptional<z.ZodType<StageOutputOf<K>>>;
  },
);
export type StageOutputs = z.infer<typeof StageOutputs>;

const ManifestBase = {
  model: z.string(),
  runId: z.string(),
  artifact: z.object({ digest, format: z.string() }),
  files: ArtifactFiles,
  specDigest: z.string(),
  spec: z.unknown(),
};

/** Reports as ttd-manifest/1 stored them and `ttd show --json` prints them (a public contract). */
export const LegacyReports = z.object({
  training: z.object({ losses: z.array(z.number()), epochs: z.number(), rows: z.number() }).optional(),
  trace: z.record(z.string(), z.unknown()).optional(),
  optimize: z
    .object({ method: z.string(), node_total_before: z.number(), node_total_after: z.number(), max_abs_error: z.number().nullable() })
    .loose()
    .optional(),
  fusion: z
    .object({
      require: z.string(),
      groups: z.array(z.object({ kind: z.string(), ops: z.array(z.string()) })),
      unfused_pointwise: z.array(z.string()),
      flags: z.record(z.string(), z.unknown()),
      torch_version: z.string(),
      max_abs_error: z.number().nullable(),
    })
    .loose()
    .optional(),
});
export type LegacyReports = z.infer<typeof LegacyReports>;

/** A version's declared environment: its base, digest, the base's torch, and every package the requirements resolved
 * to (name==version), with those installed beside the base's. */
export const EnvironmentRecord = z.object({
  base: z.string(),
  digest,
  torch_version: z.string(),
  resolved: z.array(z.string()),
  installed: z.array(z.string()),
});
export type EnvironmentRecord = z.infer<typeof EnvironmentRecord>;

/** What the store stage writes: the files of a version, its spec and every build stage's output. */
export const Manifest = z.discriminatedUnion('format', [
  z.object({
    format: z.literal('ttd-manifest/2'),
    ...ManifestBase,
    stages: StageOutputs,
    /** Each format's artifact and the references its parity was checked against (the primary one first). */
    formats: z.partialRecord(z.enum(FORMATS), z.object({ digest, references: digest })).optional(),
    /** The declared environment the version was built in (spec `environment: { base, requirements }`). */
    environment: EnvironmentRecord.optional(),
  }),
  z.object({ format: z.literal('ttd-manifest/1'), ...ManifestBase, reports: LegacyReports }),
]);
export type Manifest = z.infer<typeof Manifest>;
export type ManifestV2 = Extract<Manifest, { format: 'ttd-manifest/2' }>;

/** The parity verdict a version record keeps, with the tolerances it was judged by. */
export const RecordedParity = z.object({
  runtimes: z.array(ParityRuntimeReport),
  atol: z.number(),
  rtol: z.number(),
  passed: z.boolean().optional(),
  code: z.string().nullable().optional(),
  message: z.string().optional(),
});

/** What a version record states: the artifact, its manifest, the run, who, and every check. */
export const VersionRecord = z.object({
  format: z.literal('ttd-version-record/1'),
  model: z.string(),
  artifact: digest,
  manifest: digest,
  runId: z.string(),
  actor: z.string(),
  trigger: z.string().nullable(),
  commit: z.string().nullable(),
  gates: z.array(GateResult),
  parity: RecordedParity.nullable(),
  /** Stage durations up to promotion, and the stages that reused cached outputs. */
  timings: z.record(z.string(), z.number()).optional(),
  cached: z.array(z.string()).optional(),
  /** Who approved, when the spec required approval. */
  approval: z.object({ by: z.string(), reason: z.string().nullable() }).nullable().optional(),
  /** Why a registered version was not promoted (`not_better_than_production`). */
  kept: z.string().optional(),
  /** The version's OpenSSF model signature (a Sigstore bundle) and SLSA provenance (a DSSE envelope), by blob digest,
   * and the key that signed them (lib/registry/attestations.ts); absent from versions registered before signing. */
  signature: digest.optional(),
  provenance: digest.optional(),
  signingKey: z.string().optional(),
});
export type VersionRecord = z.infer<typeof VersionRecord>;

/** A record that does not fit its schema: names the record and the first field that is wrong. */
export class RecordInvalidError extends Error {
  constructor(
    readonly what: string,
    readonly digest: string,
    readonly detail: string,
  ) {
    super(`${what} ${digest} does not fit its schema: ${detail}`);
    this.name = 'RecordInvalidError';
  }
}

async function readRecord<T>(store: ObjectStore, schema: z.ZodType<T>, what: string, at: string): Promise<T> {
  let raw: unknown;
  try {
    raw = JSON.parse((await getBlob(store, at)).toString('utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw new RecordInvalidError(what, at, `not JSON (${err.message})`);
    throw err;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RecordInvalidError(what, at, `${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  return parsed.data;
}

/** Reads a manifest blob through its schema (either format). */
export const readManifest = (store: ObjectStore, at: string) => readRecord(store, Manifest, 'manifest', at);
/** Reads a version record blob through its schema. */
export const readVersionRecord = (store: ObjectStore, at: string) => readRecord(store, VersionRecord, 'version record', at);

/** Writes a manifest (checked against its schema first) and returns its digest. */
export async function writeManifest(store: ObjectStore, manifest: ManifestV2): Promise<string> {
  return putBlob(store, JSON.stringify(Manifest.parse(manifest), null, 2));
}

/** Writes a version record (checked against its schema first) and returns its digest. It holds no timestamp, so a
 * retried activity writes the same digest. */
export async function writeVersionRecord(store: ObjectStore, record: Omit<VersionRecord, 'format'>): Promise<string> {
  return putBlob(store, JSON.stringify(VersionRecord.parse({ format: 'ttd-version-record/1', ...record }), null, 2));
}

/** A manifest's reports in the shape `ttd show --json` has always printed (`training`, `trace`, `optimize`, `fusion`). */
export function legacyReports(m: Manifest): LegacyReports {
  if (m.format === 'ttd-manifest/1') return m.reports;
  const { train, trace, verify, optimize, fusion, verify_artifact: foreign } = m.stages;
  const checked = verify ?? foreign;
  return {
    ...(train?.status === 'ok' ? { training: { losses: train.losses, epochs: train.epochs_completed, rows: train.rows } } : {}),
    ...(checked
      ? {
          trace: {
            mode: trace?.mode ?? 'foreign',
            nodes: trace?.nodes ?? foreign?.nodes,
            node_total: trace?.node_total ?? foreign?.node_total,
            ...(trace ? { example_shapes: trace.example_shapes, warnings: trace.warnings, captures: trace.captures } : {}),
            cases: checked.cases,
            train_mode_ops: checked.train_mode_ops,
            devices: checked.devices,
            nondeterministic_nodes: checked.nondeterministic_nodes,
            gate_warnings: checked.warnings,
            ...(verify?.tracer_warnings ? { tracer_warnings: verify.tracer_warnings } : {}),
          },
        }
      : {}),
    ...(optimize
      ? {
          optimize: {
            method: optimize.method,
            nodes_before: optimize.nodes_before,
            nodes_after: optimize.nodes_after,
            node_total_before: optimize.node_total_before,
            node_total_after: optimize.node_total_after,
            nodes_for_inference: optimize.nodes_for_inference,
            max_abs_error: optimize.max_abs_error,
          },
        }
      : {}),
    ...(fusion
      ? {
          fusion: {
            require: fusion.require,
            groups: fusion.groups,
            unfused_pointwise: fusion.unfused_pointwise,
            flags: fusion.flags,
            torch_version: fusion.torch_version,
            max_abs_error: fusion.max_abs_error,
            // What the build that formed the groups does, and whether fused outputs were compared (absent in older records).
            ...(fusion.build ? { build: fusion.build } : {}),
            ...(fusion.fuses !== undefined ? { fuses: fusion.fuses } : {}),
            ...(fusion.compared !== undefined ? { compared: fusion.compared } : {}),
          },
        }
      : {}),
  };
}

/** Each format's artifact of a version, by format: `{ torchscript: { digest }, aoti: { digest } }` (`ttd show --json`,
 * `ttd pull --format`); a version stored before formats has its one TorchScript archive. */
export function formatsOf(m: Manifest): Partial<Record<Format, { digest: string; references?: string }>> {
  if (m.format === 'ttd-manifest/2' && m.formats) return m.formats;
  return { torchscript: { digest: m.artifact.digest } };
}
