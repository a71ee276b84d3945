// The one way to run a torch request (`python -m ttd_torch`, JSON lines): on the worker's long-lived fork server
// (torch imported once; every request in a forked child of its own), or in a fresh process (TTD_TORCH_PROCESS=fresh).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomUUID } from 'node:crypto';
import { archiveLimitsEnv } from '../lib/archive-limits';
import { PROTOCOL_VERSION, ResponseLine, type RequestLine } from '../lib/contract/protocol';
import { GateCode } from '../lib/gate-codes';
import type { Config } from '../lib/config';
import { bwrapArgs, probeSandbox, readOnlyBinds, sandboxEnv, SANDBOX_SCRATCH, type SandboxMounts } from '../lib/sandbox';
import { startProcess, type StartedProcess, type StderrTail } from '../lib/subprocess';
import { capMemory, type MemoryExceeded, type MemoryWatch } from './memory-cap';

const STDERR_TAIL_LINES = 20;

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
    }
  | { kind: typeof GateCode.sandboxUnavailable; reason: string };

/** Options of one request: progress events, cancellation, extra environment. */
export interface TorchRequestOptions {
  onEvent?: (event: string, data: Record<string, unknown>) => void;
  signal?: AbortSignal;
  /** The stage process's memory cap in MiB (activities/memory-cap.ts); none when absent. */
  maxRssMb?: number;
  /** The request's intra-op threads (lib/capacity.ts, stageThreads); the configured count when absent. */
  threads?: number;
}

