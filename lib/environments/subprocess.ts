// The one way ttd runs a subprocess (execa underneath): one result shape, one bounded stderr tail, and a
// process group that abort and timeout kill whole, so nothing the command started outlives it.
import { execa, type Options, type Subprocess } from 'execa';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';

const DEFAULT_TAIL_LINES = 20;
const MAX_LINE_CHARS = 2_000;

/** The last lines a process wrote to stderr (and our own notes about it), never more than maxLines. */
export class StderrTail {
  private readonly kept: string[] = [];

  constructor(readonly maxLines: number = DEFAULT_TAIL_LINES) {}

  /** Adds one line, dropping the oldest past maxLines; a very long line keeps its end. */
  push(line: string): void {
    this.kept.push(line.length > MAX_LINE_CHARS ? `…${line.slice(-MAX_LINE_CHARS)}` : line);
    if (this.kept.length > this.maxLines) this.kept.shift();
  }

  /** Keeps the last lines of a stream as they come. */
  follow(stream: Readable): void {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => this.push(line));
  }

  /** The kept lines, oldest first. */
  lines(): string[] {
    return [...this.kept];
  }

  toString(): string {
    return this.kept.join('\n');
  }
}

/** How to run a command. */
export interface ProcessOptions {
  cwd?: string;
  /** Added to this process's environment, or the whole environment when extendEnv is false. */
  env?: Record<string, string | undefined>;
  /** False gives the command only `env` (a bare environment); default true. */
  extendEnv?: boolean;
  /** Kills the command (its group with processGroup) after this long; the result says timedOut. */
  timeoutMs?: number;
  /** Kills the command (its group with processGroup) when aborted; the result says cancelled. */
  signal?: AbortSignal;
  /** Own process group (detached): no terminal signals, and a kill reaches everything the command started. */
  processGroup?: boolean;
  stdin?: 'pipe' | 'ignore';
  /** 'pipe' is read by runProcess into `stdout`, and left to the caller by startProcess; a number is a file descriptor. */
  stdout?: 'pipe' | 'ignore' | number;
  stderr?: 'pipe' | 'ignore' | number;
  /** How many stderr lines the tail keeps; default 20. */
  stderrTailLines?: number;
}

/** How a command ended: one flag per way of failing, and what explains it. */
export interface ProcessResult {
  /** Exit code 0, not timed out, not cancelled, started. */
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
  /** Standard output (runProcess with stdout 'pipe'; otherwise empty), final newline removed. */
  stdout: string;
  stderrTail: string;
  /** Why the command could not start (e.g. `spawn /usr/bin/python3 ENOENT`). */
  spawnError?: string;
}

/** A started command: talk to it over stdin/stdout; `result` settles once it has exited and its pipes closed. */
export interface StartedProcess {
  /** The execa subprocess: pid, exitCode, 'exit' events. */
  subprocess: Subprocess;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: StderrTail;
  result: Promise<ProcessResult>;
  /** SIGKILL to the command, or to its whole group with processGroup. */
  kill(): void;
  /** Neither the process, its pipes nor its timeout keep this Node process alive. */
  unref(): void;
}

/** Starts a command and returns at once; for long-lived processes spoken to over stdin/stdout. */
export function startProcess(command: string, args: readonly string[], opts: ProcessOptions = {}): StartedProcess {
  return start(command, args, opts, false);
}

/** Runs a command to its end and returns how it ended; never throws for a failing command. */
export function runProcess(command: string, args: readonly string[], opts: ProcessOptions = {}): Promise<ProcessResult> {
  const started = start(command, args, { stdin: 'ignore', ...opts }, true);
  return started.result;
}

/** One line saying how a failed command ended: `timed out after 300 s`, `exit code 3`, `killed by SIGKILL`. */
export function describeEnd(result: ProcessResult, timeoutMs?: number): string {
  if (result.spawnError) return `could not start: ${result.spawnError}`;
  if (result.timedOut) return timeoutMs !== undefined ? `timed out after ${timeoutMs / 1000} s` : 'timed out';
  if (result.cancelled) return 'cancelled';
  if (result.signal) return `killed by ${result.signal}`;
  return `exit code ${result.exitCode}`;
}

function start(command: string, args: readonly string[], opts: ProcessOptions, bufferStdout: boolean): StartedProcess {
  const stderr = new StderrTail(opts.stderrTailLines ?? DEFAULT_TAIL_LINES);
  const options: Options = {
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: opts.extendEnv ?? true,
    detached: opts.processGroup ?? false,
    stdin: opts.stdin ?? 'pipe',
    // A plain file descriptor goes straight to spawn (execa's types list only 1 and 2 for these two).
    stdout: (opts.stdout ?? 'pipe') as Options['stdout'],
    stderr: (opts.stderr ?? 'pipe') as Options['stderr'],
    buffer: { stdout: bufferStdout, stderr: false },
    reject: false,
    // The caller decides what outlives it and how it is stopped: no exit hooks, no delayed second kill.
    cleanup: false,
    forceKillAfterDelay: false,
  };
  const subprocess = execa(command, args, options);
  let spawned = false;
  let timedOut = false;
  let cancelled = false;
  subprocess.once('spawn', () => (spawned = true));
  if (subprocess.stderr) stderr.follow(subprocess.stderr);

  const kill = () => {
    const pid = subprocess.pid;
    if (pid === undefined) return;
    try {
      if (opts.processGroup) process.kill(-pid, 'SIGKILL');
      else subprocess.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  };
  const onAbort = () => {
    cancelled = true;
    kill();
  };
  const timer =
    opts.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          kill();
        }, opts.timeoutMs)
      : undefined;
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  const result = (async (): Promise<ProcessResult> => {
    const r = await subprocess;
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
    const spawnError = spawned ? undefined : (r.originalMessage ?? r.shortMessage ?? 'the command could not start');
    const exitCode = r.exitCode ?? null;
    return {
      ok: exitCode === 0 && !timedOut && !cancelled && spawnError === undefined,
      exitCode,
      signal: r.signal ?? null,
      timedOut,
      cancelled,
      durationMs: Math.round(r.durationMs),
      stdout: typeof r.stdout === 'string' ? r.stdout : '',
      stderrTail: stderr.toString(),
      ...(spawnError !== undefined ? { spawnError } : {}),
    };
  })();

  return {
    subprocess,
    stdin: subprocess.stdin,
    stdout: subprocess.stdout,
    stderr,
    result,
    kill,
    unref() {
      // Only once it has started: a failed spawn still settles `result` before this process may exit.
      const release = () => {
        subprocess.unref();
        for (const pipe of [subprocess.stdin, subprocess.stdout, subprocess.stderr])
          (pipe as unknown as { unref?(): void } | null)?.unref?.();
        timer?.unref();
      };
      if (spawned) release();
      else subprocess.once('spawn', release);
    },
  };
}
