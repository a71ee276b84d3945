// `ttd run` on a real terminal (a pseudo-terminal from util-linux `script`): stage lines and a cli-progress bar of
// epochs with the loss; NO_COLOR drops colour; the same run off a terminal prints plain lines.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import {
  command as runCommand,
  launchChromium,
  quickSeedSpec,
  repoRoot,
  screenshotDir,
  runTtd,
  seedDir,
  tempDir,
  testEnv,
  writeSpec,
} from '../helpers';

/** What a terminal shows after `raw`: line by line, `\r` and cursor-to-column-1 restart the line, clear-to-end
 * drops the rest; SGR colours become spans, every other escape is dropped. Enough for our own output. */
export function terminalHtml(raw: string): string {
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const classes: Record<string, string> = { '1': 'b', '2': 'd', '31': 'r', '32': 'g' };
  const rows = raw.split('\n').map((line) => {
    let cells = '';
    for (const part of line.split(/\r|\x1b\[1G/)) if (part.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '') !== '') cells = part;
    let open = 0;
    const html = esc(cells).replace(/\x1b\[([0-9;?]*)([A-Za-z])|\x1b[78]/g, (_m, args: string, cmd: string) => {
      if (cmd !== 'm') return '';
      if (args === '0' || args === '') {
        const close = '</span>'.repeat(open);
        open = 0;
        return close;
      }
      open++;
      return `<span class="${classes[args] ?? ''}">`;
    });
    return html + '</span>'.repeat(open);
  });
  return `<!doctype html><meta charset="utf-8"><style>body{margin:0;background:#1e1e1e}pre{margin:0;padding:16px;color:#d4d4d4;font:14px/1.35 'DejaVu Sans Mono',monospace}.b{font-weight:bold}.d{color:#8a8a8a}.g{color:#6a9955}.r{color:#f14c4c}</style><pre>${rows.join('\n')}</pre>`;
}

const COLOUR = /\x1b\[(?:3\d|1|2)m/; // the colours and weights our output uses (cursor codes are not colour)

/** Runs `ttd run SPEC --no-cache` inside a pseudo-terminal and returns everything the terminal received. Without the
 * step cache, every run trains and shows its epochs (a cached train stage shows none). */
async function onTerminal(spec: string, env: Record<string, string | undefined>): Promise<string> {
  const command = `${process.execPath} ${join(repoRoot, 'bin', 'ttd')} run ${spec} --no-cache`;
  const r = await runCommand('script', ['-qfec', command, '/dev/null'], {
    env: { ...process.env, COLUMNS: '120', ...env },
    timeout: 170_000,
  });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

describe('ttd run on a terminal', () => {
  const home = tempDir();
  const base = testEnv(home, inject('temporalAddress'));
  const spec = (name: string) =>
    writeSpec(tempDir(), quickSeedSpec(name, { train: { epochs: 4, batch_size: 1, lr: 0.001, seed: 0 } }), join(seedDir, 'model.py'));

  it('draws a bar of epochs with the current loss, then one line per finished stage, in colour', async () => {
    const out = await onTerminal(spec('tty-colour'), { ...base, NO_COLOR: undefined });
    expect(out).toMatch(/train\s+[█░]+ [1-4]\/4 epochs {2}loss \d+\.\d{4}/);
    for (const stage of ['signing_key', 'train', 'trace', 'verify', 'optimize', 'fusion', 'store', 'parity', 'sign', 'promote']) {
      expect(out).toMatch(new RegExp(`✓\\S* ${stage}\\s+\\d+\\.\\ds`));
    }
    expect(out).toMatch(COLOUR);
    expect(out).toContain('promoted tty-colour version 1');

    // Screenshots for people: the terminal while training (up to the bar's last frame), and when the run is done.
    mkdirSync(screenshotDir, { recursive: true });
    // The bar half way if a frame caught it there, else its last frame.
    const lastFrame = out.includes('2/4 epochs') ? out.lastIndexOf('2/4 epochs') : out.lastIndexOf('4/4 epochs');
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 200 } });
      for (const [name, text] of [
        ['terminal-training', out.slice(0, out.indexOf('\x1b', lastFrame))],
        ['terminal-done', out],
      ] as const) {
        await page.setContent(terminalHtml(text));
        await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
      }
    } finally {
      await browser.close();
    }
  });

  it('respects NO_COLOR on a terminal and prints plain lines off one', async () => {
    const out = await onTerminal(spec('tty-plain'), { ...base, NO_COLOR: '1' });
    expect(out).toMatch(/[1-4]\/4 epochs/);
    expect(out).not.toMatch(COLOUR);

    const piped = await runTtd(['run', spec('piped'), '--no-cache'], base);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toMatch(/epoch 4\/4 {2}loss \d+\.\d{4}\n/);
    expect(piped.stderr).not.toMatch(/[█░]|\x1b/);
  });
});
