// The memory cap of one torch stage process (TTD_TORCH_STAGE_MAX_RSS_MB): the resident memory of its process tree is
// sampled, and past the cap it is killed, so a model that allocates without bound ends its stage, not the host.
import { readdirSync, readFileSync } from 'node:fs';

const SAMPLE_EVERY_MS = 100;

/** A stage that went past its cap: what was measured and the cap (both MiB). */
export interface MemoryExceeded {
  rssMb: number;
  capMb: number;
}

/** A running watch: stop it when the process ends; `exceeded` says whether it killed the process, and why. */
export interface MemoryWatch {
  stop(): void;
  readonly exceeded: MemoryExceeded | undefined;
}

/** Watches the process tree under `pid` (the stage process and everything it started, whatever their process groups or
 * sessions: bwrap's child runs in a session of its own); past `capMb` it calls `kill` once. */
export function capMemory(pid: number, capMb: number, kill: () => void): MemoryWatch {
  let exceeded: MemoryExceeded | undefined;
  const timer = setInterval(() => {
    const rssMb = treeRssMb(pid);
    if (rssMb > capMb && !exceeded) {
      exceeded = { rssMb: Math.round(rssMb), capMb };
      clearInterval(timer);
      kill();
    }
  }, SAMPLE_EVERY_MS);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    get exceeded() {
      return exceeded;
    },
  };
}

/** The resident memory (VmRSS, MiB) of process `root` and all its descendants; 0 when none is left. */
export function treeRssMb(root: number): number {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return 0; // not Linux: no cap
  }
  const children = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      const pid = Number(name);
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
      rss.set(pid, Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0));
    } catch {
      /* the process ended while we looked */
    }
  }
  let kb = 0;
  const todo = [root];
  const seen = new Set<number>();
  while (todo.length) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    kb += rss.get(pid) ?? 0;
    todo.push(...(children.get(pid) ?? []));
  }
  return kb / 1024;
}
