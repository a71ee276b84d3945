// Worker hosts for tests: `ttd worker` processes, each with the environment of its own host (home, store, keys).
// eslint-disable-next-line @typescript-eslint/no-restricted-imports -- pgrep answers at once
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './helpers';

/** A running `ttd worker` and what it said it serves. */
export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** The "worker serving …" line. */
  serving: string;
  /** Everything it wrote on stderr so far. */
  log(): string;
  /** Stops it with SIGTERM and waits for it (nothing when it has already ended). */
  stop(): Promise<void>;
  /** SIGKILLs it and every process under it (its fork server and stage processes): the host is gone. */
  killHost(): Promise<void>;
}

/** Starts `ttd worker ARGS` with `env` over the test's; resolves once it says it serves. */
export async function startWorker(env: Record<string, string | undefined>, args: string[] = []): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'worker', ...args], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: '1', ...env } as NodeJS.ProcessEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const serving = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      const line = err.split('\n').find((l) => l.startsWith('worker serving'));
      if (line) resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`ttd worker ${args.join(' ')} exited (${code}): ${err}`)));
  });
  const ended = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid!,
    serving,
    log: () => err,
    async stop() {
      if (!alive()) return;
      child.kill('SIGTERM');
      await ended;
    },
    async killHost() {
      const tree = descendants(child.pid!);
      child.kill('SIGKILL');
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await ended;
    },
  };
}

// Every process under `pid`, children first found by their parent id.
function descendants(pid: number): number[] {
  let children: number[];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    children = []; // pgrep exits 1 when there are none
  }
  return children.flatMap((c) => [c, ...descendants(c)]);
}