/** Sends one request to the torch environment and waits for its response. */
export async function runTorchRequest(
  config: Config,
  op: string,
  args: Record<string, unknown>,
  opts: TorchRequestOptions = {},
): Promise<TorchOutcome> {
  opts = { maxRssMb: config.torchStageMaxRssMb, ...opts };
  if (config.sandbox === 'on') {
    const probe = await probeSandbox(config.bwrap);
    if (!probe.ok) return { kind: GateCode.sandboxUnavailable, reason: probe.reason };
  }
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
  /** In the sandbox's pid namespace: the pids its children report are not ours. */
  sandboxed: boolean;
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
  const key = `${config.python}\0${config.pythonPackageDir}\0${config.sandbox}`;
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

// The environment of every torch process: the sandbox's allowlist (never the worker's credentials), the package on
// PYTHONPATH, each stage's thread count, and what the fork server's children need to isolate each request
// (runtimes/python/ttd_torch/sandbox.py).
function torchEnv(config: Config, isolation: Record<string, string> = {}, threads = config.torchThreads): Record<string, string> {
  return sandboxEnv({
    PYTHONPATH: config.pythonPackageDir,
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...threadEnv(threads),
    ...spinEnv(),
    ...archiveLimitsEnv(config.archiveLimits),
    ...(config.sandbox === 'on' ? { TTD_SANDBOX: 'on', ...isolation } : {}),
  });
}

/** How long an idle OpenMP thread of a torch stage spins before it sleeps (libgomp's GOMP_SPINCOUNT), unless the
 * worker's environment chooses (OMP_WAIT_POLICY or GOMP_SPINCOUNT, passed on as they are). libgomp's default spins
 * about 300k times: with two intra-op threads on 2 cores and one g++ beside them (a compile stage, Inductor's probes,
 * another developer's build) a ResNet-18 verify went from 1.4 s to 30 s, as each thread spun away the time slice the
 * other one needed. Spinning 10k times cost nothing measurable alone (1.40 s against 1.38 s) and ended that (5-6 s). */
export function spinEnv(from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return from.OMP_WAIT_POLICY !== undefined || from.GOMP_SPINCOUNT !== undefined ? {} : { GOMP_SPINCOUNT: '10000' };
}

/** The variables that give a torch process `threads` intra-op threads: ours (ttd_torch/threads.py sets them in each
 * request's process), and OpenMP's and MKL's, read when torch loads them and by compiled AOTInductor kernels. */
export function threadEnv(threads: number): Record<string, string> {
  const n = String(threads);
  return { TTD_TORCH_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n };
}

/** The directory under which every torch stage of this process has its work dir (created on first use, removed at
 * exit): the fork server's sandbox binds it, and each request's child sees only its own dir in it. */
export function workRoot(): string {
  if (!root) {
    root = mkdtempSync(join(tmpdir(), 'ttd-work-'));
    serverDirs.add(root);
  }
  return root;
}
let root: string | undefined;

// The command line of a torch process: the Python itself, or bwrap around it (TTD_SANDBOX=on) with the torch
// environment, the ttd package and the request directories bound; `--as-pid-1`: the fork server reaps the namespace.
function torchCommand(config: Config, pythonArgs: string[], readWrite: string[], env: Record<string, string>): [string, string[]] {
  if (config.sandbox !== 'on') return [config.python, pythonArgs];
  const mounts = { ...torchMounts(config), readWrite, cwd: SANDBOX_SCRATCH };
  return [config.bwrap, [...bwrapArgs(mounts, env), '--as-pid-1', config.python, ...pythonArgs]];
}

// What a torch process reads: its Python's installation (a declared environment's and its base's, read-only) and the
// ttd package.
function torchMounts(config: Config): SandboxMounts {
  return { pythons: configPythons(config), readOnly: [config.pythonPackageDir] };
}

/** The Pythons whose installations an environment's processes read: its own, and a declared environment's base. */
export function configPythons(config: Config): string[] {
  return config.basePython ? [config.python, config.basePython] : [config.python];
}

// The directory the fork server's children may write for compiles: this environment's Inductor cache.
function inductorDir(config: Config): string {
  return join(config.inductorCache, config.environment);
}

function startServer(config: Config): Promise<ForkServer | { crashed: TorchOutcome }> {
  const dir = mkdtempSync(join(tmpdir(), 'ttd-torch-'));
  serverDirs.add(dir);
  const socketPath = join(dir, 'server.sock');
  const work = workRoot();
  const cache = inductorDir(config);
  mkdirSync(cache, { recursive: true });
  // Each child sees, of the work root and the cache, only what its request names; never the socket directory.
  const env = torchEnv(config, {
    TTD_SANDBOX_PRIVATE: JSON.stringify([work]),
    TTD_SANDBOX_SHARED: JSON.stringify([cache]),
    TTD_SANDBOX_HIDDEN: JSON.stringify([dir]),
    // Bound again read-only in each child when its fresh /tmp would hide them (a checkout under /tmp, as CI's).
    TTD_SANDBOX_READONLY: JSON.stringify(readOnlyBinds(torchMounts(config)).map(([, target]) => target)),
  });
  const [command, commandArgs] = torchCommand(config, ['-m', 'ttd_torch', '--listen', socketPath], [dir, work, cache], env);
  const proc = startProcess(command, commandArgs, {
    env,
    extendEnv: false,
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
        // In the sandbox the server is pid 1 of its own namespace: bwrap's child, by its pid here.
        const pid = config.sandbox === 'on' ? hostChildren(subprocess.pid!)[0]?.pid : ready.pid;
        if (pid === undefined) throw new Error('no sandboxed server process');
        server = {
          proc,
          socketPath,
          dir,
          sandboxed: config.sandbox === 'on',
          env: { pid, torch_version: ready.torch_version, python_version: ready.python_version },
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

/** The children of a process (pid here, and pid in the innermost pid namespace), from /proc. */
function hostChildren(parent: number): { pid: number; nsPid: number }[] {
  const out: { pid: number; nsPid: number }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== parent) continue;
      const ns = /^NSpid:\s+([\d\s]+)$/m.exec(status)?.[1].trim().split(/\s+/) ?? [name];
      out.push({ pid: Number(name), nsPid: Number(ns[ns.length - 1]) });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
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
      // A sandboxed child said its pid in the sandbox's namespace: find it among the server's children here.
      const pid = server.sandboxed ? hostChildren(server.env.pid).find((c) => c.nsPid === childPid)?.pid : childPid;
      if (pid !== undefined) {
        try {
          process.kill(-pid, 'SIGKILL'); // the child's own process group: it and whatever it started
        } catch {
          /* already gone */
        }
      }
      socket.destroy();
    };
    opts.signal?.addEventListener('abort', kill, { once: true });
    socket.on('error', (err) => (connectError = err.message));
    // `threads`: the child sizes its pools by it (ttd_torch/zygote.py); the server's environment has the configured count.
    const request: RequestLine = { v: PROTOCOL_VERSION, id, op, args, ...(opts.threads !== undefined ? { threads: opts.threads } : {}) };
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
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
        // A sandboxed child said its pid in the sandbox's namespace: the cap reads /proc by the pid seen here.
        const hostPid = server.sandboxed ? hostChildren(server.env.pid).find((c) => c.nsPid === childPid)?.pid : childPid;
        if (opts.maxRssMb !== undefined && hostPid !== undefined) memory = capMemory(hostPid, opts.maxRssMb, kill);
        return;
      }
      const msg = ResponseLine.safeParse(parsed);
      if (!msg.success || msg.data.id !== id) {
        server.stderr.push(`[protocol] unexpected line from a torch request: ${line.slice(0, 200)}`);
        return;
      }
      outcome ??= toOutcome(msg.data, opts);
    });
    socket.on('close', async () => {
      opts.signal?.removeEventListener('abort', kill);
      memory?.stop();
      // A child that ended without answering: the zygote says how once it has reaped it (within its reap interval).
      const end = outcome || childPid === undefined ? undefined : await childEnd(server, childPid);
      const stderrTail = [...server.stderr.lines(), ...(connectError ? [`[ttd] fork server connection: ${connectError}`] : [])].join('\n');
      server.inflight--;
      if (server.retired && server.inflight === 0) stopServer(server);
      resolve(
        outcome ?? {
          kind: 'crashed',
          exitCode: end?.exitCode ?? null,
          signal: end?.signal ?? null,
          stderrTail,
          memoryExceeded: memory?.exceeded,
        },
      );
    });
  });
}

