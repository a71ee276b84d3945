// Environments declared with the spec: a base torch environment plus requirements, built by uv into a virtualenv
// that shares the base's site-packages (so the base's torch, and so its libtorch runner, stay the ones used), cached
// under TTD_ENV_CACHE by the digest of base and requirements, built in a temporary directory and renamed into place.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { canonicalJson, digestBytes, digestHex } from '../store/digest';
import { ErrorCode, TtdError } from '../contract/errors';
import { runProcess } from './subprocess';

/** What a spec declares: the base environment's name and the requirement lines (a file's lines for the file form). */
export interface DeclaredEnvironment {
  base: string;
  requirements: string[];
}

/** A built environment, as its `env.json` records it. */
export interface BuiltEnvironment {
  format: 'ttd-env/1';
  base: string;
  requirements: string[];
  digest: string;
  /** The base's torch, shared, never reinstalled. */
  torch_version: string;
  /** Every package the requirements resolved to, `name==version`, those the base already had included. */
  resolved: string[];
  /** The packages installed into the environment itself (the rest come from the base). */
  installed: string[];
}

/** The digest of a declared environment: what its cache directory is named after. */
export function declaredDigest(d: DeclaredEnvironment): string {
  return digestBytes(canonicalJson({ base: d.base, requirements: d.requirements }));
}

// A run's environment id for a declared one: the base's name, '+', the digest's hex (64 characters).
const DECLARED_ID = /^([a-z0-9][a-z0-9._-]{0,63})\+([0-9a-f]{64})$/;

/** The id stages carry for a declared environment: `<base>+<hex>`. */
export function declaredId(d: DeclaredEnvironment): string {
  return `${d.base}+${digestHex(declaredDigest(d))}`;
}

/** The base and digest hex of a declared environment's id; undefined for a plain environment name. */
export function parseDeclaredId(id: string): { base: string; hex: string } | undefined {
  const m = DECLARED_ID.exec(id);
  return m ? { base: m[1], hex: m[2] } : undefined;
}

/** How a declared environment is shown (parity reports, messages): the base and the digest's first 12 hex digits. */
export function declaredLabel(base: string, hex: string): string {
  return `${base}+${hex.slice(0, 12)}`;
}

/** The Python of a declared environment in the cache (it may not be built yet). */
export function declaredPython(cacheDir: string, hex: string): string {
  return join(cacheDir, hex, 'venv', 'bin', 'python');
}

// Requirement options that would change where packages come from or what else is read: the index is the worker's
// (TTD_INDEX_URL), and a requirements file names packages, not other files.
const HASH_OPTION = /\s--hash[=\s]\s*[a-z0-9]+:[0-9a-f]+/gi;
const NAME = /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)/;

/** Checks one requirement line (a PEP 508 requirement, optionally followed by `--hash=ALGO:HEX` options); returns a
 * reason it is refused, or undefined. */
export function requirementProblem(line: string): string | undefined {
  const bare = line.replace(HASH_OPTION, '').trim();
  if (!bare) return 'is empty';
  if (bare.startsWith('-')) return 'is an option; only requirements (name and version), each optionally with --hash=, are accepted';
  if (/\s-{1,2}[a-z]/i.test(bare)) return 'carries an option other than --hash=';
  if (/[\n\r]/.test(line)) return 'spans several lines';
  if (/:\/\/|^\.|^\//.test(bare) || bare.includes(' @ ')) return 'is a URL or a path; name a package from the index instead';
  if (!NAME.test(bare)) return 'does not start with a package name';
  return undefined;
}

/** The normalized name of a requirement line's package (PEP 503). */
export function requirementName(line: string): string {
  return normalize(NAME.exec(line.trim())?.[1] ?? '');
}

function normalize(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/** Reads a requirements file beside the spec into logical lines: comments and blank lines dropped, backslash
 * continuations joined. Throws spec_invalid naming the file and line of anything refused. */
export function readRequirementsFile(path: string, shown: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TtdError(
      ErrorCode.specInvalid,
      `environment.requirements: cannot read '${shown}' (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected a requirements file beside the spec`,
    );
  }
  const lines: string[] = [];
  let pending = '';
  let start = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    if (!pending) start = i + 1;
    const line = raw.replace(/(^|\s)#.*$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const whole = `${pending}${line}`.replace(/\s+/g, ' ').trim();
    pending = '';
    if (!whole) return;
    const problem = requirementProblem(whole);
    if (problem) throw new TtdError(ErrorCode.specInvalid, `environment.requirements: '${shown}' line ${start}: '${whole.slice(0, 120)}' ${problem}`);
    lines.push(whole);
  });
  if (!lines.length) throw new TtdError(ErrorCode.specInvalid, `environment.requirements: '${shown}' lists no requirement`);
  return lines;
}

