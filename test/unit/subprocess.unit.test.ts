// The subprocess helper, on tiny real processes (sh, sleep, env): how each way of ending is reported.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { describeEnd, runProcess, startProcess, StderrTail } from '../../lib/environments/subprocess';

/** Whether a pid is a live process (a zombie waiting for its reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function gone(pid: number, withinMs = 2_000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return !alive(pid);
}

describe('runProcess', () => {
  it('runProcess reports a clean exit as ok, with its stdout', async () => {
    const r = await runProcess('sh', ['-c', 'echo hello']);
    expect(r).toMatchObject({ ok: true, exitCode: 0, signal: null, timedOut: false, cancelled: false, stdout: 'hello' });
    expect(r.spawnError).toBeUndefined();
  });

  it('runProcess reports a non-zero exit code without throwing', async () => {
    const r = await runProcess('sh', ['-c', 'echo partial; echo broke >&2; exit 3']);
    expect(r).toMatchObject({ ok: false, exitCode: 3, signal: null, timedOut: false, cancelled: false, stdout: 'partial' });
    expect(r.stderrTail).toBe('broke');
    expect(describeEnd(r)).toBe('exit code 3');
  });

  it('runProcess reports the signal that ended a process', async () => {
    const r = await runProcess('sh', ['-c', 'kill -TERM $$']);
    expect(r).toMatchObject({ ok: false, exitCode: null, signal: 'SIGTERM', timedOut: false, cancelled: false });
    expect(describeEnd(r)).toBe('killed by SIGTERM');
  });

  it('runProcess kills a process past its timeout and says timedOut', async () => {
    const r = await runProcess('sleep', ['30'], { timeoutMs: 200 });
    expect(r).toMatchObject({ ok: false, timedOut: true, cancelled: false, signal: 'SIGKILL' });
    expect(r.durationMs).toBeLessThan(5_000);
    expect(describeEnd(r, 200)).toBe('timed out after 0.2 s');
  });

  it('runProcess kills the whole process group on timeout', async () => {
    const r = await runProcess('sh', ['-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 300, processGroup: true });
    expect(r.timedOut).toBe(true);
    const grandchild = Number(r.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    expect(await gone(grandchild)).toBe(true);
  });

  it('runProcess keeps only the last stderr lines', async () => {
    const r = await runProcess('sh', ['-c', 'i=1; while [ $i -le 100 ]; do echo line$i >&2; i=$((i+1)); done; exit 1'], {
      stderrTailLines: 5,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderrTail).toBe(['line96', 'line97', 'line98', 'line99', 'line100'].join('\n'));
  });

  it('runProcess reports a missing binary as a spawn error', async () => {
    const r = await runProcess('/nonexistent/ttd-no-such-binary', ['--version']);
    expect(r).toMatchObject({ ok: false, exitCode: null, signal: null, timedOut: false, cancelled: false });
    expect(r.spawnError).toContain('ENOENT');
    expect(describeEnd(r)).toContain('could not start: ');
  });

  it('runProcess gives a bare environment when extendEnv is false', async () => {
    const r = await runProcess('/usr/bin/env', [], { env: { ONLY: 'this' }, extendEnv: false, cwd: '/' });
    expect(r.stdout).toBe('ONLY=this');
  });

  it('runProcess with an already aborted signal reports cancelled', async () => {
    const r = await runProcess('sleep', ['30'], { signal: AbortSignal.abort(), processGroup: true });
    expect(r).toMatchObject({ ok: false, cancelled: true, timedOut: false });
  });
});

describe('startProcess', () => {
  it('startProcess abort kills the child and the grandchild it started', async () => {
    const controller = new AbortController();
    const p = startProcess('sh', ['-c', 'sleep 30 & echo $!; wait'], { processGroup: true, signal: controller.signal });
    const first = await new Promise<string>((resolve) => createInterface({ input: p.stdout! }).once('line', resolve));
    const grandchild = Number(first);
    expect(alive(grandchild)).toBe(true);
    controller.abort();
    const r = await p.result;
    expect(r).toMatchObject({ ok: false, cancelled: true, timedOut: false, signal: 'SIGKILL' });
    expect(await gone(grandchild)).toBe(true);
  });

  it('startProcess talks over stdin and stdout and keeps the stderr tail', async () => {
    const p = startProcess('sh', ['-c', 'read line; echo "got $line"; echo note >&2'], { stderrTailLines: 3 });
    const reply = new Promise<string>((resolve) => createInterface({ input: p.stdout! }).once('line', resolve));
    p.stdin!.write('ping\n');
    expect(await reply).toBe('got ping');
    const r = await p.result;
    expect(r).toMatchObject({ ok: true, exitCode: 0, stdout: '', stderrTail: 'note' });
    p.stderr.push('[ttd] a note of ours');
    expect(p.stderr.lines()).toEqual(['note', '[ttd] a note of ours']);
  });
});

describe('StderrTail', () => {
  it('StderrTail drops the oldest lines past its bound', () => {
    const tail = new StderrTail(2);
    for (const l of ['a', 'b', 'c']) tail.push(l);
    expect(tail.toString()).toBe('b\nc');
  });
});
