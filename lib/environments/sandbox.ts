// The sandbox of code we did not write (model files, foreign archives): every torch process and parity runner runs
// under bubblewrap, without network or credentials, seeing the host read-only and only where it must.
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { runProcess } from './subprocess';

/** Where the sandbox's own scratch is: a private tmpfs in every sandbox, also HOME and TMPDIR. */
export const SANDBOX_SCRATCH = '/tmp';

/** What a sandboxed command may see and touch beyond the system directories. */
export interface SandboxMounts {
  /** Python interpreters whose installation (venv, base prefix) it needs, read-only. */
  pythons?: string[];
  /** Further paths it reads (the ttd package, a runner binary), read-only at the same path. */
  readOnly?: string[];
  /** Directories it writes (the request's work dir, the Inductor cache, the fork server's socket dir). */
  readWrite?: string[];
  /** Its working directory (one of readWrite). */
  cwd?: string;
}

// The system directories: read-only; on a merged-/usr system /bin, /lib, … are symlinks into /usr and stay symlinks.
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
// What of /etc a Python or a C++ runtime reads: the loader's cache, Debian's alternatives (libblas, c++), users and
// groups (getpass), the time zone, Debian's per-Python configuration. Nothing else (shadow, ssh keys, credentials).
const ETC_FILES = ['ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'alternatives', 'localtime', 'passwd', 'group', 'nsswitch.conf'];

// Variables passed on from the worker when set: thread counts, devices, Inductor's knobs and compilers.
const PASSED_ON = /^(OMP_NUM_THREADS|OMP_WAIT_POLICY|GOMP_SPINCOUNT|MKL_NUM_THREADS|OPENBLAS_NUM_THREADS|CUDA_VISIBLE_DEVICES|CC|CXX|TORCHINDUCTOR_[A-Z0-9_]+)$/;

/** The whole environment of a torch process or runner: a fixed base, `extra`, and the allowlisted worker variables.
 * Nothing else of the worker's environment (credentials, TTD_*, AWS_*, …) reaches code we did not write. */
export function sandboxEnv(extra: Record<string, string> = {}, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: SANDBOX_SCRATCH,
    TMPDIR: SANDBOX_SCRATCH,
  };
  for (const [name, value] of Object.entries(from))
    if (PASSED_ON.test(name) && value !== undefined && !isSecretName(name)) env[name] = value;
  return { ...env, ...extra };
}

