// A version's model card: what the model is, what it was trained on, how it was checked and who promoted it, built on
// demand from what the store already holds (the version record, the manifest, the audit chain). buildModelCard is pure;
// loadModelCard reads what it needs. The JSON is a public contract (docs/model-card.md): add fields, never rename.
import { fuserShown, runtimeVersion, type GateResult, type ParityRuntimeReport } from '../contract/results';
import type { CaseReport } from '../contract/ops';
import { CardSchema } from '../spec/spec';
import { blobKey, type ObjectStore } from '../store/store';
import { registeringRecord, trustedChain, type AuditProblem, type AuditRecord, type TrustOptions } from './audit';
import { ErrorCode } from '../contract/errors';
import { formatsOf, legacyReports, readManifest, readVersionRecord, type Manifest, type VersionRecord } from './records';
import { registryKey, type ModelState, type ModelVersion } from './registry';

/** The card's format tag: a reader checks it before trusting the shape. */
export const CARD_FORMAT = 'ttd-model-card/1';

/** A fact a stage recorded in support of a gate, as a name and a short value. */
export type CardFactValue = string | number | boolean | null;

/** What one stage's output says in support of a gate, summarised (never the whole output). */
export interface CardEvidence {
  stage: string;
  facts: Record<string, CardFactValue>;
}

/** One gate of the version record with the stage outputs that back it. */
export interface CardGate {
  gate: string;
  passed: boolean;
  code: string | null;
  message: string;
  warnings: string[];
  evidence: CardEvidence[];
}

/** One runtime × format run of the parity check, with the tolerance it was judged by. */
export interface CardParityRow {
  format: string;
  runtime: string;
  environment: string | null;
  /** The executor mode: `off`/`on` (the fuser as served), `interpreter`, or ONNX Runtime's `graph opt all`/`graph opt off`. */
  mode: string;
  /** The runtime's torch (or `onnxruntime X`) version. */
  version: string | null;
  maxAbsError: number | null;
  maxRelError: number | null;
  atol: number;
  rtol: number;
  passed: boolean;
  code: string | null;
}

/** An audit record that concerns this version: one that names it (or its digest), or one that moved an alias off it. */
export interface CardAuditRecord {
  seq: number;
  at: string;
  action: string;
  actor: string;
  alias: string | null;
  version: number | null;
  previousVersion: number | null;
  approvedBy: string | null;
  reason: string | null;
  runId: string | null;
  /** `this_version`: the record names this version or its digest; `moved_away`: it moved an alias from this version. */
  concerns: 'this_version' | 'moved_away';
}

/** A file the version's data is defined by or was checked with, with its size where the store has it. */
export interface CardDataFile {
  /** `model_file` (its dataset() makes the training data), `references` (reference inputs and eager outputs the gates
   * compared each format against), `foreign_references` (the spec's `references:` file of a foreign artifact). */
  role: 'model_file' | 'references' | 'foreign_references';
  /** The formats whose checks used it (references only; empty for the model file). */
  formats: string[];
  digest: string;
  bytes: number | null;
}

/** A signature or attestation stored with the version (an OpenSSF model signature, SLSA provenance), by store digest. */
export interface CardSignature {
  /** `signature` (the OpenSSF model signature, a Sigstore bundle) or `provenance` (SLSA v1, a DSSE envelope). */
  kind: string;
  digest: string;
  /** The model signing key's id (hex sha256 of its PEM public key, the bundle's hint); null in older records. */
  keyId: string | null;
  /** The ttd command that writes it for a verifier that is not ttd's (docs/trust-provenance.md). */
  fetch: string;
}

