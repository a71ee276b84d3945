// The command line and environment of every torch process (fork server or fresh): the sandbox around it, the
// threads it may use, and the directories it may write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../../lib/config';
import { archiveLimitsEnv } from '../../lib/limits/archive-limits';
import { bwrapArgs, sandboxEnv, SANDBOX_SCRATCH, type SandboxMounts } from '../../lib/environments/sandbox';

// Each server's socket directory until it is removed: a worker that exits without stopForkServers (or before a server
// ends) removes what is left here; the server itself only unlinks its socket.
export const serverDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of serverDirs) removeDir(dir);
});

/** Removes a directory this process made for torch processes, and forgets it. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  serverDirs.delete(dir);
}

// The environment of every torch process: the sandbox's allowlist (never the worker's credentials), the package on
// PYTHONPATH, each stage's thread count, and what the fork server's children need to isolate each request
// (runtimes/python/ttd_torch/sandbox.py).
export function torchEnv(config: Config, isolation: Record<string, string> = {}, threads = config.torchThreads): Record<string, string> {
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
export function torchCommand(config: Config, pythonArgs: string[], readWrite: string[], env: Record<string, string>): [string, string[]] {
  if (config.sandbox !== 'on') return [config.python, pythonArgs];
  const mounts = { ...torchMounts(config), readWrite, cwd: SANDBOX_SCRATCH };
  return [config.bwrap, [...bwrapArgs(mounts, env), '--as-pid-1', config.python, ...pythonArgs]];
}

// What a torch process reads: its Python's installation (a declared environment's and its base's, read-only) and the
// ttd package.
export function torchMounts(config: Config): SandboxMounts {
  return { pythons: configPythons(config), readOnly: [config.pythonPackageDir] };
}

/** The Pythons whose installations an environment's processes read: its own, and a declared environment's base. */
export function configPythons(config: Config): string[] {
  return config.basePython ? [config.python, config.basePython] : [config.python];
}

// The directory the fork server's children may write for compiles: this environment's Inductor cache.
export function inductorDir(config: Config): string {
  return join(config.inductorCache, config.environment);
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
