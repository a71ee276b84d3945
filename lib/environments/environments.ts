// Torch environments: each a Python with its torch, a libtorch runner built against that torch, and its device.
// `make setup` installs torch-2.13 (a project virtualenv) and torch-1.13 (Debian's); a run names one, or gets the
// newest installed. TTD_PYTHON replaces them with one environment of the user's own, named `custom`.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorCode, TtdError } from '../contract/errors';
import { runProcess } from './subprocess';

/** One torch environment, as configured (nothing is probed). */
export interface TorchEnv {
  name: string;
  python: string;
  /** The libtorch runner built against this environment's torch. */
  libtorchRunner: string;
  device: 'cpu' | 'cuda';
  /** The torch release it has, major.minor, where known without asking it (the built-in ones). */
  torch?: string;
}

/** Whether an environment can export and compile (torch.export and AOTInductor need torch 2.x); unknown: assume so,
 * and let the export stage say otherwise. */
export function canExport(e: TorchEnv): boolean {
  return e.torch === undefined || !e.torch.startsWith('1.');
}

/** The environments a checkout knows of, newest first (the default is the first installed). */
export function knownEnvironments(repoRoot: string, env: NodeJS.ProcessEnv = process.env): TorchEnv[] {
  if (env.TTD_PYTHON) {
    const runner = env.TTD_LIBTORCH_RUNNER ?? join(repoRoot, 'build', 'libtorch', 'ttd-libtorch-runner');
    return [{ name: 'custom', python: env.TTD_PYTHON, libtorchRunner: runner, device: 'cpu' }];
  }
  return [
    {
      name: 'torch-2.13',
      python: join(repoRoot, '.torch', 'torch-2.13', 'bin', 'python'),
      libtorchRunner: join(repoRoot, 'build', 'libtorch-2.13', 'ttd-libtorch-runner'),
      device: 'cpu',
      torch: '2.13',
    },
    {
      name: 'torch-1.13',
      python: '/usr/bin/python3',
      libtorchRunner: env.TTD_LIBTORCH_RUNNER ?? join(repoRoot, 'build', 'libtorch', 'ttd-libtorch-runner'),
      device: 'cpu',
      torch: '1.13',
    },
  ];
}

// find_spec locates torch without importing it (importing costs ~0.6 s). The marker line tells a Python from a program
// that merely exits 0 (/bin/true) or echoes its arguments (/bin/echo).
const PROBE_MARK = 'ttd-python-probe';
const TORCH_PROBE = `import importlib.util,sys; print('${PROBE_MARK}', 1 if importlib.util.find_spec('torch') else 0)`;

/** Why an environment's Python cannot serve torch stages: its code and a message naming the Python (and TTD_PYTHON
 * when that set it), what it did, and what was expected. */
export interface PythonProblem {
  code: typeof ErrorCode.pythonMissing | typeof ErrorCode.torchMissing | typeof ErrorCode.configInvalid;
  message: string;
}

/** An environment's Python in words: `TTD_PYTHON='/x'`, or `python '/x' of environment 'torch-2.13'`. */
export function pythonWords(e: TorchEnv): string {
  return e.name === 'custom' ? `TTD_PYTHON='${e.python}'` : `python '${e.python}' of environment '${e.name}'`;
}

const EXPECTED_PYTHON = 'expected the path of a Python interpreter with torch (e.g. .torch/torch-2.13/bin/python)';

