// The one way to run a torch request (`python -m ttd_torch`, JSON lines): on the worker's long-lived fork server
// (torch imported once; every request in a forked child of its own), or in a fresh process (TTD_TORCH_PROCESS=fresh).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { archiveLimitsEnv } from '../lib/archive-limits';
import type { Config } from '../lib/config';
import { startProcess, type StartedProcess, type StderrTail } from '../lib/subprocess';
import { capMemory, type MemoryExceeded, type MemoryWatch } from './memory-cap';

const PROTOCOL_VERSION = 1;
const STDERR_TAIL_LINES = 20;

const LineSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  id: z.string(),
  event: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  ok: z.boolean().optional(),
  ms: z.number().optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  error: z.object({ code: z.string(), message: z.string(), traceback: z.string().optional() }).optional(),
});

/** How a torch request ended: a result, an error reported by the server, or a process that died. */
export type TorchOutcome =
  | { kind: 'ok'; result: Record<string, unknown>; ms?: number }
  | { kind: 'error'; code: string; message: string; traceback: string }
  | {
      kind: 'crashed';
      exitCode: number | null;
      signal: string | null;
      stderrTail: string;
      spawnError?: string;
      /** Set when the stage was killed for passing TTD_TORCH_STAGE_MAX_RSS_MB. */
      memoryExceeded?: MemoryExceeded;
    };

/** Options of one request: progress events, cancellation, extra environment. */
export interface TorchRequestOptions {
  onEvent?: (event: string, data: Record<string, unknown>) => void;
  signal?: AbortSignal;
  /** The stage process's memory cap in MiB (activities/memory-cap.ts); none when absent. */
  maxRssMb?: number;
}

/** Sends one request to the torch environment and waits for its response. */
export async function runTorchRequest(
  config: Config,
  op: string,
  args: Record<string, unknown>,
  opts: TorchRequestOptions = {},
): Promise<TorchOutcome> {
  opts = { maxRssMb: config.torchStageMaxRssMb, ...opts };
  if (config.torchProcess === 'fresh') return runInFreshProcess(config, op, args, opts);
  const server = await forkServer(config);
  if ('crashed' in server) return server.crashed;
  return runOnForkServer(server, op, args, opts);
}

/** What the fork server said when it was ready: its pid and the torch it imported. */
export interface TorchEnvironment {
  pid: number;
  torch_version: string;
  python_version: string;
}

/** One worker process's fork server: `python -m ttd_torch --listen SOCKET`, restarted when it dies or grows. */
interface ForkServer {
  proc: StartedProcess;
  socketPath: string;
  dir: string;
  env: TorchEnvironment;
  stderr: StderrTail;
  exited: boolean;
  /** Requests in flight; a retired server (grown too big) stops once the last one ends. */
  inflight: number;
  retired: boolean;
}

const READY_TIMEOUT_MS = 60_000;
const servers = new Map<string, Promise<ForkServer | { crashed: TorchOutcome }>>();
// Each server's socket directory until it is removed: a worker that exits without stopForkServers (or before a server
// ends) removes what is left here; the server itself only unlinks its socket.
const serverDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of serverDirs) removeDir(dir);
});

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  serverDirs.delete(dir);
}

/** The torch environment this worker's fork server runs (starting it if needed); undefined if it cannot start. */
export async function torchEnvironment(config: Config): Promise<TorchEnvironment | undefined> {
  const server = await forkServer(config);
  return 'crashed' in server ? undefined : server.env;
}

/** Stops every fork server of this process (workers call it on shutdown; exiting does it too, by closing stdin). */
export async function stopForkServers(): Promise<void> {
  const all = [...servers.values()];
  servers.clear();
  for (const s of await Promise.all(all)) if (!('crashed' in s)) stopServer(s);
}

