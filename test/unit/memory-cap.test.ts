// The memory cap's sampler (activities/memory-cap.ts): the resident memory of a process tree, found by walking down
// the threads' children lists, and by reading every process's parent where a kernel has no such lists.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { treeRssMb } from '../../activities/memory-cap';

describe('treeRssMb', () => {
  // A shell whose grandchild (in a session of its own, as bwrap's is) holds 64 MiB it has written to.
  let tree: ReturnType<typeof spawn>;
  let grandchild = 0;
  beforeAll(async () => {
    const holder = `const b = Buffer.alloc(64 << 20, 1); console.log(process.pid); setInterval(() => b[0]++, 1000)`;
    tree = spawn('bash', ['-c', `setsid node -e "${holder}" & wait`], { stdio: ['ignore', 'pipe', 'inherit'] });
    grandchild = await new Promise<number>((resolve) => tree.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
  });
  afterAll(() => {
    process.kill(grandchild, 'SIGKILL'); // in a session of its own: not killed with its parent
    tree.kill('SIGKILL');
  });

  it('treeRssMb counts a grandchild in another session, walking the children lists as reading every parent does', () => {
    const walked = treeRssMb(tree.pid!, 'children');
    const scanned = treeRssMb(tree.pid!, 'scan');
    expect(walked).toBeGreaterThan(64);
    expect(Math.abs(walked - scanned)).toBeLessThan(8);
  });

  it('treeRssMb of a process that has ended is 0', () => {
    expect(treeRssMb(2 ** 22 + 1, 'children')).toBe(0);
    expect(treeRssMb(2 ** 22 + 1, 'scan')).toBe(0);
  });
});