/** The whole card (`ttd card --json`). */
export interface ModelCard {
  format: typeof CARD_FORMAT;
  model: string;
  version: number;
  /** The version's digest (its primary artifact's). */
  digest: string;
  aliases: string[];
  createdAt: string;
  /** Why a registered version was not promoted (`not_better_than_production`), else null. */
  kept: string | null;
  artifacts: { format: string; digest: string; references: string | null; bytes: number | null }[];
  spec: {
    digest: string;
    /** The model file (or foreign artifact) path as the spec wrote it. */
    model: string | null;
    modelFile: { digest: string; bytes: number | null } | null;
    foreign: boolean;
  };
  environment: { name: string | null; torchVersion: string | null; base: string | null; digest: string | null; resolved: string[] };
  run: { runId: string; actor: string; trigger: string | null; commit: string | null };
  data: {
    /** `model_file`: made by the model file's dataset(params, split); `foreign`: the spec's references file. */
    source: 'model_file' | 'foreign';
    trainingRows: number | null;
    files: CardDataFile[];
    /** What the store does not record about the data, in words. */
    notRecorded: string;
  };
  parameters: Record<string, unknown>;
  /** The spec's `train` section (epochs, batch size, optimizer, lr, loss, seed); null for a foreign artifact. */
  training: Record<string, unknown> | null;
  metrics: { epochs: number | null; rows: number | null; finalLoss: number | null; losses: (number | null)[] } | null;
  gates: CardGate[];
  parity: { atol: number; rtol: number; passed: boolean; rows: CardParityRow[] } | null;
  approval: { by: string; reason: string | null } | null;
  audit: { verified: boolean; problem: { key: string; reason: string; code: string } | null; records: CardAuditRecord[] };
  /** The spec's `card:` section; null when its author wrote none. */
  author: { intendedUse: string | null; limitations: string[]; owners: string[] } | null;
  /** Signatures and attestations stored with the version; empty when it has none. */
  signatures: CardSignature[];
}

/** Everything a card is built from, as read from the store. */
export interface CardSources {
  state: ModelState;
  version: ModelVersion;
  record: VersionRecord;
  manifest: Manifest;
  /** The model's audit chain as checked (records up to the first problem). */
  chain: { records: AuditRecord[]; problem: AuditProblem | null };
  /** Blob sizes by digest; a digest missing here has no recorded size. */
  sizes: Record<string, number | null>;
}

/** Reads what a version's card needs and builds it. The audit chain is checked as `ttd pull` checks it (links,
 * signatures, anchor); the card lists the records before any problem and says what the problem is. */
export async function loadModelCard(store: ObjectStore, state: ModelState, version: ModelVersion, trust: TrustOptions): Promise<ModelCard> {
  const record = await readVersionRecord(store, version.record);
  const manifest = await readManifest(store, record.manifest);
  const checked = await trustedChain(store, state.model, trust);
  // The card is only as good as the version record it reads: one that is not the record the version's registration
  // recorded (a store writer's) is said, as the chain's problem.
  const registered = registeringRecord(checked.records, version.version);
  const chain =
    !checked.problem && registered && registered.record !== version.record
      ? {
          ...checked,
          problem: {
            key: registryKey(state.model),
            code: ErrorCode.registryUnbacked,
            reason: `version ${version.version} points at version record ${version.record}, but audit record ${registered.seq} registered ${registered.record}: this card is built from a record the audit trail does not back`,
          },
        }
      : checked;
  const sizes: Record<string, number | null> = {};
  for (const digest of sizedDigests(manifest)) sizes[digest] = (await store.head(blobKey(digest)))?.size ?? null;
  return buildModelCard({ state, version, record, manifest, chain, sizes });
}

/** The digests whose sizes a card shows: the artifacts, the references and the model file. */
function sizedDigests(m: Manifest): string[] {
  const formats = Object.values(formatsOf(m)).flatMap((f) => (f ? [f.digest, ...(f.references ? [f.references] : [])] : []));
  const model = m.files.modelFile;
  return [...new Set([...formats, m.files.references, ...(model ? [model] : [])])];
}

