// The memory cap of one torch stage process (TTD_TORCH_STAGE_MAX_RSS_MB): the resident memory of its process tree is
// sampled, and past the cap it is killed, so a model that allocates without bound ends its stage, not the host.
import { existsSync, readdirSync, readFileSync } from 'node:fs';

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

/** The resident memory (VmRSS, MiB) of process `root` and all its descendants; 0 when none is left. Walks down from
 * `root` through each thread's `children` list (Linux ≥ 3.5 with CONFIG_PROC_CHILDREN), so a sample costs the size of
 * the stage's tree, not of the host's process table (a busy worker samples each running stage ten times a second);
 * where those lists are missing it reads every process's parent instead. */
export function treeRssMb(root: number, walk: 'children' | 'scan' = childrenLists() ? 'children' : 'scan'): number {
  const pids = walk === 'children' ? descendants(root) : descendantsByScan(root);
  let kb = 0;
  for (const pid of pids) kb += rssKb(pid);
  return kb / 1024;
}

// VmRSS of one process in kB; 0 when it has ended (or is a zombie, which has none).
function rssKb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // the process ended while we looked
  }
}

// Whether this kernel lists each thread's children (asked once: /proc/self/task/<pid>/children).
let hasChildrenLists: boolean | undefined;
function childrenLists(): boolean {
  hasChildrenLists ??= existsSync(`/proc/self/task/${process.pid}/children`);
  return hasChildrenLists;
}

// `root` and its descendants from the threads' children lists.
function descendants(root: number): number[] {
  return reachable(root, (pid) => {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      return []; // ended while we looked
    }
    return tids.flatMap((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8')
          .split(' ')
          .filter((c) => c.trim())
          .map(Number);
      } catch {
        return []; // the thread ended while we looked
      }
    });
  });
}

// `root` and its descendants from every process's parent (/proc/N/status PPid).
function descendantsByScan(root: number): number[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return []; // not Linux: no cap
  }
  const children = new Map<number, number[]>();
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      /* the process ended while we looked */
    }
  }
  return reachable(root, (pid) => children.get(pid) ?? []);
}

// `root` and every pid reachable from it through `childrenOf`, each once.
function reachable(root: number, childrenOf: (pid: number) => number[]): number[] {
  const out: number[] = [];
  const todo = [root];
  const seen = new Set<number>();
  while (todo.length) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    todo.push(...childrenOf(pid));
  }
  return out;
}