async function forkServer(config: Config): Promise<ForkServer | { crashed: TorchOutcome }> {
  const key = `${config.python}\0${config.pythonPackageDir}`;
  const existing = servers.get(key);
  if (existing) {
    const s = await existing;
    if (!('crashed' in s) && !s.exited && rssMb(s.env.pid) <= config.torchMaxRssMb) return s;
    if (!('crashed' in s)) retire(s);
    if (servers.get(key) === existing) servers.delete(key);
    else return forkServer(config); // another request restarted it meanwhile
  }
  const starting = startServer(config);
  servers.set(key, starting);
  const s = await starting;
  if ('crashed' in s) servers.delete(key); // not cached: the next request tries again (and reports again)
  return s;
}

// The environment of every torch process: ours, plus the package on PYTHONPATH.
function torchEnv(config: Config): Record<string, string> {
  return {
    PYTHONPATH: config.pythonPackageDir,
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...archiveLimitsEnv(config.archiveLimits),
  };
}

function startServer(config: Config): Promise<ForkServer | { crashed: TorchOutcome }> {
  const dir = mkdtempSync(join(tmpdir(), 'ttd-torch-'));
  serverDirs.add(dir);
  const socketPath = join(dir, 'server.sock');
  const proc = startProcess(config.python, ['-m', 'ttd_torch', '--listen', socketPath], {
    env: torchEnv(config),
    processGroup: true, // no terminal signals: it ends when our end of its stdin closes
    stderrTailLines: STDERR_TAIL_LINES,
  });
  const { subprocess, stderr } = proc;
  proc.stdin!.on('error', () => undefined);
  // Neither the server nor its pipes keep this process alive: when it exits, the server sees stdin close and stops.
  proc.unref();
  return new Promise((resolve) => {
    let server: ForkServer | undefined;
    const timer = setTimeout(() => {
      proc.kill();
      stderr.push(`[ttd] the torch fork server was not ready within ${READY_TIMEOUT_MS / 1000} s`);
    }, READY_TIMEOUT_MS);
    timer.unref();
    subprocess.once('exit', () => {
      clearTimeout(timer);
      if (server) server.exited = true;
      if (server) removeDir(dir); // before it is ready, the crash report below removes it
    });
    // Before it is ready, its end (pipes closed, so the stderr tail is complete) is a crash to report.
    void proc.result.then((end) => {
      clearTimeout(timer);
      if (server) return;
      removeDir(dir);
      resolve({
        crashed: { kind: 'crashed', exitCode: end.exitCode, signal: end.signal, stderrTail: end.stderrTail, spawnError: end.spawnError },
      });
    });
    createInterface({ input: proc.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      try {
        const ready = JSON.parse(line) as { ready?: boolean } & TorchEnvironment;
        if (!ready.ready) throw new Error('not a ready line');
        server = {
          proc,
          socketPath,
          dir,
          env: { pid: ready.pid, torch_version: ready.torch_version, python_version: ready.python_version },
          stderr,
          exited: false,
          inflight: 0,
          retired: false,
        };
        resolve(server);
      } catch {
        stderr.push(`[protocol] unexpected first line from the fork server: ${line.slice(0, 200)}`);
        proc.kill();
      }
    });
  });
}

// A server past the memory limit takes no new requests; the ones it is serving finish first.
function retire(s: ForkServer): void {
  s.retired = true;
  if (s.inflight === 0) stopServer(s);
}

function stopServer(s: ForkServer): void {
  s.exited = true;
  s.proc.stdin!.end(); // the server kills its children and removes its socket at end of input
  setTimeout(() => {
    if (s.proc.subprocess.exitCode === null && s.proc.subprocess.signalCode === null) s.proc.kill();
    removeDir(s.dir);
  }, 5_000).unref();
}

/** Resident memory of a process in MiB (0 when unknown). */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

