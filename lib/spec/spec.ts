// The pipeline spec (pipeline.yaml or .json): a public contract, validated with zod at the boundary.
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { LOSSES } from '../contract/ops';
import { checkArchiveLimits, DEFAULT_ARCHIVE_LIMITS, type ArchiveLimits } from '../limits/archive-limits';
import { canonicalJson, digestBytes } from '../store/digest';
import { ErrorCode, TtdError } from '../contract/errors';
import { checkInputFile, copyInputFile, readInputFile } from './input-files';
import { NAME_RE } from '../registry/names';
import { checkReferences } from './references';
import { putBlob, putBlobFile, type ObjectStore } from '../store/store';
import { declaredId, readRequirementsFile, requirementProblem, type DeclaredEnvironment } from '../environments/declared-environments';

/** The spec's upper bounds (README, "The pipeline spec"): far above real use, below what breaks a run. */
export const SPEC_LIMITS = {
  /** Every epoch's loss travels in the workflow history and the version record. */
  epochs: 10_000,
  /** A training batch is built in memory at once: a batch of millions of rows costs gigabytes before the first step. */
  trainBatchSize: 65_536,
  /** Each size is a batch built from validation rows and run eagerly, traced, optimized, fused and in every runtime. */
  traceBatchSize: 65_536,
  /** parity.atol and parity.rtol: a tolerance above 1 lets outputs that are wrong in every digit pass the gates. */
  tolerance: 1,
} as const;

const positive = (field: string) =>
  z.number({ error: `${field} must be a positive number` }).positive({ error: `${field} must be a positive number` });
const positiveInt = (field: string, max?: number) => {
  const expected = `${field} must be a positive integer${max === undefined ? '' : ` no larger than ${max}`}`;
  const int = z.number({ error: expected }).int({ error: expected }).positive({ error: expected });
  return max === undefined ? int : int.max(max, { error: expected });
};
const nonNegative = (field: string) =>
  z.number({ error: `${field} must be a number >= 0` }).min(0, { error: `${field} must be a number >= 0` });
const tolerance = (field: string) => {
  const expected = `${field} must be a finite number from 0 to ${SPEC_LIMITS.tolerance}`;
  return z.number({ error: expected }).min(0, { error: expected }).max(SPEC_LIMITS.tolerance, { error: expected });
};
/** A list whose entries must differ: a repeated one would be checked (and reported) twice. */
const uniqueList = <T extends z.ZodType>(entry: T, field: string, what: string, error: string) =>
  z.array(entry, { error }).superRefine((items, ctx) => {
    const repeated = items.filter((item, i) => items.indexOf(item) !== i);
    if (repeated.length) {
      ctx.addIssue({
        code: 'custom',
        input: items,
        message: `${field} must list each ${what} once; ${[...new Set(repeated)].map((v) => JSON.stringify(v)).join(', ')} appears more than once`,
      });
    }
  });

const SEED_EXPECTED = `train.seed must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}`;

const TrainSchema = z.strictObject({
  epochs: positiveInt('train.epochs', SPEC_LIMITS.epochs).default(10),
  batch_size: positiveInt('train.batch_size', SPEC_LIMITS.trainBatchSize).default(32),
  optimizer: z.enum(['adam', 'sgd'], { error: 'train.optimizer must be one of adam, sgd' }).default('adam'),
  lr: positive('train.lr').default(0.001),
  loss: z.enum(LOSSES, { error: `train.loss must be one of ${LOSSES.join(', ')}` }).default('mse'),
  // Integers beyond 2^53 - 1 do not survive JSON: the torch side would seed with another number.
  seed: z.number({ error: SEED_EXPECTED }).int({ error: SEED_EXPECTED }).min(0, { error: SEED_EXPECTED }).default(0),
});

/** trace.accept_captures entries: a Python file's name (no directory) and a line number, as gate messages print them. */
const ACCEPT_RE = /^[^/\\:\s]+\.py:[1-9][0-9]{0,6}$/;
const ACCEPT_EXPECTED = 'trace.accept_captures entries must be FILE:LINE, a model file name and a line number such as model.py:22';