/** Whether an environment's Python runs, is a Python, and has torch: null, or what is wrong. */
export async function pythonProblem(e: TorchEnv): Promise<PythonProblem | null> {
  const who = pythonWords(e);
  if (e.python.includes('/')) {
    if (!existsSync(e.python)) return { code: ErrorCode.pythonMissing, message: `${who} does not exist; ${EXPECTED_PYTHON}` };
    const st = statSync(e.python);
    if (st.isDirectory()) return { code: ErrorCode.configInvalid, message: `${who} is a directory; ${EXPECTED_PYTHON}` };
    if (!st.isFile()) return { code: ErrorCode.configInvalid, message: `${who} is not a regular file; ${EXPECTED_PYTHON}` };
    try {
      accessSync(e.python, constants.X_OK);
    } catch {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      return { code: ErrorCode.configInvalid, message: `${who} is not executable (mode ${mode}); ${EXPECTED_PYTHON}` };
    }
  }
  const probe = await runProcess(e.python, ['-c', TORCH_PROBE], { stdout: 'pipe', stderr: 'pipe', timeoutMs: 60_000 });
  if (probe.spawnError) return { code: ErrorCode.pythonMissing, message: `${who} cannot be run (${probe.spawnError}); ${EXPECTED_PYTHON}` };
  const mark = /^ttd-python-probe ([01])$/m.exec(probe.stdout);
  if (probe.exitCode === 0 && mark) {
    return mark[1] === '1'
      ? null
      : {
          code: ErrorCode.torchMissing,
          message: `${who} has no torch module (it is a Python, but cannot import torch); ${EXPECTED_PYTHON}`,
        };
  }
  const ended = probe.timedOut
    ? 'did not end within 60 s'
    : probe.signal
      ? `was killed by ${probe.signal}`
      : `exited with status ${probe.exitCode}`;
  const said = (text: string) => JSON.stringify(redactPrinted(text));
  const printed = probe.stdout.trim()
    ? `printed ${said(probe.stdout)}`
    : probe.stderrTail.trim()
      ? `printed nothing on stdout and ${said(probe.stderrTail)} on stderr`
      : 'printed nothing';
  return {
    code: ErrorCode.configInvalid,
    message: `${who} is not a Python interpreter: asked to run a one-line Python probe (-c), it ${ended} and ${printed}; ${EXPECTED_PYTHON}`,
  };
}

// What a non-Python printed, shortened to one line a message can hold.
function redactPrinted(text: string): string {
  const line = text.trim().replace(/\s+/g, ' ');
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** How to get the built-in environments' Pythons. */
export const SETUP_HINT = 'make setup installs torch-2.13 (.torch/torch-2.13) and torch-1.13 (Debian python3-torch for /usr/bin/python3)';

/** What to do about an environment's Python that cannot serve torch stages. */
function pythonHint(e: TorchEnv): string {
  return e.name === 'custom'
    ? 'set TTD_PYTHON to such an interpreter, or unset it to use the environments make setup installs'
    : SETUP_HINT;
}

/** The error `ttd run` and `ttd worker` refuse with when an environment's Python cannot serve torch stages (its
 * pythonProblem and what to do about it, config_invalid naming TTD_PYTHON where that set it), or null when it can.
 * `lead` goes before the message (`--env 'x': `). */
export async function pythonRefusal(e: TorchEnv, lead = ''): Promise<TtdError | null> {
  const problem = await pythonProblem(e);
  return problem && pythonError(e, problem, lead);
}

/** pythonRefusal's error for a problem already found. */
export function pythonError(e: TorchEnv, problem: PythonProblem, lead = ''): TtdError {
  const details = problem.code === ErrorCode.configInvalid && e.name === 'custom' ? { setting: 'TTD_PYTHON' } : undefined;
  return new TtdError(problem.code, `${lead}${problem.message}; ${pythonHint(e)}`, details);
}

/** Whether an environment's Python runs and has torch: `ok`, or why not (pythonProblem says it in words). */
export async function probeEnvironment(
  e: TorchEnv,
): Promise<'ok' | typeof ErrorCode.pythonMissing | typeof ErrorCode.torchMissing | typeof ErrorCode.configInvalid> {
  return (await pythonProblem(e))?.code ?? 'ok';
}

/** The environment a run uses: the one it names, else the newest installed, that is, whose Python has torch and whose
 * libtorch runner is built (else the newest known, which then fails its preflight with what to install). Undefined
 * when it names one this checkout does not know. */
export async function chooseEnvironment(envs: TorchEnv[], name: string | undefined): Promise<TorchEnv | undefined> {
  if (name !== undefined) return envs.find((e) => e.name === name);
  for (const e of envs) if (existsSync(e.libtorchRunner) && (await probeEnvironment(e)) === 'ok') return e;
  return envs[0];
}

const CUDA_PROBE = 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 4)';

/** Whether an environment's torch sees a CUDA device on this host (imports torch: about a second). */
export async function hasCuda(e: TorchEnv): Promise<boolean> {
  const probe = await runProcess(e.python, ['-c', CUDA_PROBE], { stdout: 'ignore', stderr: 'ignore', timeoutMs: 120_000 });
  return probe.exitCode === 0;
}

// What importing an environment's torch tells: its version, whether it sees CUDA, whether it was built with LLVM.
const TORCH_FACTS =
  "import json, torch; f = getattr(torch._C, '_llvm_enabled', None); print(json.dumps({'torch': torch.__version__, 'cuda': bool(torch.cuda.is_available()), 'llvm': bool(f()) if f else False}))";

