// `ttd run` on a real terminal (a pseudo-terminal from util-linux `script`): stage lines and a cli-progress bar of
// epochs with the loss; NO_COLOR drops colour; the same run off a terminal prints plain lines.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

const COLOUR = /\x1b\[(?:3\d|1|2)m/; // the colours and weights our output uses (cursor codes are not colour)

/** Runs `ttd run SPEC` inside a pseudo-terminal and returns everything the terminal received. */
function onTerminal(spec: string, env: Record<string, string | undefined>): string {
  const command = `${process.execPath} ${join(repoRoot, 'bin', 'ttd')} run ${spec}`;
  const r = spawnSync('script', ['-qfec', command, '/dev/null'], {
    env: { ...process.env, COLUMNS: '120', ...env },
    encoding: 'utf8',
    timeout: 170_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('ttd run on a terminal', () => {
  const home = tempDir();
  const base = testEnv(home, inject('temporalAddress'));
  const spec = (name: string) =>
    writeSpec(tempDir(), quickSeedSpec(name, { train: { epochs: 4, batch_size: 1, lr: 0.001, seed: 0 } }), join(seedDir, 'model.py'));

  it('draws a bar of epochs with the current loss, then one line per finished stage, in colour', () => {
    const out = onTerminal(spec('tty-colour'), { ...base, NO_COLOR: undefined });
    expect(out).toMatch(/train\s+[█░]+ [1-4]\/4 epochs {2}loss \d+\.\d{4}/);
    for (const stage of ['train', 'trace', 'verify', 'optimize', 'fusion', 'store', 'parity', 'promote']) {
      expect(out).toMatch(new RegExp(`✓\\S* ${stage}\\s+\\d+\\.\\ds`));
    }
    expect(out).toMatch(COLOUR);
    expect(out).toContain('promoted tty-colour version 1');
  });

  it('respects NO_COLOR on a terminal and prints plain lines off one', async () => {
    const out = onTerminal(spec('tty-plain'), { ...base, NO_COLOR: '1' });
    expect(out).toMatch(/[1-4]\/4 epochs/);
    expect(out).not.toMatch(COLOUR);

    const piped = await runTtd(['run', spec('piped')], base);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toMatch(/epoch 4\/4 {2}loss \d+\.\d{4}\n/);
    expect(piped.stderr).not.toMatch(/[█░]|\x1b/);
  });
});
