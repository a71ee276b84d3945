// Work items side by side, as many as a share of the cores that may grow while they run (a parity stage's runtimes).

// How long a slot freed by another torch stage must stay free before the map widens into it: a busy worker takes its
// next task within milliseconds, and a stage started there gets its own share of the cores.
const WIDEN_AFTER_MS = 250;

/** Maps `items` through `fn` with at most `limit()` at a time (at least one), asked as each item starts and again a
 * moment after each call of the listener given to `onWiden` (another torch stage of this worker ended); results keep the
 * items' order. The first failure rejects, and no further item starts. */
export async function mapLimit<T, R>(
  items: T[],
  limit: number | (() => number),
  onWiden: ((listener: () => void) => () => void) | undefined,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const width = typeof limit === 'number' ? () => limit : limit;
  const out: R[] = new Array(items.length);
  let next = 0;
  let active = 0;
  return new Promise<R[]>((resolve, reject) => {
    let failed = false;
    const timers = new Set<NodeJS.Timeout>();
    const stop = onWiden?.(() => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fill();
      }, WIDEN_AFTER_MS);
      timers.add(timer);
    });
    const finish = () => {
      stop?.();
      for (const timer of timers) clearTimeout(timer);
    };
    const fill = () => {
      while (!failed && next < items.length && active < Math.max(1, width())) {
        const i = next++;
        active++;
        fn(items[i]).then(
          (r) => {
            out[i] = r;
            active--;
            if (next < items.length) fill();
            else if (active === 0) {
              finish();
              resolve(out);
            }
          },
          (err: unknown) => {
            failed = true;
            finish();
            reject(err);
          },
        );
      }
    };
    if (items.length === 0) {
      finish();
      resolve(out);
      return;
    }
    fill();
  });
}
