// The parity stage: the artifact loads and agrees in every target runtime, each a fresh process without our code.
import { cp, copyFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { runtimeMismatch, type TorchEnv } from '../lib/environments/environments';
import { coreShare } from '../lib/limits/capacity';
import { mapLimit } from '../lib/limits/map-limit';
import { reportedInHistory } from '../lib/limits/history-limits';
import { compareOutputs } from '../lib/parity/parity';
import type { ParityResult, ParityRuntimeReport } from '../lib/contract/results';
import { encodeSafetensors, parseSafetensors, readSafetensors } from '../lib/parity/safetensors';
import { parseTarget, type Format, type ParityTarget, type RuntimeName } from '../lib/spec/spec';
import { GateCode, NonRetryable } from '../lib/contract/gate-codes';
import { redact } from '../lib/environments/redact';
import { bwrapArgs, probeSandbox, sandboxEnv, sandboxRefusal } from '../lib/environments/sandbox';
import { describeEnd, runProcess, type ProcessResult } from '../lib/environments/subprocess';
import { configPythons } from './torch-process';
import { runtimeLimit, seconds, type LimitBasis, type TimeLimit } from '../lib/limits/time-limits';
import type { FusedRuns, FusionBuild } from '../lib/contract/ops';
import { isaProbes } from './isa-probes';
import {
  addTorchWork,
  materialize,
  onTorchStageEnd,
  readWrittenFile,
  stageConfig,
  torchStagesRunning,
  withWorkDir,
  type TorchDeps,
} from './torch-stage';

/** Input of the parity stage. */
export interface ParityInput {
  /** What the artifact is (TorchScript when absent). */
  format?: Format;
  /** The torch environment whose runtimes check the artifact (the worker's configured one when absent). */
  environment?: string;
  artifactDigest: string;
  referencesDigest: string;
  runtimes: ParityTarget[];
  atol: number;
  rtol: number;
  /** The spec's fusion.fused_runs (auto when absent): whether a fused run follows each serving run. */
  fusedRuns?: FusedRuns;
  /** What each runtime run's time limit scales with (lib/limits/time-limits.ts). */
  limits?: LimitBasis;
}

/** The parity gate's verdict and one line per runtime and executor mode (lib/contract/results.ts: ParityResult). */
export type ParityOutput = ParityResult;

const RUNNER_THREADS = 1;

/** How a runtime runs the artifact: `serving`, with its build's own fuser flags (what its servers run); `fused`, the
 * CPU fuser on where the build has LLVM; `interpreter`, through NNC's interpreter (fusion.fused_runs always). */
type FusionMode = 'serving' | 'fused' | 'interpreter';

/** The fused run that follows a serving run, given what the runtime said of its build: only where the build fuses
 * on the CPU (LLVM), or where the spec asks for it. CUDA builds fuse in their serving run already. */
function fusedMode(build: FusionBuild | undefined, fusedRuns: FusedRuns): FusionMode | undefined {
  if (fusedRuns === 'never') return undefined;
  if (build?.llvm_enabled) return build.can_fuse_on_cpu ? undefined : 'fused'; // a serving run that fused already
  return fusedRuns === 'always' ? 'interpreter' : undefined;
}

/** A runtime that runs ONNX models: ONNX Runtime in a Python without torch, and onnxruntime-node in Node. */
type OnnxRuntime = 'onnxruntime' | 'onnxruntime-node';
/** Any runtime a parity run starts. */
type AnyRuntime = RuntimeName | OnnxRuntime;
/** ONNX Runtime's graph optimisation levels: all off and all on play the part of fuser off and on. */
type GraphOptimization = 'disabled' | 'all';
const GRAPH_OPTIMIZATIONS: GraphOptimization[] = ['disabled', 'all'];

// The ONNX runtimes, refused up front where make setup has not made them (the same input fails the same way again).
function onnxTargets(deps: TorchDeps): { runtime: AnyRuntime; deps: TorchDeps }[] {
  const { onnx } = deps.config;
  const missing = [
    [onnx.python, "ONNX Runtime's Python"],
    [join(dirname(onnx.nodeRunner), 'node_modules', 'onnxruntime-node'), 'onnxruntime-node'],
  ].filter(([path]) => !existsSync(path));
  if (missing.length) {
    throw ApplicationFailure.create({
      type: NonRetryable.environmentMissing,
      message: `the ONNX runtimes are not installed: ${missing.map(([path, what]) => `${what} ('${path}')`).join(', ')} does not exist; make setup installs them (TTD_ONNX_PYTHON names another Python with onnxruntime and numpy)`,
      nonRetryable: true,
    });
  }
  return (['onnxruntime', 'onnxruntime-node'] as const).map((runtime) => ({ runtime, deps }));
}

/** Builds the parity activity. */
export function parityActivity(deps: TorchDeps) {
  return async function checkParity(input: ParityInput): Promise<ParityOutput> {
    const producer = stageConfig(deps.config, input.environment);
    // Each target runs in its own environment: the run's, or the one it names (`libtorch@torch-1.13`). An ONNX model
    // runs in the ONNX runtimes, each where no torch exists, whatever torch runtimes the spec names.
    const onnxFormat = input.format === 'onnx';
    const targets: { runtime: AnyRuntime; deps: TorchDeps }[] = onnxFormat
      ? onnxTargets(deps)
      : input.runtimes.map((target) => {
          const { runtime, environment } = parseTarget(target);
          const config = environment === undefined ? producer : stageConfig(deps.config, environment);
          if (runtime === 'libtorch' && !existsSync(config.libtorchRunner)) {
            throw ApplicationFailure.create({
              type: NonRetryable.environmentMissing,
              message: `the libtorch runner '${config.libtorchRunner}' of environment '${config.environment}' is not built; make setup builds it`,
              nonRetryable: true,
            });
          }
          return { runtime, deps: { ...deps, config } };
        });
    // A runner built against another torch than its Python's is never loaded against the wrong libtorch (checked by
    // ttd run too; again here, where the worker's own TTD_PYTHON and runner are the ones used).
    for (const { runtime, deps: target } of targets) {
      const installed = target.config.environments.find((e) => e.name === target.config.environment);
      if (runtime !== 'libtorch' || !installed || installed.torch !== undefined) continue;
      const mismatch = await mismatchOnce(installed);
      if (mismatch) throw ApplicationFailure.create({ type: NonRetryable.runtimeMismatch, message: mismatch, nonRetryable: true });
    }
    if (deps.config.sandbox === 'on') {
      const probe = await probeSandbox(deps.config.bwrap);
      if (!probe.ok) {
        throw ApplicationFailure.create({
          type: NonRetryable.sandboxUnavailable,
          message: `cannot run the parity runners in the sandbox: ${probe.reason}; set TTD_SANDBOX=off to run them without it (only for artifacts you trust)`,
          nonRetryable: true,
        });
      }
    }
    return withWorkDir(async (dir) => {
      const format: Format = input.format ?? 'torchscript';
      const model = format === 'aoti' ? 'model.pt2' : format === 'onnx' ? 'model.onnx' : 'model.pt';
      const files = await materialize(deps.store, dir, {
        [model]: input.artifactDigest,
        'references.safetensors': input.referencesDigest,
      });
      const references = await readSafetensors(files['references.safetensors']);
      // The runtimes need the inputs only: the outputs (a language model's logits, hundreds of MB) are compared here,
      // never copied into each runtime's directory nor read there.
      const inputsPath = join(dir, 'inputs.safetensors');
      await writeFile(
        inputsPath,
        encodeSafetensors(
          [...references.tensors].filter(([name]) => !name.includes('/output/')),
          references.metadata,
        ),
      );
      // Each target runs as its servers do (its build's own fuser flags); a fused run follows only where that build
      // fuses on the CPU (LLVM) or the spec asks for it (fusion.fused_runs), once the serving run has said what the
      // build is. The targets are independent fresh processes of one thread each: side by side, as many as this
      // stage's share of the cores (lib/limits/capacity.ts), or of the cores no other torch stage of this worker uses now;
      // asked again as each target starts and after another stage ends, so the last runs of a busy worker use its cores.
      const fusedRuns: FusedRuns = format === 'torchscript' ? (input.fusedRuns ?? 'auto') : 'never';
      const bytes = (await stat(files[model])).size;
      const started = performance.now();
      const share = () => Math.min(targets.length, coreShare(deps.config, availableParallelism(), torchStagesRunning()));
      const runOne = async (
        { runtime, deps: target }: (typeof targets)[number],
        mode: FusionMode,
        level?: GraphOptimization,
      ): Promise<ParityRuntimeReport> => {
        const { environment } = target.config;
        // An ONNX runtime has no torch environment: it is named alone.
        const about = level ? { format } : { format, environment };
        const who = level ? runtime : `${runtime} of ${environment}`;
        const flags = level ? { fuser: false, graph_optimization: level } : { fuser: mode !== 'serving', mode };
        const shownMode = level
          ? ` (graph optimisation ${level === 'all' ? 'all on' : 'off'})`
          : mode === 'serving'
            ? ''
            : mode === 'fused'
              ? ' (fuser on)'
              : " (fuser on, NNC's interpreter)";
        // Made in one environment, checked in another: the message names both.
        const made = environment === producer.environment ? '' : ` made with ${producer.environment}`;
        const limit = runtimeLimit(input.limits ?? {}, bytes, mode === 'interpreter', deps.config.runtimeLoadAllowanceMs);
        const run = await runRunner(
          target,
          runtime,
          { model: files[model], name: model, references: inputsPath, format },
          mode,
          limit,
          level,
        );
        if (!run.ok) {
          const code = run.refused ? GateCode.sandboxRefused : run.timedOut ? GateCode.runtimeTimeout : GateCode.runtimeLoadFailed;
          return {
            runtime,
            ...about,
            passed: false,
            code,
            max_abs_error: null,
            max_rel_error: null,
            flags,
            torch_version: null,
            threads: RUNNER_THREADS,
            ms: run.ms,
            message: run.refused
              ? `${who}${shownMode}: the sandbox refused ${run.refused} while the ${format} artifact${made} ran: ${run.error}`
              : run.timedOut
                ? `${who}${shownMode} did not finish the ${format} artifact${made} within its limit of ${seconds(limit.ms)} (${limit.basis}); expected it to load and run every reference case within it: raise time_limits.scale in the spec if this runtime really needs longer`
                : `${who}${shownMode} could not load or run the ${format} artifact${made}: ${run.error}`,
          } satisfies ParityRuntimeReport;
        }
        const cmp = compareOutputs(
          references,
          parseSafetensors(run.outputs, `${runtime}'s outputs.safetensors`),
          input.atol,
          input.rtol,
          runtime,
        );
        const outputs = await reportedInHistory(
          deps.store,
          cmp.outputs.map((o) => ({
            name: o.name,
            passed: o.passed,
            code: o.code,
            max_abs_error: Number.isFinite(o.max_abs_error) ? o.max_abs_error : null,
            max_rel_error: Number.isFinite(o.max_rel_error) ? o.max_rel_error : null,
            elements: o.elements,
          })),
        );
        return {
          runtime,
          ...about,
          passed: cmp.passed,
          code: cmp.code,
          max_abs_error: cmp.max_abs_error,
          max_rel_error: cmp.max_rel_error,
          flags,
          ...(run.summary.fusion ? { fusion: run.summary.fusion } : {}),
          torch_version: run.summary.torch_version ?? null,
          ...(run.summary.onnxruntime_version ? { onnxruntime_version: run.summary.onnxruntime_version } : {}),
          ...(run.summary.execution_provider ? { execution_provider: run.summary.execution_provider } : {}),
          threads: run.summary.threads ?? RUNNER_THREADS,
          ms: run.ms,
          message: `${cmp.message}${shownMode}`,
          outputs: outputs.items,
          ...(outputs.total !== undefined ? { outputs_total: outputs.total, outputs_digest: outputs.digest } : {}),
          histogram: cmp.histogram,
        } satisfies ParityRuntimeReport;
      };
      const reports = (
        await mapLimit(targets, share, onTorchStageEnd, async (target) => {
          // ONNX Runtime as its servers run it, with its graph optimisations off and all on.
          if (onnxFormat) return mapLimit(GRAPH_OPTIMIZATIONS, 1, undefined, (level) => runOne(target, 'serving', level));
          const serving = await runOne(target, 'serving');
          const fused = serving.passed ? fusedMode(serving.fusion, fusedRuns) : undefined;
          return fused ? [serving, await runOne(target, fused)] : [serving];
        })
      ).flat();
      addTorchWork(performance.now() - started);
      const failed = reports.find((r) => !r.passed);
      return {
        passed: !failed,
        code: failed?.code ?? null,
        message: failed
          ? failed.message
          : `${reports.length} runtime runs agree with the eager references within atol ${input.atol}, rtol ${input.rtol} (max abs error ${Math.max(...reports.map((r) => r.max_abs_error ?? 0)).toExponential(2)})`,
        runtimes: reports,
      };
    });
  };
}

// Whether an environment's runner matches its torch, asked once per process (it imports torch).
const mismatches = new Map<string, Promise<string | undefined>>();
function mismatchOnce(e: TorchEnv): Promise<string | undefined> {
  const key = `${e.python}\0${e.libtorchRunner}`;
  let found = mismatches.get(key);
  if (!found) mismatches.set(key, (found = runtimeMismatch(e)));
  return found;
}

type RunnerSummary = {
  torch_version?: string;
  threads?: number;
  fusion?: FusionBuild;
  onnxruntime_version?: string;
  execution_provider?: string;
};
type RunnerRun =
  | { ok: true; ms: number; outputs: Buffer; summary: RunnerSummary }
  | { ok: false; ms: number; error: string; refused?: string; timedOut?: boolean };

// Each run gets an empty directory and a bare environment: the runtime cannot see our code or the model file.
async function runRunner(
  deps: TorchDeps,
  runtime: AnyRuntime,
  /** references: the cases' inputs (a references file without its outputs). */
  files: { model: string; name: string; references: string; format: Format },
  mode: FusionMode,
  limit: TimeLimit,
  level?: GraphOptimization,
): Promise<RunnerRun> {
  const cwd = await mkdtemp(join(tmpdir(), `ttd-${runtime}-`));
  try {
    await copyFile(files.model, join(cwd, files.name));
    await copyFile(files.references, join(cwd, 'references.safetensors'));
    const args = [
      '--model',
      files.name,
      // Only for packages: a runner that predates formats reads TorchScript without being told.
      ...(files.format === 'torchscript' ? [] : ['--format', files.format]),
      '--references',
      'references.safetensors',
      '--out',
      'outputs.safetensors',
      '--threads',
      String(RUNNER_THREADS),
    ];
    // Older runners know only --fuser (the interpreter); a serving run passes nothing, as before.
    if (mode === 'interpreter') args.push('--fuser');
    else if (mode === 'fused') args.push('--fusion', 'fused');
    if (level) args.push('--graph-optimization', level);
    let command: string;
    let extraEnv: Record<string, string> = {};
    if (runtime === 'python' && files.format === 'aoti') {
      // Inductor's CPU ISA probes (a few tiny compiled kernels, the same for every model on a host) in a private copy:
      // a server compiles them once per host, so a runner that compiled them afresh every time (5-20 s) would be
      // timed as no server is.
      const probes = await isaProbes(deps.config);
      if (probes) {
        await cp(probes.dir, join(cwd, 'inductor-cache'), { recursive: true });
        extraEnv = { ...probes.env, TORCHINDUCTOR_CACHE_DIR: join(cwd, 'inductor-cache') };
      }
    }
    if (runtime === 'python') {
      await copyFile(deps.config.parityRunnerPy, join(cwd, 'runner.py'));
      command = deps.config.python;
      args.unshift('-I', 'runner.py');
    } else if (runtime === 'onnxruntime') {
      // The ONNX runner reads safetensors with the torch runner's reader (importable without torch), copied beside it.
      await copyFile(deps.config.onnx.runnerPy, join(cwd, 'runner.py'));
      await copyFile(deps.config.parityRunnerPy, join(cwd, 'ttd_parity_runner.py'));
      command = deps.config.onnx.python;
      args.unshift('-I', 'runner.py');
    } else if (runtime === 'onnxruntime-node') {
      command = process.execPath;
      args.unshift(deps.config.onnx.nodeRunner);
    } else {
      command = deps.config.libtorchRunner;
    }
    const res = await exec(deps, runtime, command, args, cwd, limit.ms, extraEnv);
    const ms = res.durationMs;
    const lastLine = res.stdout.trim().split('\n').pop() ?? '';
    let summary: Record<string, unknown> = {};
    try {
      summary = JSON.parse(lastLine);
    } catch {
      /* a crash prints no JSON; stderr tells */
    }
    if (!res.ok || summary.error) {
      const err = (summary.error as { stage?: string; message?: string } | undefined) ?? {};
      const stderr = res.stderrTail.trim().split('\n').slice(-3).join(' | ');
      // A runner that timed out or could not start says so first; one that crashed is explained by its stderr.
      const ended = res.timedOut || res.spawnError ? describeEnd(res, limit.ms) : '';
      const detail = err.message ?? ([ended, stderr].filter(Boolean).join(': ') || describeEnd(res));
      // What the artifact tried that the sandbox refused (a host file, the network) makes this a rejection of its own.
      const refused = deps.config.sandbox === 'on' ? sandboxRefusal(`${err.message ?? ''}\n${res.stderrTail}`, [cwd]) : undefined;
      const error = redact(`${err.stage ? `[${err.stage}] ` : ''}${detail}`).slice(0, 600);
      return { ok: false, ms, error, ...(refused ? { refused: redact(refused) } : {}), ...(res.timedOut ? { timedOut: true } : {}) };
    }
    // Read where the runtime wrote them (the checks of copyWrittenFile, no copy): compared once, then dropped.
    const outputs = await readWrittenFile(join(cwd, 'outputs.safetensors'), cwd);
    return { ok: true, ms, outputs, summary: summary as RunnerSummary };
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}

const RUNNER_STDERR_LINES = 40;

// The runner sees an empty cwd and a bare environment; its stdout carries the JSON summary. In the sandbox
// (lib/environments/sandbox.ts) it sees the host read-only, only its environment's torch and its binary, and writes only cwd.
function exec(
  deps: TorchDeps,
  runtime: AnyRuntime,
  command: string,
  args: string[],
  cwd: string,
  timeoutMs: number,
  extraEnv: Record<string, string> = {},
): Promise<ProcessResult> {
  const env = sandboxEnv(extraEnv);
  const { config } = deps;
  const [file, argv] =
    config.sandbox === 'on'
      ? [
          config.bwrap,
          [
            ...bwrapArgs(
              { pythons: sandboxPythons(config, runtime), readOnly: sandboxReadOnly(config, runtime, command), readWrite: [cwd], cwd },
              env,
            ),
            command,
            ...args,
          ],
        ]
      : [command, args];
  return runProcess(file, argv, {
    cwd,
    env,
    extendEnv: false,
    timeoutMs,
    stderrTailLines: RUNNER_STDERR_LINES,
  });
}

// The Pythons a runtime's sandbox binds: the torch environments', or ONNX Runtime's own (no torch in it).
function sandboxPythons(config: TorchDeps['config'], runtime: AnyRuntime): string[] {
  return runtime === 'onnxruntime' ? [config.onnx.python] : runtime === 'onnxruntime-node' ? [] : configPythons(config);
}

// The further read-only paths: a binary runner, or Node and the ONNX runner's folder (its node_modules).
function sandboxReadOnly(config: TorchDeps['config'], runtime: AnyRuntime, command: string): string[] {
  if (runtime === 'python' || runtime === 'onnxruntime') return [];
  if (runtime === 'onnxruntime-node') return [command, dirname(config.onnx.nodeRunner)];
  return [command];
}
