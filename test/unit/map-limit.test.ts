// Items side by side as many as a share that may grow while they run (lib/limits/map-limit.ts): a parity stage's
// runtimes widen into the cores another torch stage leaves once it ends.
import { describe, expect, it } from 'vitest';
import { mapLimit } from '../../lib/limits/map-limit';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('mapLimit', () => {
  it('mapLimit keeps the items in order and never runs more at once than the limit', async () => {
    let active = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, undefined, async (x) => {
      most = Math.max(most, ++active);
      await sleep(x * 5);
      active--;
      return x * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(most).toBe(2);
  });

  it('mapLimit widens a moment after the listener fires once the share has grown, not before', async () => {
    let share = 1;
    let listener = () => {};
    let stopped = false;
    const started: number[] = [];
    const t0 = performance.now();
    const run = mapLimit(
      [0, 1],
      () => share,
      (l) => {
        listener = l;
        return () => (stopped = true);
      },
      async (i) => {
        started[i] = performance.now() - t0;
        await sleep(i === 0 ? 1500 : 10);
        return i;
      },
    );
    await sleep(100);
    expect(started[1]).toBeUndefined(); // a share of one: the second waits
    share = 2;
    listener(); // another stage ended
    await sleep(50);
    expect(started[1]).toBeUndefined(); // not at once: a busy worker refills the slot within milliseconds
    await sleep(600);
    expect(started[1]).toBeGreaterThan(300);
    expect(started[1]).toBeLessThan(1200); // before the first one ends
    expect(await run).toEqual([0, 1]);
    expect(stopped).toBe(true);
  });

  it('mapLimit rejects with the first failure and starts no further item', async () => {
    const seen: number[] = [];
    await expect(
      mapLimit([0, 1, 2], 1, undefined, async (i) => {
        seen.push(i);
        if (i === 1) throw new Error('runtime 1 failed');
        return i;
      }),
    ).rejects.toThrow('runtime 1 failed');
    await sleep(20);
    expect(seen).toEqual([0, 1]);
  });
});