/** Builds a version's card from its sources; reads nothing. */
export function buildModelCard(src: CardSources): ModelCard {
  const { state, version, record, manifest } = src;
  const spec = asObject(manifest.spec);
  const stages = manifest.format === 'ttd-manifest/2' ? manifest.stages : undefined;
  const formats = formatsOf(manifest);
  const size = (d: string | undefined | null) => (d ? (src.sizes[d] ?? null) : null);
  const foreign = typeof spec.artifact === 'string' || Boolean(stages?.verify_artifact);
  const modelFile = manifest.files.modelFile;
  const training = legacyReports(manifest).training;
  const environment = manifest.format === 'ttd-manifest/2' ? manifest.environment : undefined;
  const envSpec = spec.environment;
  const parityRows = (record.parity?.runtimes ?? []).map((p) => parityRow(p, record.parity!.atol, record.parity!.rtol));

  return {
    format: CARD_FORMAT,
    model: state.model,
    version: version.version,
    digest: version.digest,
    aliases: Object.entries(state.aliases)
      .filter(([, a]) => a.version === version.version)
      .map(([name]) => name)
      .sort(),
    createdAt: version.createdAt,
    kept: record.kept ?? null,
    artifacts: Object.entries(formats).map(([format, a]) => ({
      format,
      digest: a!.digest,
      references: a!.references ?? null,
      bytes: size(a!.digest),
    })),
    spec: {
      digest: manifest.specDigest,
      model: typeof spec.artifact === 'string' ? spec.artifact : typeof spec.model === 'string' ? spec.model : null,
      modelFile: modelFile ? { digest: modelFile, bytes: size(modelFile) } : null,
      foreign,
    },
    environment: {
      name: typeof envSpec === 'string' ? envSpec : typeof asObject(envSpec).base === 'string' ? (asObject(envSpec).base as string) : null,
      torchVersion: environment?.torch_version ?? torchVersionOf(stages, record.parity?.runtimes ?? []),
      base: environment?.base ?? null,
      digest: environment?.digest ?? null,
      resolved: environment?.resolved ?? [],
    },
    run: { runId: version.runId, actor: record.actor, trigger: record.trigger, commit: record.commit },
    data: dataOf(manifest, foreign, training?.rows ?? null, size),
    parameters: asObject(spec.params),
    training: foreign ? null : spec.train !== undefined ? asObject(spec.train) : null,
    metrics: training
      ? { epochs: training.epochs, rows: training.rows, finalLoss: training.losses.at(-1) ?? null, losses: training.losses }
      : null,
    gates: gatesOf(record.gates, manifest, record, Object.keys(formats)),
    parity: record.parity
      ? {
          atol: record.parity.atol,
          rtol: record.parity.rtol,
          passed: record.parity.passed ?? parityRows.every((r) => r.passed),
          rows: parityRows,
        }
      : null,
    approval: record.approval ?? null,
    audit: {
      verified: src.chain.problem === null,
      problem: src.chain.problem ? { key: src.chain.problem.key, reason: src.chain.problem.reason, code: src.chain.problem.code } : null,
      records: auditOf(src.chain.records, version),
    },
    author: authorOf(spec.card),
    // Filled by the signing and provenance of issue 26 (items 1 and 2) once the version record carries them.
    signatures: signaturesOf(record, `${state.model}:${version.version}`),
  };
}