const TraceSchema = z.strictObject({
  batch_sizes: uniqueList(
    positiveInt('trace.batch_sizes[]', SPEC_LIMITS.traceBatchSize),
    'trace.batch_sizes',
    'size',
    'trace.batch_sizes must be a list of positive integers',
  ).default([1, 7]),
  mode: z.enum(['trace', 'script'], { error: 'trace.mode must be one of trace, script' }).default('trace'),
  // Where the artifact will be served: device constants baked into the graph must match it.
  target_device: z
    .string({ error: 'trace.target_device must be a device name such as cpu or cuda' })
    .regex(/^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$/, { error: 'trace.target_device must be cpu, cuda, cuda:N, mps or xpu' })
    .default('cpu'),
  // Captures a user knows to be safe (a value from the inputs that the trace may freeze), by the model file's name and
  // line, as the trace gate's message names them. Optional (not defaulted) so that older specs keep their digest.
  accept_captures: uniqueList(
    z.string({ error: ACCEPT_EXPECTED }).regex(ACCEPT_RE, { error: (issue) => `${ACCEPT_EXPECTED} (got ${JSON.stringify(issue.input)})` }),
    'trace.accept_captures',
    'capture',
    'trace.accept_captures must be a list of FILE:LINE strings such as model.py:22',
  ).optional(),
});

const OptimizeSchema = z.strictObject({
  method: z
    .enum(['freeze', 'optimize_for_inference'], { error: 'optimize.method must be one of freeze, optimize_for_inference' })
    .default('freeze'),
});

export const FUSION_REQUIREMENTS = ['none', 'any', 'pointwise-chains'] as const;
export const FUSED_RUN_CHOICES = ['auto', 'always', 'never'] as const;
const FusionSchema = z.strictObject({
  require: z.enum(FUSION_REQUIREMENTS, { error: `fusion.require must be one of ${FUSION_REQUIREMENTS.join(', ')}` }).default('none'),
  // Fused runs (the fusion stage's fused-vs-unfused check, parity's fused runs): auto, only where the build really
  // fuses (CUDA, a CPU build with LLVM); always, also through NNC's interpreter on a CPU build without LLVM (a mode no
  // server runs, about a hundred times slower); never. Optional, so that older specs keep their digest.
  fused_runs: z.enum(FUSED_RUN_CHOICES, { error: `fusion.fused_runs must be one of ${FUSED_RUN_CHOICES.join(', ')}` }).optional(),
});

/** The deployable formats a run can produce: a TorchScript archive, an AOTInductor package (torch.export), and an ONNX
 * model (torch.onnx from the torch.export program, run by ONNX Runtime where no torch exists). */
export const FORMATS = ['torchscript', 'aoti', 'onnx'] as const;
export type Format = (typeof FORMATS)[number];

export const RUNTIMES = ['python', 'libtorch'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];

/** A parity target: a runtime of the run's own environment (`python`), or of another one (`libtorch@torch-1.13`,
 * "our serving fleet runs libtorch 1.13"). */
export type ParityTarget = RuntimeName | `${RuntimeName}@${string}`;
const TARGET_RE = /^(python|libtorch)(@[a-z0-9][a-z0-9._-]{0,63})?$/;

/** The runtime and the environment (undefined: the run's own) of a parity target. */
export function parseTarget(target: ParityTarget): { runtime: RuntimeName; environment?: string } {
  const [runtime, environment] = target.split('@') as [RuntimeName, string | undefined];
  return environment === undefined ? { runtime } : { runtime, environment };
}

const ParitySchema = z.strictObject({
  runtimes: uniqueList(
    z
      .string({ error: `parity.runtimes entries must be one of ${RUNTIMES.join(', ')}, optionally @ENVIRONMENT (python@torch-1.13)` })
      .regex(TARGET_RE, {
        error: `parity.runtimes entries must be one of ${RUNTIMES.join(', ')}, optionally @ENVIRONMENT (python@torch-1.13)`,
      })
      .transform((t) => t as ParityTarget),
    'parity.runtimes',
    'runtime',
    `parity.runtimes must be a list of runtimes (${RUNTIMES.join(', ')})`,
  )
    .min(1, { error: 'parity.runtimes must name at least one runtime' })
    .default(['python', 'libtorch']),
  atol: tolerance('parity.atol').default(1e-5),
  rtol: tolerance('parity.rtol').default(1e-4),
});

const SCALE_EXPECTED = `time_limits.scale must be a number from 1 to ${1000}`;
const TimeLimitsSchema = z.strictObject({
  scale: z.number({ error: SCALE_EXPECTED }).min(1, { error: SCALE_EXPECTED }).max(1000, { error: SCALE_EXPECTED }).default(1),
});