// One request on one connection: the server forks a child for it, which says its pid first.
function runOnForkServer(server: ForkServer, op: string, args: Record<string, unknown>, opts: TorchRequestOptions): Promise<TorchOutcome> {
  const id = randomUUID();
  server.inflight++;
  return new Promise((resolve) => {
    const socket = connect(server.socketPath);
    let childPid: number | undefined;
    let outcome: TorchOutcome | undefined;
    let connectError: string | undefined;
    let memory: MemoryWatch | undefined;
    const kill = () => {
      if (childPid !== undefined) {
        try {
          process.kill(-childPid, 'SIGKILL'); // the child's own process group: it and whatever it started
        } catch {
          /* already gone */
        }
      }
      socket.destroy();
    };
    opts.signal?.addEventListener('abort', kill, { once: true });
    socket.on('error', (err) => (connectError = err.message));
    socket.on('connect', () => socket.write(`${JSON.stringify({ v: PROTOCOL_VERSION, id, op, args })}\n`));
    createInterface({ input: socket }).on('line', (line) => {
      let parsed;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        server.stderr.push(`[protocol] unexpected line from a torch request: ${line.slice(0, 200)}`);
        return;
      }
      if (parsed.child === true && typeof parsed.pid === 'number') {
        childPid = parsed.pid;
        if (opts.maxRssMb !== undefined) memory = capMemory(childPid, opts.maxRssMb, kill);
        return;
      }
      const msg = LineSchema.safeParse(parsed);
      if (!msg.success || msg.data.id !== id) {
        server.stderr.push(`[protocol] unexpected line from a torch request: ${line.slice(0, 200)}`);
        return;
      }
      outcome ??= toOutcome(msg.data, opts);
    });
    socket.on('close', () => {
      opts.signal?.removeEventListener('abort', kill);
      memory?.stop();
      const stderrTail = [...server.stderr.lines(), ...(connectError ? [`[ttd] fork server connection: ${connectError}`] : [])].join('\n');
      server.inflight--;
      if (server.retired && server.inflight === 0) stopServer(server);
      resolve(outcome ?? { kind: 'crashed', exitCode: null, signal: null, stderrTail, memoryExceeded: memory?.exceeded });
    });
  });
}

// An event goes to the caller; a response becomes the outcome.
function toOutcome(msg: z.infer<typeof LineSchema>, opts: TorchRequestOptions): TorchOutcome | undefined {
  if (msg.event !== undefined) opts.onEvent?.(msg.event, msg.data ?? {});
  else if (msg.ok === true) return { kind: 'ok', result: msg.result ?? {}, ...(msg.ms !== undefined ? { ms: msg.ms } : {}) };
  else if (msg.ok === false && msg.error)
    return { kind: 'error', code: msg.error.code, message: msg.error.message, traceback: msg.error.traceback ?? '' };
  return undefined;
}

/** Sends one request to a fresh torch process and waits for its response. */
async function runInFreshProcess(
  config: Config,
  op: string,
  args: Record<string, unknown>,
  opts: TorchRequestOptions = {},
): Promise<TorchOutcome> {
  const id = randomUUID();
  // Own process group, so cancellation ends every process the model file started.
  const proc = startProcess(config.python, ['-m', 'ttd_torch'], {
    env: torchEnv(config),
    processGroup: true,
    signal: opts.signal,
    stderrTailLines: STDERR_TAIL_LINES,
  });
  const stdin = proc.stdin!;
  const pid = proc.subprocess.pid;
  const memory = opts.maxRssMb !== undefined && pid !== undefined ? capMemory(pid, opts.maxRssMb, () => proc.kill()) : undefined;
  let outcome: TorchOutcome | undefined;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let parsed;
    try {
      parsed = LineSchema.safeParse(JSON.parse(line));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success || parsed.data.id !== id) {
      proc.stderr.push(`[protocol] unexpected line on stdout: ${line.slice(0, 200)}`);
      return;
    }
    outcome ??= toOutcome(parsed.data, opts);
    if (outcome) stdin.end();
  });
  stdin.on('error', () => undefined); // the process may exit before reading; the exit code tells
  stdin.write(`${JSON.stringify({ v: PROTOCOL_VERSION, id, op, args })}\n`);

  const end = await proc.result;
  memory?.stop();
  if (outcome) return outcome;
  return {
    kind: 'crashed',
    exitCode: end.exitCode,
    signal: end.signal,
    stderrTail: end.stderrTail,
    spawnError: end.spawnError,
    memoryExceeded: memory?.exceeded,
  };
}