/** The bwrap arguments (before the command) that run a command in the sandbox with `mounts` and `env`. */
export function bwrapArgs(mounts: SandboxMounts, env: Record<string, string>): string[] {
  // Never uid 0 inside (a nested user namespace may not map uid 0 without CAP_SETFCAP, and root owns too much).
  const uid = process.getuid?.() || 1000;
  const gid = process.getgid?.() || 1000;
  const args = [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
    '--uid',
    String(uid),
    '--gid',
    String(gid),
    '--clearenv',
  ];
  for (const dir of SYSTEM_DIRS) {
    const st = lstatOrUndefined(dir);
    if (st?.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else if (st?.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  const etc = [...ETC_FILES, ...listOr('/etc').filter((name) => /^python3/.test(name))];
  for (const name of etc) args.push('--ro-bind-try', join('/etc', name), join('/etc', name));
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', SANDBOX_SCRATCH);
  for (const [source, target] of readOnlyBinds(mounts)) args.push('--ro-bind', source, target);
  for (const [source, target] of samePathBinds(mounts.readWrite ?? [])) args.push('--bind', source, target);
  for (const [name, value] of Object.entries(env)) args.push('--setenv', name, value);
  if (mounts.cwd) args.push('--chdir', mounts.cwd);
  return args;
}

/** The read-only binds of `mounts` as [source, target]: the Pythons' installations and the further read-only paths. */
export function readOnlyBinds(mounts: SandboxMounts): [string, string][] {
  return samePathBinds([...(mounts.pythons ?? []).flatMap(pythonRoots), ...(mounts.readOnly ?? [])]);
}

/** The directories a Python interpreter needs: its prefix (a venv), the prefix its binary resolves to, and a venv's
 * base installation (pyvenv.cfg `home`); none for a Python in the system directories. */
export function pythonRoots(python: string): string[] {
  if (!isAbsolute(python)) return []; // found on PATH: a system Python
  const roots = new Set<string>([dirname(dirname(python))]);
  const real = realpathOr(python);
  roots.add(dirname(dirname(real)));
  const cfg = join(dirname(dirname(python)), 'pyvenv.cfg');
  const home = existsSync(cfg) ? /^home\s*=\s*(.+)$/m.exec(readFileSync(cfg, 'utf8'))?.[1]?.trim() : undefined;
  if (home) roots.add(dirname(resolve(home)));
  return [...roots].filter((r) => !inSystemDirs(r));
}

// Each path bound where it is, and also at its real path when a symlink leads there (a venv's RUNPATH names the real
// one, the configuration the other); paths that do not exist are left out (bwrap would refuse them).
function samePathBinds(paths: string[]): [string, string][] {
  const out = new Map<string, string>();
  for (const path of paths) {
    if (!existsSync(path)) continue;
    const real = realpathOr(path);
    out.set(real, real);
    if (real !== path) out.set(path, real);
  }
  // A path inside another bound one is visible already (and bwrap could not make its mount point in a read-only bind).
  const targets = [...out.keys()];
  const inner = (t: string) => targets.some((o) => o !== t && t.startsWith(`${o}/`));
  return [...out.entries()].filter(([target]) => !inner(target)).map(([target, source]) => [source, target]);
}

function inSystemDirs(path: string): boolean {
  return path === '/' || SYSTEM_DIRS.some((d) => path === d || path.startsWith(`${d}/`));
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function listOr(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Whether the sandbox can run here, or why not (bwrap missing, user namespaces disabled). */
export type SandboxProbe = { ok: true } | { ok: false; reason: string };

const probes = new Map<string, Promise<SandboxProbe>>();

/** Runs `true` in an empty sandbox once per bwrap path (cached for the process). */
export function probeSandbox(bwrap: string): Promise<SandboxProbe> {
  let probe = probes.get(bwrap);
  if (!probe) {
    probe = (async (): Promise<SandboxProbe> => {
      if (!existsSync(bwrap)) return { ok: false, reason: `'${bwrap}' does not exist (install Debian's bubblewrap; make setup does)` };
      const res = await runProcess(bwrap, [...bwrapArgs({}, sandboxEnv()), 'true'], { extendEnv: false, env: {}, timeoutMs: 10_000 });
      if (res.ok) return { ok: true };
      const why = res.spawnError ?? (res.stderrTail.trim().split('\n').pop() || `exit code ${res.exitCode}`);
      return { ok: false, reason: `'${bwrap}' cannot start a sandbox here (${why}); user namespaces may be disabled` };
    })();
    probes.set(bwrap, probe);
  }
  return probe;
}

// Names of worker variables whose values are secrets: tokens, passwords, keys, AWS_* and anything credential-like.
const SECRET_NAME = /(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|_KEY(_DATA)?$|API_KEY|^TEMPORAL_TLS_CLIENT|^AWS_|PRIVATE)/i;

/** Whether an environment variable's name marks its value as a secret. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

// Errno texts that a refused operation produces (C strerror and Python's), and the network's.
const FS_REFUSAL = /(No such file or directory|Permission denied|Read-only file system|Operation not permitted)/;
const NET_REFUSAL =
  /(Network is unreachable|Temporary failure in name resolution|Name or service not known|Connection refused|Address family not supported)/;
const PATH_NEAR = /(?<![\w.])(\/(?:[\w.@+~-]+\/?)+)/g;

/** What the sandbox refused, judged from an error text of a sandboxed process (a runner's error, a traceback): a
 * network operation, or a file operation on a path outside `allowed` (the dirs it was given); undefined when the
 * text shows no refusal. A missing file of the model's own (in its work dir) is not a refusal. */
export function sandboxRefusal(text: string, allowed: string[]): string | undefined {
  const net = NET_REFUSAL.exec(text);
  if (net) return `a network operation (${net[1]}): the sandbox has no network`;
  for (const m of text.matchAll(new RegExp(FS_REFUSAL.source, 'g'))) {
    const at = m.index ?? 0;
    const near = text.slice(Math.max(0, at - 300), at + 300).replace(/File "[^"]*", line \d+/g, '');
    for (const p of near.matchAll(PATH_NEAR)) {
      const path = p[1].replace(/[/.]+$/, '') || '/';
      if (!allowed.some((a) => path === a || path.startsWith(`${a}/`))) return `access to '${path}' (${m[1]}), outside its work directory`;
    }
  }
  return undefined;
}