/** The bounds of the spec's `card:` section: a card is a page people read, and the spec travels in every run's history. */
export const CARD_LIMITS = { text: 4000, items: 50, item: 1000, owner: 200 } as const;

const cardText = (field: string, max: number, expected: string) => {
  const message = `${field} must be ${expected}, from 1 to ${max} characters`;
  return z.string({ error: message }).min(1, { error: message }).max(max, { error: message });
};
const OWNER_EXPECTED = 'card.owners must be a list of the people or teams who answer for the model, such as [ml-team@example.com]';
const LIMITATION_EXPECTED = 'card.limitations must be a string, or a list of strings (one limitation each)';

/** `card:` what the spec's author says of the model, shown on its model card (`ttd card`): what it is for, where it
 * falls short, and who answers for it. Optional, so that older specs keep their digest. */
export const CardSchema = z.strictObject(
  {
    intended_use: cardText('card.intended_use', CARD_LIMITS.text, 'a string saying what the model is for').optional(),
    // A string or a list: the lengths are checked after the shape, so that a bad entry is named by its index.
    limitations: z
      .union([z.string(), z.array(z.string())], { error: LIMITATION_EXPECTED })
      .superRefine((value, ctx) => {
        const problem = (input: string, path: number[], field: string, max: number) => {
          if (input.length >= 1 && input.length <= max) return;
          ctx.addIssue({ code: 'custom', path, input, message: `${field} must be a string, from 1 to ${max} characters` });
        };
        if (typeof value === 'string') return problem(value, [], 'card.limitations', CARD_LIMITS.text);
        if (value.length > CARD_LIMITS.items) {
          ctx.addIssue({
            code: 'custom',
            input: `a list of ${value.length} limitations`,
            message: `card.limitations must list at most ${CARD_LIMITS.items} limitations`,
          });
        }
        value.forEach((item, i) => problem(item, [i], 'card.limitations[]', CARD_LIMITS.item));
      })
      .optional(),
    owners: uniqueList(cardText('card.owners[]', CARD_LIMITS.owner, 'a name or address'), 'card.owners', 'owner', OWNER_EXPECTED)
      .max(CARD_LIMITS.items, { error: `card.owners must list at most ${CARD_LIMITS.items} owners` })
      .optional(),
  },
  { error: 'card must be a mapping of intended_use, limitations and owners' },
);

const DURATION_RE = /^\d+(\.\d+)?\s*(ms|s|m|h|d|milliseconds?|seconds?|minutes?|hours?|days?)$/;

const PromoteSchema = z
  .strictObject({
    alias: z.string().regex(NAME_RE, { error: 'promote.alias must match [a-z0-9][a-z0-9._-]{0,63}' }).default('production'),
    approval: z.enum(['none', 'required'], { error: 'promote.approval must be one of none, required' }).default('none'),
    approval_timeout: z
      .string({ error: 'promote.approval_timeout must be a duration such as 30m, 2h or 7d' })
      .regex(DURATION_RE, { error: 'promote.approval_timeout must be a duration such as 30m, 2h or 7d' })
      // A zero timeout would reject every run before anyone could answer.
      .refine((d) => parseFloat(d) > 0, { error: 'promote.approval_timeout must be longer than 0, such as 30m, 2h or 7d' })
      .optional(),
    // Retraining must not make production worse: both are evaluated on the same validation split.
    compare: z
      .strictObject({
        metric: z.enum(['validation_loss'], { error: 'promote.compare.metric must be validation_loss' }).default('validation_loss'),
        min_improvement: nonNegative('promote.compare.min_improvement').default(0),
      })
      .optional(),
  })
  .superRefine((promote, ctx) => {
    // Checked here rather than on the whole spec, so that it is reported alongside other sections' issues.
    if (promote.approval_timeout !== undefined && promote.approval !== 'required') {
      ctx.addIssue({
        code: 'custom',
        path: ['approval_timeout'],
        input: promote.approval_timeout,
        message: `promote.approval_timeout applies only with promote.approval: required (approval is ${promote.approval}: nothing waits)`,
      });
    }
  });

const ENVIRONMENT_EXPECTED = 'environment must be the name of a torch environment, such as torch-2.13 (ttd env list)';
const ENVIRONMENT_NAME = z.string({ error: ENVIRONMENT_EXPECTED }).regex(NAME_RE, { error: ENVIRONMENT_EXPECTED });
const REQUIREMENT_EXPECTED = 'environment.requirements entries must be requirements such as transformers==5.25.0';