/** What building needs: uv, the cache, the base environment's Python, and optionally another index. */
export interface BuildOptions {
  uv: string;
  cacheDir: string;
  basePython: string;
  /** The index to resolve against (TTD_INDEX_URL); uv's default (PyPI) when absent. */
  indexUrl?: string;
  /** Each phase, for heartbeats and progress. */
  onProgress?: (phase: string) => void;
  signal?: AbortSignal;
}

/** The record of the declared environment whose Python is `python` (<cache>/<hex>/venv/bin/python, the record beside
 * the venv); undefined for another Python or an unreadable record. */
export function builtRecordOf(python: string): BuiltEnvironment | undefined {
  try {
    const parsed = JSON.parse(readFileSync(join(dirname(dirname(dirname(python))), 'env.json'), 'utf8')) as BuiltEnvironment;
    return parsed.format === 'ttd-env/1' && Array.isArray(parsed.requirements) && Array.isArray(parsed.resolved) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The built environment of a declaration, read from the cache; undefined when it is not built (or is damaged). */
export async function cachedEnvironment(cacheDir: string, d: DeclaredEnvironment): Promise<BuiltEnvironment | undefined> {
  const hex = digestHex(declaredDigest(d));
  const record = join(cacheDir, hex, 'env.json');
  if (!existsSync(record) || !existsSync(declaredPython(cacheDir, hex))) return undefined;
  try {
    const parsed = JSON.parse(await readFile(record, 'utf8')) as BuiltEnvironment;
    return parsed.format === 'ttd-env/1' && parsed.digest === declaredDigest(d) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

// What the base says of itself: its torch and that torch's dependencies, every installed package, where they live.
const BASE_FACTS = `
import importlib.metadata as md, json, os, site, sys
pkgs = sorted({(d.metadata['Name'], d.version) for d in md.distributions() if d.metadata['Name']})
print(json.dumps({'torch': md.version('torch'), 'torch_requires': md.requires('torch') or [], 'packages': pkgs,
  'sites': [p for p in site.getsitepackages() if os.path.isdir(p)], 'python': '%d.%d' % sys.version_info[:2]}))
`;

interface BaseFacts {
  torch: string;
  torch_requires: string[];
  packages: [string, string][];
  /** Where the base's packages live: a venv's site-packages, or a system Python's dist-packages (Debian's torch). */
  sites: string[];
  python: string;
}

/** Builds a declared environment (or returns the cached one): resolves the requirements with torch held at the
 * base's version, installs what the base lacks into a new virtualenv that sees the base's packages, and renames it
 * into the cache. Throws environment_invalid (a requirement that needs another torch, or that cannot be resolved or
 * installed) or index_unreachable, leaving nothing behind. */
export async function buildEnvironment(d: DeclaredEnvironment, opts: BuildOptions): Promise<BuiltEnvironment & { cached: boolean }> {
  const cached = await cachedEnvironment(opts.cacheDir, d);
  if (cached) return { ...cached, cached: true };
  const digest = declaredDigest(d);
  const hex = digestHex(digest);
  await mkdir(opts.cacheDir, { recursive: true });
  const tmp = await mkdtemp(join(opts.cacheDir, `.build-${hex.slice(0, 12)}-`));
  try {
    opts.onProgress?.('inspecting the base environment');
    const facts = await baseFacts(d, opts);
    const uvEnv = { UV_CACHE_DIR: join(opts.cacheDir, '.uv-cache'), UV_NO_CONFIG: '1', UV_PYTHON_DOWNLOADS: 'never' };
    // torch is resolved as the base has it, from a stub wheel holding only the base torch's metadata: nothing can
    // replace it, and the index's torch (a multi-GB CUDA build) is never a candidate.
    const stubs = join(tmp, 'stubs');
    await mkdir(stubs);
    await writeStubWheel(opts.basePython, stubs);
    await writeFile(join(tmp, 'requirements.in'), `${d.requirements.join('\n')}\n`);
    await writeFile(join(tmp, 'constraints.txt'), `torch==${facts.torch}\n`);
    // The base's packages as preferences (an existing output file): the resolver keeps their versions where it can.
    await writeFile(join(tmp, 'resolved.txt'), `${facts.packages.map(([n, v]) => `${n}==${v}`).join('\n')}\n`);
    const index = opts.indexUrl ? ['--default-index', opts.indexUrl] : [];
    opts.onProgress?.('resolving requirements');
    const compile = await runProcess(
      opts.uv,
      [
        'pip',
        'compile',
        'requirements.in',
        '-c',
        'constraints.txt',
        '--python',
        opts.basePython,
        '--only-binary',
        ':all:',
        '--find-links',
        stubs,
        '-o',
        'resolved.txt',
        '--no-header',
        '--no-annotate',
        '--quiet',
        ...index,
      ],
      { cwd: tmp, env: uvEnv, timeoutMs: 600_000, stderrTailLines: 40, signal: opts.signal },
    );
    if (!compile.ok) throw uvFailure(d, facts.torch, compile.stderrTail || compile.spawnError || `exit code ${compile.exitCode}`, 'resolve');
    const resolved = (await readFile(join(tmp, 'resolved.txt'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^[A-Za-z0-9][A-Za-z0-9._-]*==\S+$/.test(l));
    const have = new Map(facts.packages.map(([n, v]) => [normalize(n), v]));
    const install = resolved.filter((l) => {
      const [name, version] = l.split('==');
      return normalize(name) !== 'torch' && have.get(normalize(name)) !== version;
    });
    opts.onProgress?.(`creating the environment (${install.length} packages beside ${d.base})`);
    const venv = join(tmp, 'venv');
    const made = await runProcess(opts.uv, ['venv', '--relocatable', '--quiet', '--python', opts.basePython, venv], {
      env: uvEnv,
      timeoutMs: 120_000,
      stderrTailLines: 20,
    });
    if (!made.ok) throw new Error(`uv venv failed: ${made.stderrTail || made.spawnError}`);
    if (install.length) {
      const hashes = hashesByName(d.requirements);
      const lines = install.map((l) => [l, ...(hashes.get(requirementName(l)) ?? [])].join(' '));
      await writeFile(join(tmp, 'install.txt'), `${lines.join('\n')}\n`);
      opts.onProgress?.(`installing ${install.length} packages`);
      const installed = await runProcess(
        opts.uv,
        [
          'pip',
          'install',
          '--python',
          join(venv, 'bin', 'python'),
          '--no-deps',
          '--only-binary',
          ':all:',
          '-r',
          'install.txt',
          '--quiet',
          ...(hashes.size ? ['--require-hashes'] : []),
          ...index,
        ],
        { cwd: tmp, env: uvEnv, timeoutMs: 1_800_000, stderrTailLines: 40, signal: opts.signal },
      );
      if (!installed.ok) throw uvFailure(d, facts.torch, installed.stderrTail || installed.spawnError || `exit code ${installed.exitCode}`, 'install');
    }
    // The base's packages after the environment's own: torch (and its runner's libtorch) stay the base's.
    await writeFile(join(venv, 'lib', `python${facts.python}`, 'site-packages', '_ttd_base.pth'), `${facts.sites.join('\n')}\n`);
    const record: BuiltEnvironment = {
      format: 'ttd-env/1',
      base: d.base,
      requirements: d.requirements,
      digest,
      torch_version: facts.torch,
      resolved,
      installed: install,
    };
    await writeFile(join(tmp, 'env.json'), `${JSON.stringify(record, null, 2)}\n`);
    await rm(stubs, { recursive: true, force: true });
    try {
      await rename(tmp, join(opts.cacheDir, hex));
    } catch (err) {
      // Another worker built the same environment meanwhile: theirs is complete, ours is dropped.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      await rm(tmp, { recursive: true, force: true });
      const theirs = await cachedEnvironment(opts.cacheDir, d);
      if (theirs) return { ...theirs, cached: true };
      throw err;
    }
    return { ...record, cached: false };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

async function baseFacts(d: DeclaredEnvironment, opts: BuildOptions): Promise<BaseFacts> {
  const run = await runProcess(opts.basePython, ['-c', BASE_FACTS], { timeoutMs: 60_000, stderrTailLines: 10 });
  try {
    return JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as BaseFacts;
  } catch {
    throw new TtdError(
      ErrorCode.environmentInvalid,
      `environment.base '${d.base}' (python '${opts.basePython}') did not say its torch and packages: ${run.spawnError ?? run.stderrTail.trim().split('\n').pop() ?? `exit code ${run.exitCode}`}`,
    );
  }
}

// A wheel holding nothing but the base torch's metadata (name, exact version, dependencies): the resolver's only torch.
const STUB_WHEEL = `
import importlib.metadata as md, sys, zipfile
v = md.version('torch'); reqs = md.requires('torch') or []
info = 'torch-%s.dist-info/' % v
with zipfile.ZipFile('%s/torch-%s-py3-none-any.whl' % (sys.argv[1], v), 'w') as z:
    z.writestr(info + 'METADATA', 'Metadata-Version: 2.1\\nName: torch\\nVersion: %s\\n' % v + ''.join('Requires-Dist: %s\\n' % r for r in reqs))
    z.writestr(info + 'WHEEL', 'Wheel-Version: 1.0\\nGenerator: ttd\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    z.writestr(info + 'RECORD', '')
`;

async function writeStubWheel(basePython: string, dir: string): Promise<void> {
  const run = await runProcess(basePython, ['-c', STUB_WHEEL, dir], { timeoutMs: 60_000, stderrTailLines: 10 });
  if (!run.ok) throw new Error(`could not describe the base's torch: ${run.stderrTail || run.spawnError}`);
}

// The --hash options the user gave, by package name: carried to the install of that package.
function hashesByName(lines: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of lines) {
    const hashes = [...line.matchAll(HASH_OPTION)].map((m) => `--hash=${m[0].replace(/^\s*--hash[=\s]\s*/i, '')}`);
    if (hashes.length) out.set(requirementName(line), hashes);
  }
  return out;
}

const NETWORK = /(Failed to fetch|error sending request|tcp connect error|dns error|Connection refused|Could not connect|timed out|Network is unreachable)/i;

/** A uv failure as a user's error: the index unreachable, a requirement that needs another torch, or one that cannot
 * be resolved or installed; each names the package and quotes uv's reason. */
export function uvFailure(d: DeclaredEnvironment, torch: string, stderr: string, step: 'resolve' | 'install'): TtdError {
  const why = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ')
    .replace(/\s+/g, ' ')
    .slice(0, 900);
  const torchConflict = new RegExp(`torch==${torch.replace(/[.+]/g, '\\$&')}`).test(stderr) && /unsatisfiable|cannot be used/.test(stderr);
  if (torchConflict) {
    const viaDep = /Because ([A-Za-z0-9._-]+)(?:[=<>!~]=?[^\s,]*)? depends on (torch[^\s,]*)/.exec(stderr);
    const direct = /you require (torch[^\s,]*)/.exec(stderr);
    const pkg = viaDep ? viaDep[1] : 'torch';
    const wants = viaDep ? viaDep[2] : (direct?.[1] ?? 'another torch');
    return new TtdError(
      ErrorCode.environmentInvalid,
      `environment.requirements: '${pkg}' needs ${wants}, but environment.base '${d.base}' has torch ${torch}, which a declared environment shares and never replaces (its libtorch runner is built against it); pin a release of ${pkg} made for torch ${torch.split('+')[0]}, or choose a base with the torch it needs. uv: ${why}`,
      { package: pkg, torch },
    );
  }
  if (NETWORK.test(stderr)) {
    const url = /(https?:\/\/[^\s)]+)/.exec(stderr)?.[1];
    return new TtdError(
      ErrorCode.indexUnreachable,
      `the package index${url ? ` (${url})` : ''} cannot be reached to ${step} environment.requirements of '${d.base}'; expected a reachable index (PyPI, or TTD_INDEX_URL). uv: ${why}`,
      { url },
    );
  }
  return new TtdError(
    ErrorCode.environmentInvalid,
    `environment.requirements [${d.requirements.map((r) => r.replace(HASH_OPTION, '')).join(', ')}] cannot be ${step === 'resolve' ? 'resolved' : 'installed'} on environment.base '${d.base}' (torch ${torch}, wheels only): uv: ${why}`,
  );
}
