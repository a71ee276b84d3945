// The progress display of `ttd run`: plain lines off a terminal, a cli-progress bar of epochs on one.
import { describe, expect, it } from 'vitest';
import { BarView, PlainView, type ProgressView } from '../../cli/progress-view';

/** A stand-in for a terminal's stderr: records what is written, answers what cli-progress asks. */
function fakeTerminal() {
  const chunks: string[] = [];
  const stream = {
    isTTY: true,
    columns: 120,
    write: (s: string) => (chunks.push(s), true),
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    on: () => stream,
    removeListener: () => stream,
  };
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
}

describe('progress views', () => {
  it('writes one plain line per stage start, epoch and stage end', () => {
    const lines: string[] = [];
    const view: ProgressView = new PlainView({ write: (s: string) => lines.push(s) });
    view.stageStarted('train', 10);
    view.epoch(1, 10, 2.36321);
    view.stageDone('train', 5400, false);
    view.stageDone('trace', 12, true);
    view.close();
    expect(lines.join('')).toBe('  ▸ train…\n      epoch 1/10  loss 2.3632\n  ✓ train     5.4s\n  ✓ trace     cached\n');
  });

  it("writes the environment stage's phases as plain lines under it, escaped", () => {
    const lines: string[] = [];
    const view = new PlainView({ write: (s: string) => lines.push(s) });
    view.stageStarted('environment');
    view.phase('environment', 'resolving requirements');
    view.phase('environment', 'installing 29 packages\u001b[2J');
    view.stageDone('environment', 4900, false);
    expect(lines.join('')).toBe(
      '  ▸ environment…\n      resolving requirements\n      installing 29 packages\\x1b[2J\n  ✓ environment 4.9s\n',
    );
  });

  it('marks a stage that failed with a cross, never a tick', () => {
    const lines: string[] = [];
    const view = new PlainView({ write: (s: string) => lines.push(s) });
    view.stageDone('verify', 300, false, true);
    expect(lines.join('')).toBe('  ✗ verify    0.3s failed\n');
  });

  it('draws a bar of epochs with the current loss on a terminal, then the stage line', async () => {
    const term = fakeTerminal();
    const view = new BarView(term.stream);
    view.stageStarted('train', 10);
    view.epoch(1, 10, 2.3632);
    view.epoch(2, 10, 1.5617);
    view.epoch(3, 10, 1.3249);
    await new Promise((r) => setTimeout(r, 500)); // the bar redraws on its own clock (5 frames a second)
    const during = term.text();
    expect(during).toMatch(/train\s+█+░+ 3\/10 epochs {2}loss 1\.3249/);
    expect(during).not.toContain('0/0');
    view.stageDone('train', 5400, false);
    view.stageStarted('parity');
    view.stageDone('parity', 1700, false);
    view.close();
    const after = term.text();
    expect(after).toContain('✓ train     5.4s');
    expect(after).toContain('✓ parity    1.7s');
  });
});
