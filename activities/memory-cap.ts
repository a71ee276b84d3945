// The memory cap of one torch stage process (TTD_TORCH_STAGE_MAX_RSS_MB): its process group's resident memory is
// sampled, and past the cap the group is killed, so a model that allocates without bound ends its stage, not the host.
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

/** Watches the process group led by `pid` (a stage child leads its own group); past `capMb` it calls `kill` once. */
export function capMemory(pid: number, capMb: number, kill: () => void): MemoryWatch {
  let exceeded: MemoryExceeded | undefined;
  const timer = setInterval(() => {
    const rssMb = groupRssMb(pid);
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

/** The resident memory (VmRSS, MiB) of every process in process group `pgid`; 0 when none is left. */
export function groupRssMb(pgid: number): number {
  let kb = 0;
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return 0; // not Linux: no cap
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The fields after the command name (which may hold spaces and parentheses): state, ppid, pgrp, ...
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${name}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* the process ended while we looked */
    }
  }
  return kb / 1024;
}