function asObject(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** The torch a version was built with, as its stages or its own-environment parity runs recorded it. */
function torchVersionOf(
  stages: Extract<Manifest, { format: 'ttd-manifest/2' }>['stages'] | undefined,
  parity: ParityRuntimeReport[],
): string | null {
  return (
    stages?.fusion?.torch_version ??
    stages?.export?.torch_version ??
    stages?.compile?.torch_version ??
    stages?.onnx?.torch_version ??
    parity.find((p) => p.runtime === 'python' && !p.environment?.includes('@'))?.torch_version ??
    null
  );
}

function dataOf(
  m: Manifest,
  foreign: boolean,
  trainingRows: number | null,
  size: (d: string | undefined) => number | null,
): ModelCard['data'] {
  const files: CardDataFile[] = [];
  if (m.files.modelFile) files.push({ role: 'model_file', formats: [], digest: m.files.modelFile, bytes: size(m.files.modelFile) });
  // Formats checked against the same references (aoti and onnx share the exported program's) share one row.
  for (const [format, a] of Object.entries(formatsOf(m))) {
    const ref = a?.references ?? (format === 'torchscript' ? m.files.references : undefined);
    if (!ref) continue;
    const row = files.find((f) => f.digest === ref && f.role !== 'model_file');
    if (row) row.formats.push(format);
    else files.push({ role: foreign ? 'foreign_references' : 'references', formats: [format], digest: ref, bytes: size(ref) });
  }
  return {
    source: foreign ? 'foreign' : 'model_file',
    trainingRows,
    files,
    notRecorded: foreign
      ? 'the artifact was trained elsewhere: ttd records its reference inputs and outputs, not the data it was trained on'
      : "the spec names no data files: the model file's dataset(params, split) makes the data, so the model file's digest and the params fix it; ttd records the training rows' count, not their digest or size",
  };
}

/** The parity runs as rows, in the order the check ran them. */
function parityRow(p: ParityRuntimeReport, atol: number, rtol: number): CardParityRow {
  return {
    format: p.format ?? 'torchscript',
    runtime: p.runtime,
    environment: p.environment ?? null,
    mode: fuserShown(p),
    version: runtimeVersion(p),
    maxAbsError: p.max_abs_error,
    maxRelError: p.max_rel_error,
    atol,
    rtol,
    passed: p.passed,
    code: p.code,
  };
}

/** Each gate with what backs it. The parity gates come one per format, in the order of the version's formats. */
function gatesOf(gates: GateResult[], m: Manifest, record: VersionRecord, formats: string[]): CardGate[] {
  let parityIndex = 0;
  return gates.map((g) => {
    const format = g.gate === 'parity' ? formats[parityIndex++] : undefined;
    return {
      gate: g.gate,
      passed: g.passed,
      code: g.code,
      message: g.message,
      warnings: g.warnings ?? [],
      evidence: evidenceOf(g.gate, m, record, format),
    };
  });
}

type Facts = Record<string, CardFactValue>;

/** How the reference cases of a stage went: how many agreed, and the largest errors. */
function casesFacts(cases: CaseReport[] | undefined): Facts {
  if (!cases?.length) return {};
  const max = (k: 'max_abs_error' | 'max_rel_error') => {
    const values = cases.map((c) => c[k]).filter((v): v is number => v !== null);
    return values.length ? Math.max(...values) : null;
  };
  return {
    cases: cases.length,
    cases_agreeing: cases.filter((c) => c.passed).length,
    max_abs_error: max('max_abs_error'),
    max_rel_error: max('max_rel_error'),
  };
}

function chunkFacts(checks: { chunks: number; failed: number } | undefined): Facts {
  return checks ? { example_shaped_chunks: checks.chunks, chunks_failed: checks.failed } : {};
}

/** The stage outputs behind one gate, summarised. */
function evidenceOf(gate: string, m: Manifest, record: VersionRecord, format: string | undefined): CardEvidence[] {
  const out: CardEvidence[] = [];
  const add = (stage: string, facts: Facts) => out.push({ stage, facts });
  if (m.format !== 'ttd-manifest/2') {
    const r = m.reports;
    if (gate === 'training' && r.training)
      add('train', { epochs: r.training.epochs, rows: r.training.rows, final_loss: r.training.losses.at(-1) ?? null });
    if (gate === 'optimize' && r.optimize) add('optimize', { method: r.optimize.method, max_abs_error: r.optimize.max_abs_error });
    if (gate === 'fusion' && r.fusion)
      add('fusion', { require: r.fusion.require, groups: r.fusion.groups.length, max_abs_error: r.fusion.max_abs_error });
  } else {
    const s = m.stages;
    switch (gate) {
      case 'environment':
        if (m.environment) {
          add('environment', {
            base: m.environment.base,
            digest: m.environment.digest,
            torch_version: m.environment.torch_version,
            resolved_packages: m.environment.resolved.length,
          });
        }
        break;
      case 'training':
        if (s.train?.status === 'ok') {
          add('train', {
            epochs: s.train.epochs_completed,
            rows: s.train.rows,
            final_loss: s.train.losses.at(-1) ?? null,
            resumed_from_epoch: s.train.resumed_from_epoch,
          });
        }
        break;
      case 'trace':
        if (s.trace) {
          add('trace', {
            mode: s.trace.mode,
            node_total: s.trace.node_total,
            captures: s.trace.captures.length,
            tracer_warnings: s.trace.tracer_warnings?.length ?? 0,
          });
        }
        if (s.verify) {
          add('verify', {
            ...casesFacts(s.verify.cases),
            ...chunkFacts(s.verify.example_shape_checks),
            train_mode_ops: s.verify.train_mode_ops.length,
            nondeterministic_nodes: s.verify.nondeterministic_nodes.length,
          });
        }
        if (s.verify_artifact) {
          add('verify_artifact', {
            ...casesFacts(s.verify_artifact.cases),
            case_count: s.verify_artifact.case_count,
            node_total: s.verify_artifact.node_total,
            train_mode_ops: s.verify_artifact.train_mode_ops.length,
          });
        }
        break;
      case 'optimize':
        if (s.optimize) {
          add('optimize', {
            method: s.optimize.method,
            node_total_before: s.optimize.node_total_before,
            node_total_after: s.optimize.node_total_after,
            max_abs_error: s.optimize.max_abs_error,
          });
        }
        break;
      case 'fusion':
        if (s.fusion) {
          add('fusion', {
            require: s.fusion.require,
            groups: s.fusion.groups.length,
            unfused_pointwise: s.fusion.unfused_pointwise.length,
            ...(s.fusion.fuses !== undefined ? { build_fuses: s.fusion.fuses } : {}),
            ...(s.fusion.compared !== undefined ? { fused_compared: s.fusion.compared } : {}),
            max_abs_error: s.fusion.max_abs_error,
            torch_version: s.fusion.torch_version,
          });
        }
        break;
      case 'export':
        if (s.export) {
          add('export', {
            ...casesFacts(s.export.cases),
            ...chunkFacts(s.export.example_shape_checks),
            node_total: s.export.node_total,
            dynamic_dims: s.export.dynamic_dims.map((d) => `input ${d.input} dim ${d.dim}: ${d.min}..${d.max ?? '∞'}`).join('; ') || 'none',
            torch_version: s.export.torch_version,
          });
        }
        break;
      case 'compile':
        if (s.compile) {
          add('compile', {
            ...casesFacts(s.compile.cases),
            kernels: s.compile.kernel_count,
            package_bytes: s.compile.package_bytes,
            torch_version: s.compile.torch_version,
          });
        }
        break;
      case 'onnx':
        if (s.onnx) {
          add('onnx', {
            ...casesFacts(s.onnx.cases),
            ...chunkFacts(s.onnx.example_shape_checks),
            opset: s.onnx.opset,
            node_total: s.onnx.node_total,
            onnx_version: s.onnx.onnx_version,
            onnxruntime_version: s.onnx.onnxruntime_version,
          });
        }
        break;
    }
  }
  if (gate === 'parity' && record.parity) {
    const rows = record.parity.runtimes.filter((p) => format === undefined || (p.format ?? 'torchscript') === format);
    const errors = rows.map((p) => p.max_abs_error).filter((v): v is number => v !== null);
    add(format ? `parity (${format})` : 'parity', {
      runs: rows.length,
      runs_agreeing: rows.filter((p) => p.passed).length,
      max_abs_error: errors.length ? Math.max(...errors) : null,
      atol: record.parity.atol,
      rtol: record.parity.rtol,
    });
  }
  if (gate === 'promotion') {
    add('promotion', {
      approved_by: record.approval?.by ?? null,
      kept: record.kept ?? null,
    });
  }
  return out;
}

/** The records of the chain that concern this version, oldest first. */
function auditOf(records: AuditRecord[], version: ModelVersion): CardAuditRecord[] {
  const out: CardAuditRecord[] = [];
  for (const r of records) {
    const named = r.digest === version.digest || r.version === version.version;
    const movedAway = !named && r.previousVersion === version.version;
    if (!named && !movedAway) continue;
    out.push({
      seq: r.seq,
      at: r.at,
      action: r.action,
      actor: r.actor,
      alias: r.alias,
      version: r.version,
      previousVersion: r.previousVersion,
      approvedBy: r.approvedBy ?? null,
      reason: r.reason ?? null,
      runId: r.runId,
      concerns: named ? 'this_version' : 'moved_away',
    });
  }
  return out;
}

/** The spec's `card:` section, limitations as a list; null when there is none (or a stored spec's does not fit). */
function authorOf(card: unknown): ModelCard['author'] {
  if (card === undefined) return null;
  const parsed = CardSchema.safeParse(card);
  if (!parsed.success) return null;
  const { intended_use, limitations, owners } = parsed.data;
  return {
    intendedUse: intended_use ?? null,
    limitations: limitations === undefined ? [] : typeof limitations === 'string' ? [limitations] : limitations,
    owners: owners ?? [],
  };
}

/** Signatures a version record carries (none yet: issue 26 adds `signature` and `provenance` digests to it). */
function signaturesOf(record: VersionRecord, ref: string): CardSignature[] {
  const fetch = { signature: `ttd pull ${ref} --signature -o DIR`, provenance: `ttd provenance ${ref}` };
  const out: CardSignature[] = [];
  for (const kind of ['signature', 'provenance'] as const) {
    const digest = record[kind];
    if (typeof digest === 'string') out.push({ kind, digest, keyId: record.signingKey ?? null, fetch: fetch[kind] });
  }
  return out;
}
