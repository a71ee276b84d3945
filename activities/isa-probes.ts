// Inductor's CPU ISA probes for the AOTInductor Python parity runner: a few tiny kernels that Inductor compiles to learn
// which vector instructions the host has, the same for every model. A server compiles them once per host; a sandboxed
// runner with an empty cache compiled them on every run (5-20 s of the stage). Even from a cache, each probe is then
// loaded in a child Python of its own (ten on this host); where every ISA the CPU claims passed its base probe here, the
// runner is told so (TORCHINDUCTOR_VEC_ISA_OK=1) and skips those (four of the ten).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../lib/config';
import { sandboxEnv } from '../lib/environments/sandbox';
import { runProcess } from '../lib/environments/subprocess';

// The ISAs the probes pass, then the ISAs the CPU claims (x86: its cpuinfo flags, what Inductor reads before probing):
// equal lists mean that every base probe passed, so trusting the claim (config.cpp.vec_isa_ok) picks what probing
// picks. Only the base probe is skipped that way; AVX512's, VNNI's and AMX's own checks still run in the runner.
const ISA_PROBE = [
  'import json, platform',
  'from torch._inductor import cpu_vec_isa',
  'probed = [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()]',
  'claimed = None',
  'try:',
  '    if platform.machine() == "x86_64":',
  '        flags = cpu_vec_isa.x86_isa_checker()',
  '        claimed = [str(i) for i in cpu_vec_isa.supported_vec_isa_list if all(f in flags for f in str(i).split())]',
  'except Exception:  # a torch without these: the cache alone, as before',
  '    pass',
  'print(json.dumps({"probed": probed, "claimed": claimed}))',
].join('\n');
const VERDICT = 'isa-verdict.json';

/** The ISA probes of an environment's torch on this host: an Inductor cache holding them (`dir`), and the variables a
 * runner takes beside it (`env`: TORCHINDUCTOR_VEC_ISA_OK=1 where the probes found every ISA the CPU claims). */
export interface IsaProbes {
  dir: string;
  env: Record<string, string>;
}

const isaProbeDirs = new Map<string, Promise<IsaProbes | undefined>>();

/** An Inductor cache holding only the CPU ISA probes of an environment's torch, made once per worker host by our own
 * code (no model runs there), beside (not inside) the compile stage's cache that model code may write; undefined
 * where it cannot be made (the runner then compiles them itself, as before). */
export function isaProbes(config: Config): Promise<IsaProbes | undefined> {
  // A declared environment runs its base's torch: the base's probes are its own, never compiled again at its first
  // AOTInductor parity (10 s of a GPT-2 run's stage).
  const environment = config.baseEnvironment ?? config.environment;
  const python = config.basePython ?? config.python;
  const dir = join(config.inductorCache, `${environment}.isa-probes`);
  let made = isaProbeDirs.get(dir);
  if (!made) {
    made = (async () => {
      if (existsSync(join(dir, '.complete'))) return found(dir);
      await mkdir(config.inductorCache, { recursive: true });
      const temp = await mkdtemp(`${dir}.tmp-`);
      // At the lowest CPU priority: a run's first stages (train, trace, verify) run meanwhile, and about 12 CPU-seconds
      // of g++ beside torch's intra-op threads made them four to six times slower on 2 cores (oversubscribed threads
      // spin); niced, it takes the cycles they leave.
      const res = await runProcess('nice', ['-n', '19', python, '-I', '-c', ISA_PROBE], {
        env: sandboxEnv({ TORCHINDUCTOR_CACHE_DIR: temp, TMPDIR: tmpdir(), HOME: temp }),
        extendEnv: false,
        timeoutMs: 300_000,
      });
      if (!res.ok) {
        await rm(temp, { recursive: true, force: true });
        return undefined;
      }
      await rm(join(temp, 'locks'), { recursive: true, force: true });
      await writeFile(join(temp, VERDICT), `${res.stdout.trim().split('\n').pop() ?? ''}\n`);
      await mkdir(join(temp, '.complete'));
      // Another worker may have made it first: theirs is as good.
      await rename(temp, dir).catch(() => rm(temp, { recursive: true, force: true }));
      return existsSync(join(dir, '.complete')) ? found(dir) : undefined;
    })();
    isaProbeDirs.set(dir, made);
  }
  return made;
}

// A made probe cache and what its verdict allows; a cache made before verdicts were kept (or an unreadable one) allows
// nothing more than the cache.
async function found(dir: string): Promise<IsaProbes> {
  try {
    const { probed, claimed } = JSON.parse(await readFile(join(dir, VERDICT), 'utf8')) as { probed?: unknown; claimed?: unknown };
    const same = Array.isArray(probed) && probed.length > 0 && JSON.stringify(probed) === JSON.stringify(claimed);
    return { dir, env: same ? { TORCHINDUCTOR_VEC_ISA_OK: '1' } : {} };
  } catch {
    return { dir, env: {} };
  }
}