/** Whether an environment's torch build can fuse on the CPU (it has LLVM; without it a CPU server never fuses), and its
 * version, for messages; undefined when the probe fails (the stages then say what is wrong). */
export async function cpuFusionBuild(e: TorchEnv): Promise<{ torch: string; llvm: boolean } | undefined> {
  const run = await runProcess(e.python, ['-c', TORCH_FACTS], { stderr: 'ignore', timeoutMs: 120_000 });
  try {
    return JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as { torch: string; llvm: boolean };
  } catch {
    return undefined;
  }
}

/** What `ttd env list` reports of one environment. */
export const EnvironmentFacts = z.object({
  name: z.string(),
  python: z.string(),
  torch_version: z.string().nullable(),
  libtorch_version: z.string().nullable(),
  device: z.string(),
  /** Its Python has torch and its libtorch runner is built: a run may use it. */
  installed: z.boolean(),
  /** Its torch build has LLVM, so a CPU server of it can fuse (null: not installed); without it, it never fuses. */
  cpu_fusion: z.boolean().nullable().optional(),
  libtorch_runner: z.string(),
});
export type EnvironmentFacts = z.infer<typeof EnvironmentFacts>;

/** Probes an environment for `ttd env list`: its torch version (importing torch), its runner's libtorch version. */
export async function describeEnvironment(e: TorchEnv): Promise<EnvironmentFacts> {
  const base = { name: e.name, python: e.python, device: e.device, libtorch_runner: e.libtorchRunner };
  if ((await probeEnvironment(e)) !== 'ok')
    return { ...base, torch_version: null, libtorch_version: null, installed: false, cpu_fusion: null };
  const run = await runProcess(e.python, ['-c', TORCH_FACTS], { stderr: 'ignore', timeoutMs: 60_000 });
  let torch: string | null = null;
  let llvm: boolean | null = null;
  try {
    ({ torch, llvm } = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as { torch: string; llvm: boolean });
  } catch {
    torch = null;
  }
  return {
    ...base,
    torch_version: torch,
    libtorch_version: existsSync(e.libtorchRunner) ? await runnerVersion(e.libtorchRunner) : null,
    installed: torch !== null,
    cpu_fusion: torch === null ? null : llvm,
  };
}

// The runner says which libtorch it was built against (`--version`); a runner too old to say is reported as unknown.
async function runnerVersion(runner: string): Promise<string | null> {
  const run = await runProcess(runner, ['--version'], {
    stderr: 'ignore',
    timeoutMs: 30_000,
    extendEnv: false,
    env: { PATH: '/usr/bin:/bin' },
  });
  const m = /(\d+\.\d+\.\d+[^\s"]*)/.exec(run.stdout);
  return run.exitCode === 0 && m ? m[1] : null;
}

/** The release part of a torch version (`2.13.0+cpu`, `1.13.0a0` → `2.13.0`, `1.13.0`): what a runner and a Python
 * must share for the runner's libtorch to be the Python's torch. */
export function torchRelease(version: string): string {
  return /^(\d+\.\d+(?:\.\d+)?)/.exec(version)?.[1] ?? version;
}

/** Why an environment's libtorch runner does not match its Python's torch (both versions named), or undefined when
 * they match or either cannot say (a missing runner or torch is reported by its own check). */
export async function runtimeMismatch(e: TorchEnv): Promise<string | undefined> {
  if (!existsSync(e.libtorchRunner)) return undefined;
  const facts = await describeEnvironment(e);
  if (!facts.torch_version || !facts.libtorch_version) return undefined;
  if (torchRelease(facts.torch_version) === torchRelease(facts.libtorch_version)) return undefined;
  const custom = e.name === 'custom';
  return `the libtorch runner '${e.libtorchRunner}' of environment '${e.name}' was built against libtorch ${facts.libtorch_version}, but its python '${e.python}'${custom ? ' (TTD_PYTHON)' : ''} has torch ${facts.torch_version}; a runner loads only the libtorch it was built against. Build the runner against that torch (cmake -DCMAKE_PREFIX_PATH=$(python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')) and set ${custom ? 'TTD_LIBTORCH_RUNNER' : 'its path'} to it, or leave libtorch out of parity.runtimes`;
}
