// Inductor's ISA probes, made once per host for the AOTInductor Python parity runner: where the probes pass every ISA
// the CPU claims, a runner given the cache and TORCHINDUCTOR_VEC_ISA_OK=1 finds the same ISA list with fewer probes
// loaded in child Pythons (the base probe of each ISA), which is what the variable saves; real torch 2.13, no fakes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isaProbes } from '../../activities/isa-probes';
import { forEnvironment, loadConfig } from '../../lib/config';
import { declaredId } from '../../lib/environments/declared-environments';
import { mustRun, tempDir } from '../helpers';

// The ISA list a runner finds, and how many child Pythons it started to find it.
const RUNNER_VIEW = [
  'import json, subprocess',
  'children = []',
  'real_run = subprocess.run',
  'def counted(*args, **kwargs):',
  '    children.append(args[0])',
  '    return real_run(*args, **kwargs)',
  'subprocess.run = counted',
  'from torch._inductor import cpu_vec_isa',
  'print(json.dumps({"isas": [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()], "children": len(children)}))',
].join('\n');

describe('ISA probes', () => {
  it('isa probes let a runner find the probed ISA list with fewer child Pythons, where every claimed ISA passed', async () => {
    const home = tempDir();
    const config = forEnvironment(loadConfig({ ...process.env, TTD_HOME: home, TTD_INDUCTOR_CACHE: join(home, 'inductor') }), 'torch-2.13');
    if (!config) throw new Error('the torch-2.13 environment is missing: run make setup');
    const probes = await isaProbes(config);
    expect(probes).toBeDefined();
    const verdict = JSON.parse(readFileSync(join(probes!.dir, 'isa-verdict.json'), 'utf8')) as { probed: string[]; claimed: string[] };
    expect(verdict.probed.length).toBeGreaterThan(0);
    const runner = async (env: Record<string, string>) =>
      JSON.parse(
        await mustRun(config.python, ['-I', '-c', RUNNER_VIEW], {
          env: { PATH: '/usr/bin:/bin', HOME: home, TMPDIR: home, TORCHINDUCTOR_CACHE_DIR: probes!.dir, ...env },
        }),
      ) as { isas: string[]; children: number };
    const probing = await runner({});
    expect(probing.isas).toEqual(verdict.probed);
    if (JSON.stringify(verdict.probed) === JSON.stringify(verdict.claimed)) {
      expect(probes!.env).toEqual({ TORCHINDUCTOR_VEC_ISA_OK: '1' });
      expect(probing.children).toBeGreaterThan(0); // what the variable saves
      const trusting = await runner(probes!.env);
      expect(trusting.isas).toEqual(verdict.probed);
      expect(trusting.children).toBeLessThanOrEqual(probing.children - verdict.probed.length);
    } else {
      expect(probes!.env).toEqual({});
    }
    // A declared environment over this base runs the base's torch: it takes the base's probes as they are (its own
    // Python, never built here, is not asked to make them again).
    const declared = forEnvironment(config, declaredId({ base: 'torch-2.13', requirements: ['transformers==5.25.0'] }))!;
    expect(declared.environment).not.toBe(config.environment);
    expect(await isaProbes(declared)).toEqual(probes);
  }, 600_000);
});