const CHILD_END_WAIT_MS = 2_000;

/** How a fork server's child ended, from the zygote's log line about it (`child PID exited N` or `child PID was killed
 * by signal N`); undefined when it does not say so in time. */
async function childEnd(server: ForkServer, pid: number): Promise<{ exitCode: number | null; signal: string | null } | undefined> {
  const pattern = new RegExp(`\\bchild ${pid} (?:exited (\\d+)|was killed by signal (\\d+))`);
  const deadline = Date.now() + CHILD_END_WAIT_MS;
  for (;;) {
    for (const line of server.stderr.lines()) {
      const m = pattern.exec(line);
      if (m) return m[1] !== undefined ? { exitCode: Number(m[1]), signal: null } : { exitCode: null, signal: signalName(Number(m[2])) };
    }
    if (Date.now() > deadline || server.exited) return undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function signalName(n: number): string {
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;
}

// An event goes to the caller; a response becomes the outcome.
function toOutcome(msg: ResponseLine, opts: TorchRequestOptions): TorchOutcome | undefined {
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
  // The request's own directories (its work dir, a compile's cache) are all it may write.
  const readWrite = requestDirs(args, [workRoot()], [inductorDir(config)]);
  const env = torchEnv(config, {}, opts.threads);
  const [command, commandArgs] = torchCommand(config, ['-m', 'ttd_torch'], readWrite, env);
  // Own process group, so cancellation ends every process the model file started (in the sandbox: bwrap, whose
  // death kills the sandbox).
  const proc = startProcess(command, commandArgs, {
    env,
    extendEnv: false,
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
      parsed = ResponseLine.safeParse(JSON.parse(line));
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
  const request: RequestLine = { v: PROTOCOL_VERSION, id, op, args };
  stdin.write(`${JSON.stringify(request)}\n`);

  const end = await proc.result;
  memory?.stop();
  if (outcome) return outcome;
  // bwrap ends with 128 + N when the process it ran was killed by signal N: say the signal, as without the sandbox.
  const bySignal = config.sandbox === 'on' && end.exitCode !== null && end.exitCode > 128 ? signalName(end.exitCode - 128) : undefined;
  return {
    kind: 'crashed',
    exitCode: bySignal ? null : end.exitCode,
    signal: bySignal ?? end.signal,
    stderrTail: end.stderrTail,
    spawnError: end.spawnError,
    memoryExceeded: memory?.exceeded,
  };
}

/** The directories a request may see: for each path argument (`path`, `*_path`, `*_dir`, never inside `params`, as
 * docs/protocol.md names them) under a work root, the root's entry it lies in (a stage's work dir; never the root
 * itself), and each shared directory it names or lies in. The same rule as runtimes/python/ttd_torch/sandbox.py. */
export function requestDirs(args: unknown, workRoots: string[], shared: string[] = []): string[] {
  const found = new Set<string>();
  const walk = (v: unknown, key: string): void => {
    if (typeof v === 'string') {
      if (!(key === 'path' || key.endsWith('_path') || key.endsWith('_dir'))) return;
      for (const r of workRoots) {
        const entry = v.startsWith(`${r}/`) ? v.slice(r.length + 1).split('/')[0] : '';
        if (entry && entry !== '.' && entry !== '..') found.add(join(r, entry));
      }
      for (const d of shared) if (v === d || v.startsWith(`${d}/`)) found.add(d);
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, key));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) if (k !== 'params') walk(x, k);
  };
  walk(args, '');
  return [...found].sort();
}
