// Counts each integration file's CPU time, its own process and every process it starts (torch stages, workers, dev
// servers), in a cpuacct cgroup of its own, into test-output/cpu/: the test summary prints it beside the file's wall
// time, which says whether a slow file computes or waits. Where cgroup v1's cpuacct is not writable, nothing is counted.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { repoRoot } from './helpers';

// Inside the cgroup this process is already in (make test's own, when it is counted), so that one still counts it all.
const CPUACCT = join('/sys/fs/cgroup/cpuacct', cpuacctPath());
const group = join(CPUACCT, `ttd-vitest-${process.pid}`);
let counting = false;
let before = 0; // what the group had counted before this file: files that run alone share one process

beforeAll(() => {
  try {
    mkdirSync(group, { recursive: true });
    writeFileSync(join(group, 'cgroup.procs'), String(process.pid));
    before = usage();
    counting = true;
  } catch {
    counting = false; // no cgroup v1 cpuacct here, or not ours to write
  }
});

afterAll((file) => {
  if (!counting) return;
  const nanoseconds = usage() - before;
  const name = relative(repoRoot, (file as { filepath?: string }).filepath ?? 'unknown');
  const dir = join(repoRoot, 'test-output', 'cpu');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name.replaceAll('/', '__')}.json`), JSON.stringify({ file: name, cpuSeconds: nanoseconds / 1e9 }));
  try {
    writeFileSync(join(CPUACCT, 'cgroup.procs'), String(process.pid));
    rmdirSync(group); // refused while a process the file left behind is still in it; the group then stays
  } catch {
    /* left for its last process */
  }
});

// The CPU time the file's group has counted, in nanoseconds.
function usage(): number {
  return Number(readFileSync(join(group, 'cpuacct.usage'), 'utf8'));
}

// This process's cpuacct cgroup, from /proc/self/cgroup ('/' where there is none).
function cpuacctPath(): string {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[1]?.split(',').includes('cpuacct'));
    return line?.split(':')[2] ?? '/';
  } catch {
    return '/';
  }
}
