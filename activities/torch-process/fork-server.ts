// The worker's long-lived fork server per torch environment (`python -m ttd_torch --listen SOCKET`): torch imported
// once, every request in a forked child of its own, restarted when it dies or grows past TTD_TORCH_MAX_RSS_MB.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomUUID } from 'node:crypto';
import type { Config } from '../../lib/config';
import { builtRecordOf, requirementName } from '../../lib/environments/declared-environments';
import { readOnlyBinds } from '../../lib/environments/sandbox';
import { startProcess, type StartedProcess, type StderrTail } from '../../lib/environments/subprocess';
import { capMemory, type MemoryWatch } from '../memory-cap';
import { inductorDir, removeDir, serverDirs, torchCommand, torchEnv, torchMounts, workRoot } from './command';
import { PROTOCOL_VERSION, ResponseLine, type RequestLine } from '../../lib/contract/protocol';
import { signalName, STDERR_TAIL_LINES, toOutcome, type TorchOutcome, type TorchRequestOptions } from './envelope';

/** What the fork server said when it was ready: its pid and the torch it imported. */
export interface TorchEnvironment {
  pid: number;
  torch_version: string;
  python_version: string;
  /** The exporters' packages beside torch (onnx, onnxscript, onnxruntime), by name; absent from older servers. */
  packages?: Record<string, string>;
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

/** The torch environment this worker's fork server runs (starting it if needed); undefined if it cannot start. */
export async function torchEnvironment(config: Config, hints: ServerHints = {}): Promise<TorchEnvironment | undefined> {
  const server = await forkServer(config, hints);
  return 'crashed' in server ? undefined : server.env;
}

/** Stops every fork server of this process (workers call it on shutdown; exiting does it too, by closing stdin). */
export async function stopForkServers(): Promise<void> {
  const all = [...servers.values()];
  servers.clear();
  for (const s of await Promise.all(all)) if (!('crashed' in s)) stopServer(s);
}

/** This worker's fork server for the environment of `config`, started (or restarted) when needed. */
export async function forkServer(config: Config, hints: ServerHints = {}): Promise<ForkServer | { crashed: TorchOutcome }> {
  const key = `${config.python}\0${config.pythonPackageDir}\0${config.sandbox}`;
  const existing = servers.get(key);
  if (existing) {
    const s = await existing;
    if (!('crashed' in s) && !s.exited && rssMb(s.env.pid) <= config.torchMaxRssMb) return s;
    if (!('crashed' in s)) retire(s);
    if (servers.get(key) === existing) servers.delete(key);
    else return forkServer(config, hints); // another request restarted it meanwhile
  }
  const starting = startServer(config, hints);
  servers.set(key, starting);
  const s = await starting;
  if ('crashed' in s) servers.delete(key); // not cached: the next request tries again (and reports again)
  return s;
}

/** What the zygote imports once for all its children (docs/protocol.md, "Preloading"): a declared environment's
 * requirements, which a model file imports in every stage (transformers and its modeling code: 1.6 s a stage). */
export function preloadEnv(config: Config, importsOf?: string): Record<string, string> {
  const requirements = config.basePython ? builtRecordOf(config.python)?.requirements : undefined;
  if (!requirements?.length) return {};
  const preload = { distributions: requirements.map(requirementName), ...(importsOf ? { imports_of: importsOf } : {}) };
  return { TTD_TORCH_PRELOAD: JSON.stringify(preload) };
}

/** What a fork server may be told when it starts: a model file whose imports from the environment's declared
 * requirements it preloads too (read, never run: docs/protocol.md, "Preloading"). */
export interface ServerHints {
  modelSource?: Buffer;
}

function startServer(config: Config, hints: ServerHints): Promise<ForkServer | { crashed: TorchOutcome }> {
  const dir = mkdtempSync(join(tmpdir(), 'ttd-torch-'));
  serverDirs.add(dir);
  // The zygote reads the hint in its own directory (which its children never see).
  const importsOf = hints.modelSource && config.basePython ? join(dir, 'model-imports.py') : undefined;
  if (importsOf) writeFileSync(importsOf, hints.modelSource!);
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
    ...preloadEnv(config, importsOf),
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
          env: { pid, torch_version: ready.torch_version, python_version: ready.python_version, ...(ready.packages ? { packages: ready.packages } : {}) },
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
export function runOnForkServer(
  server: ForkServer,
  op: string,
  args: Record<string, unknown>,
  opts: TorchRequestOptions,
): Promise<TorchOutcome> {
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
