// Inductor's CPU ISA probes for the AOTInductor Python parity runner: a few tiny kernels that Inductor compiles to learn
// which vector instructions the host has, the same for every model. A server compiles them once per host; a sandboxed
// runner with an empty cache compiled them on every run (5-20 s of the stage).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../lib/config';
import { sandboxEnv } from '../lib/environments/sandbox';
import { runProcess } from '../lib/environments/subprocess';

const ISA_PROBE = 'from torch._inductor import cpu_vec_isa; cpu_vec_isa.valid_vec_isa_list()';
const isaProbeDirs = new Map<string, Promise<string | undefined>>();

/** An Inductor cache holding only the CPU ISA probes of an environment's torch, made once per worker host by our own
 * code (no model runs there), beside (not inside) the compile stage's cache that model code may write; undefined
 * where it cannot be made (the runner then compiles them itself, as before). */
export function isaProbes(config: Config): Promise<string | undefined> {
  const dir = join(config.inductorCache, `${config.environment}.isa-probes`);
  let made = isaProbeDirs.get(dir);
  if (!made) {
    made = (async () => {
      if (existsSync(join(dir, '.complete'))) return dir;
      await mkdir(config.inductorCache, { recursive: true });
      const temp = await mkdtemp(`${dir}.tmp-`);
      // At the lowest CPU priority: a run's first stages (train, trace, verify) run meanwhile, and about 12 CPU-seconds
      // of g++ beside torch's intra-op threads made them four to six times slower on 2 cores (oversubscribed threads
      // spin); niced, it takes the cycles they leave.
      const res = await runProcess('nice', ['-n', '19', config.python, '-I', '-c', ISA_PROBE], {
        env: sandboxEnv({ TORCHINDUCTOR_CACHE_DIR: temp, TMPDIR: tmpdir(), HOME: temp }),
        extendEnv: false,
        timeoutMs: 300_000,
      });
      if (!res.ok) {
        await rm(temp, { recursive: true, force: true });
        return undefined;
      }
      await rm(join(temp, 'locks'), { recursive: true, force: true });
      await mkdir(join(temp, '.complete'));
      // Another worker may have made it first: theirs is as good.
      await rename(temp, dir).catch(() => rm(temp, { recursive: true, force: true }));
      return existsSync(join(dir, '.complete')) ? dir : undefined;
    })();
    isaProbeDirs.set(dir, made);
  }
  return made;
}