/** `environment: { base, requirements }`: packages beside a base environment's torch, built by the worker with uv
 * (lib/environments/declared-environments.ts). `requirements` is a list, or a requirements file beside the spec. */
const DeclaredEnvironmentSchema = z.strictObject({
  base: z
    .string({ error: 'environment.base must be the name of a torch environment, such as torch-2.13 (ttd env list)' })
    .regex(NAME_RE, { error: 'environment.base must be the name of a torch environment, such as torch-2.13 (ttd env list)' }),
  requirements: z.union(
    [
      uniqueList(
        z.string({ error: REQUIREMENT_EXPECTED }).superRefine((line, ctx) => {
          const problem = requirementProblem(line);
          if (problem)
            ctx.addIssue({ code: 'custom', input: line, message: `environment.requirements entry ${JSON.stringify(line)} ${problem}` });
        }),
        'environment.requirements',
        'requirement',
        'environment.requirements must be a list of requirements or a requirements file beside the spec',
      ).min(1, { error: 'environment.requirements must name at least one requirement' }),
      z
        .string({ error: 'environment.requirements must be a list of requirements or a requirements file beside the spec' })
        .min(1)
        .regex(/^[^\n]+$/, { error: 'environment.requirements must be a file name' }),
    ],
    { error: 'environment.requirements must be a list of requirements (transformers==5.25.0) or a requirements file beside the spec' },
  ),
  // Written by ttd into a version's stored spec: what the requirements resolved to (name==version), base included.
  resolved: z.array(z.string({ error: 'environment.resolved entries must be name==version' })).optional(),
});

/** What a spec's `environment` is: a name, or a declared environment. */
export type SpecEnvironment = string | z.infer<typeof DeclaredEnvironmentSchema>;

/** The whole spec, defaults filled in. */
export const SpecSchema = z
  .strictObject(
    {
      name: z
        .string({ error: 'name must be a string' })
        .regex(NAME_RE, { error: 'name must match [a-z0-9][a-z0-9._-]{0,63}' })
        .refine((n) => !n.includes('..'), { error: "name must not contain '..'" }),
      model: z.string({ error: 'model must be a path to a Python file (or a TorchScript archive, with references)' }).min(1).optional(),
      // A foreign artifact (traced elsewhere, e.g. in R): no training or tracing; verified against its references.
      artifact: z.string({ error: 'artifact must be a path to a TorchScript archive' }).min(1).optional(),
      references: z.string({ error: 'references must be a path to a safetensors file' }).min(1).optional(),
      // What to produce and verify: a TorchScript archive, an AOTInductor package (torch.export, torch 2.x), or both.
      formats: uniqueList(
        z.enum(FORMATS, { error: `formats entries must be one of ${FORMATS.join(', ')}` }),
        'formats',
        'format',
        `formats must be a list of formats (${FORMATS.join(', ')})`,
      )
        .min(1, { error: 'formats must name at least one format' })
        .default(['torchscript']),
      // The torch environment every torch stage runs in (ttd env list), or one declared on a base with requirements;
      // the newest installed when absent.
      environment: z
        .union([ENVIRONMENT_NAME, DeclaredEnvironmentSchema], {
          error: `${ENVIRONMENT_EXPECTED}, or { base: torch-2.13, requirements: [transformers==5.25.0] }`,
        })
        .optional(),
      // The device of the worker pool its torch stages go to (`ttd worker --device`); cpu when absent.
      device: z.enum(['cpu', 'cuda'], { error: 'device must be cpu or cuda' }).optional(),
      params: z
        .record(z.string(), z.unknown(), { error: 'params must be a mapping' })
        .superRefine((params, ctx) => {
          // params travel as JSON to every torch stage: what JSON cannot hold would arrive changed (Infinity as null).
          for (const [path, value] of nonJsonValues(params, [])) {
            ctx.addIssue({
              code: 'custom',
              path,
              input: value,
              message: `params.${path.join('.')} must be JSON data (null, a boolean, a finite number, a string, a list or a mapping)`,
            });
          }
        })
        .default({}),
      train: TrainSchema.default(TrainSchema.parse({})),
      trace: TraceSchema.default(TraceSchema.parse({})),
      optimize: OptimizeSchema.default(OptimizeSchema.parse({})),
      fusion: FusionSchema.default(FusionSchema.parse({})),
      parity: ParitySchema.default(ParitySchema.parse({})),
      promote: PromoteSchema.default(PromoteSchema.parse({})),
      // Every time limit derives from the eager time of the reference cases (lib/limits/time-limits.ts); a slow host or a model
      // whose runtime is much slower than eager raises them. Optional, so that older specs keep their digest.
      time_limits: TimeLimitsSchema.optional(),
      // What the author says of the model for its card (docs/model-card.md). Optional, so that older specs keep their digest.
      card: CardSchema.optional(),
    },
    { error: 'a spec must be a mapping of fields (name, model, train, trace, …)' },
  )
  .superRefine((spec, ctx) => {
    if (spec.artifact !== undefined && spec.formats.some((f) => f !== 'torchscript')) {
      ctx.addIssue({
        code: 'custom',
        path: ['formats'],
        input: spec.formats,
        message: 'formats: a foreign artifact is a TorchScript archive (formats: [torchscript]); aoti and onnx need a model file to export',
      });
    }
    if (spec.artifact !== undefined && spec.model !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['artifact'],
        message: 'set either model (a Python file to train) or artifact (a TorchScript archive), not both',
      });
    }
    if (spec.artifact !== undefined && spec.promote.compare !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['promote', 'compare'],
        message: "promote.compare evaluates on the model file's validation data, which a foreign artifact has not got",
      });
    }
    if (spec.artifact !== undefined && spec.references === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['references'],
        message: 'an artifact needs references: a safetensors file of reference inputs and outputs',
      });
    }
  })
  .transform((spec) => (spec.artifact !== undefined || spec.model !== undefined ? spec : { ...spec, model: './model.py' }));
export type Spec = z.infer<typeof SpecSchema>;

/** A spec read from disk with what a run needs to know about its files. */
export interface LoadedSpec {
  spec: Spec;
  specPath: string;
  specDigest: string;
  /** The Python model file to train (absent for a foreign artifact). */
  modelPath?: string;
  /** A foreign artifact and its references (absent when training). */
  foreign?: { artifactPath: string; referencesPath: string };
  /** The spec's declared environment with its requirement lines (a requirements file's, read beside the spec). */
  declared?: DeclaredEnvironment;
}

/** One schema problem, with its field path, what was expected and what came. */
export interface SpecIssue {
  path: string;
  message: string;
  got?: unknown;
}

/** Validates a parsed spec object; returns the spec or the list of issues. */
export function validateSpec(raw: unknown): { ok: true; spec: Spec } | { ok: false; issues: SpecIssue[] } {
  const parsed = SpecSchema.safeParse(raw, { reportInput: true });
  if (parsed.success) return { ok: true, spec: parsed.data };
  return {
    ok: false,
    issues: parsed.error.issues.map((issue) => {
      const path = issue.path.length ? issue.path.map(String).join('.') : '(root)';
      const got = (issue as { input?: unknown }).input;
      const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}` : issue.message;
      return { path, message, ...(got !== undefined ? { got } : {}) };
    }),
  };
}

/** Formats issues one per line: `train.lr: train.lr must be a positive number (got -1)`. */
export function formatIssues(issues: SpecIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}${i.got !== undefined ? ` (got ${showValue(i.got)})` : ''}`).join('\n');
}

/** A value as the user wrote it: JSON, except what JSON cannot show (Infinity, NaN, binary, timestamps). */
function showValue(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (value instanceof Uint8Array) return `binary data of ${value.length} bytes`;
  if (value instanceof Date) return `the timestamp ${value.toISOString()}`;
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
}

/** The paths and values inside `value` that JSON cannot carry unchanged (YAML has .inf, .nan, !!binary, !!timestamp). */
function nonJsonValues(value: unknown, path: string[]): [string[], unknown][] {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return [];
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [[path, value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => nonJsonValues(v, [...path, String(i)]));
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.entries(value).flatMap(([k, v]) => nonJsonValues(v, [...path, k]));
  }
  return [[path, value]];
}

/** The largest spec file ttd reads: a pipeline is a page of YAML, and a bigger file is some other file given by mistake. */
export const SPEC_MAX_BYTES = 1 << 20;

/** A spec file's text: a regular UTF-8 file of at most SPEC_MAX_BYTES; anything else a TtdError naming the path. */
function readSpecText(specPath: string, abs: string): string {
  const fail = (code: ErrorCode, what: string, expected = 'a pipeline.yaml or .json file') =>
    new TtdError(code, `spec file '${specPath}' ${what}; expected ${expected}`, { path: abs });
  if (!specPath.trim()) throw fail(ErrorCode.specNotFound, 'is an empty path', 'the path of a pipeline.yaml or .json file');
  let stat;
  try {
    stat = statSync(abs, { throwIfNoEntry: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw fail(ErrorCode.specNotFound, unreadable(err));
  }
  if (!stat) {
    throw new TtdError(ErrorCode.specNotFound, `spec file '${specPath}' does not exist (expected a pipeline.yaml or .json file)`, {
      path: abs,
    });
  }
  if (!stat.isFile()) {
    throw fail(
      ErrorCode.specNotFound,
      `is ${stat.isDirectory() ? 'a directory' : 'not a regular file'}`,
      `a pipeline.yaml or .json file${stat.isDirectory() ? ` (e.g. ${join(specPath, 'pipeline.yaml')})` : ''}`,
    );
  }
  if (stat.size > SPEC_MAX_BYTES) {
    throw fail(ErrorCode.specInvalid, `is ${stat.size} bytes`, `a spec of at most ${SPEC_MAX_BYTES} bytes (1 MiB): is it the spec?`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(abs);
  } catch (err) {
    throw fail(ErrorCode.specNotFound, unreadable(err));
  }
  if (bytes.length > SPEC_MAX_BYTES) throw fail(ErrorCode.specInvalid, `grew past ${SPEC_MAX_BYTES} bytes while read`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail(ErrorCode.specInvalid, 'is not UTF-8 text', 'a pipeline in YAML or JSON, saved as UTF-8');
  }
}

/** Why a path cannot be read, in words, from a file system error. */
function unreadable(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return 'is a loop of symbolic links (ELOOP)';
  if (code === 'ENAMETOOLONG') return 'is a path too long for this system (ENAMETOOLONG)';
  if (code === 'EACCES' || code === 'EPERM') return `cannot be read: permission denied (${code})`;
  return `cannot be read (${code ?? (err as Error).message})`;
}

/** Reads, parses and validates a spec file, and resolves its model file; throws TtdError on bad input (a foreign
 * archive past `archiveLimits` too, before anything is uploaded). */
export function loadSpec(specPath: string, archiveLimits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): LoadedSpec {
  const abs = resolve(specPath);
  const text = readSpecText(specPath, abs);
  let raw: unknown;
  try {
    raw = parseYaml(text); // YAML is a superset of JSON, so one parser reads both
  } catch (err) {
    throw new TtdError(
      ErrorCode.specInvalid,
      `spec file '${specPath}' is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  // An empty file (or one of comments only) parses to nothing: say so, rather than list every missing field.
  if (raw === null || raw === undefined) {
    throw new TtdError(
      ErrorCode.specInvalid,
      `spec file '${specPath}' is empty; expected a pipeline in YAML or JSON with at least a name (e.g. 'name: my-model')`,
      { path: abs },
    );
  }
  const result = validateSpec(raw);
  if (!result.ok) {
    throw new TtdError(ErrorCode.specInvalid, `spec file '${specPath}' is invalid:\n${formatIssues(result.issues)}`, {
      issues: result.issues,
    });
  }
  const { spec } = result;
  const declared = declaredEnvironment(spec, abs);
  // A requirements file's lines count, not its name: a changed file is another spec (CI run ids, stored spec digests).
  const specDigest = digestBytes(
    canonicalJson(declared ? { ...spec, environment: { ...(spec.environment as object), requirements: declared.requirements } } : spec),
  );
  // Every file is checked (a regular file of its kind and size, lib/spec/input-files.ts) before anything reads it whole.
  const referencesPath = spec.references === undefined ? undefined : checkInputFile(abs, 'references', spec.references).path;
  if (spec.artifact !== undefined) {
    const artifact = checkInputFile(abs, 'artifact', spec.artifact);
    if (artifact.kind !== 'archive') {
      throw new TtdError(
        ErrorCode.artifactInvalid,
        `artifact: '${spec.artifact}' is not a TorchScript archive (expected a zip file written by torch.jit.save or jit_save)`,
        { path: artifact.path },
      );
    }
    checkArchiveLimits('artifact', spec.artifact, artifact.path, archiveLimits);
    checkReferences('references', referencesPath!);
    return {
      spec,
      specPath: abs,
      specDigest,
      foreign: { artifactPath: artifact.path, referencesPath: referencesPath! },
      ...(declared ? { declared } : {}),
    };
  }
  const model = checkInputFile(abs, 'model', spec.model!);
  const modelPath = model.path;
  if (model.kind === 'archive') {
    // `model` may name a TorchScript archive too (issue 4): then it is a foreign artifact and needs references.
    if (!referencesPath) {
      throw new TtdError(
        ErrorCode.specInvalid,
        `model: '${spec.model}' is a TorchScript archive; a foreign artifact needs references: a safetensors file of reference inputs and outputs`,
      );
    }
    checkArchiveLimits('model', spec.model!, modelPath, archiveLimits);
    checkReferences('references', referencesPath);
    return { spec, specPath: abs, specDigest, foreign: { artifactPath: modelPath, referencesPath }, ...(declared ? { declared } : {}) };
  }
  if (referencesPath) {
    throw new TtdError(
      ErrorCode.specInvalid,
      `references: only a foreign artifact takes references, but model '${spec.model}' is a Python file to train (remove references, or give artifact)`,
    );
  }
  return { spec, specPath: abs, specDigest, modelPath, ...(declared ? { declared } : {}) };
}

/** A run's inputs by digest: the model file to train, or a foreign artifact and its references. */
export type RunSource =
  | { modelFileDigest: string; modelFilePath: string }
  | { foreign: { artifactDigest: string; referencesDigest: string; artifactPath: string } };

/** Puts a loaded spec's input files into the store (content-addressed) and returns their digests. Each is read
 * through a descriptor checked as loadSpec checked its path, and all are read before the first is stored. A foreign
 * archive and its references are copied streamed into a private spool, so their size never sits in memory. */
export async function storeRunSource(store: ObjectStore, loaded: LoadedSpec): Promise<RunSource> {
  const { spec } = loaded;
  if (loaded.foreign) {
    const [field, value] = spec.artifact !== undefined ? (['artifact', spec.artifact] as const) : (['model', spec.model!] as const);
    const spool = await mkdtemp(join(tmpdir(), 'ttd-input-'));
    try {
      const artifact = join(spool, 'artifact');
      const references = join(spool, 'references');
      await copyInputFile(field, value, loaded.foreign.artifactPath, artifact);
      await copyInputFile('references', spec.references!, loaded.foreign.referencesPath, references);
      return {
        foreign: {
          artifactDigest: await putBlobFile(store, artifact),
          referencesDigest: await putBlobFile(store, references),
          artifactPath: loaded.foreign.artifactPath,
        },
      };
    } finally {
      await rm(spool, { recursive: true, force: true });
    }
  }
  return {
    modelFileDigest: await putBlob(store, readInputFile('model', spec.model!, loaded.modelPath!)),
    modelFilePath: loaded.modelPath!,
  };
}

/** The loaded spec with the torch environment a run really uses written in (a spec that names none gets the newest
 * installed), so that its digest, the run's CI id and the stored spec say which environment built the version. */
export function withEnvironment(loaded: LoadedSpec, environment: string): LoadedSpec {
  // A declared environment names its base already, and its digest covers its requirements.
  if (loaded.spec.environment === environment || typeof loaded.spec.environment === 'object') return loaded;
  const spec = { ...loaded.spec, environment };
  return { ...loaded, spec, specDigest: digestBytes(canonicalJson(spec)) };
}

/** The name of the installed environment a spec runs on: the one it names, or its declared environment's base. */
export function environmentName(spec: Spec): string | undefined {
  return typeof spec.environment === 'object' ? spec.environment.base : spec.environment;
}

/** The torch environment id a run's stages carry: a declared environment's `<base>+<hex>`, else the name. */
export function runEnvironmentId(loaded: LoadedSpec, environment: string): string {
  return loaded.declared ? declaredId(loaded.declared) : environment;
}

/** A spec's declared environment with its requirement lines: the list, or the file beside the spec, read and checked. */
function declaredEnvironment(spec: Spec, specPath: string): DeclaredEnvironment | undefined {
  const e = spec.environment;
  if (typeof e !== 'object') return undefined;
  const requirements =
    typeof e.requirements === 'string' ? readRequirementsFile(resolve(dirname(specPath), e.requirements), e.requirements) : e.requirements;
  return { base: e.base, requirements };
}
