// Durable operations with the server and workers as separate processes: detached runs, CI triggers,
// approval, promotion, rollback, comparison, schedules, cancellation and concurrency.
// eslint-disable-next-line @typescript-eslint/no-restricted-imports -- pgrep answers at once
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../lib/registry/audit';
import { FsObjectStore } from '../../lib/store/fs-store';
import { readModel } from '../../lib/registry/registry';
import type { RunResult } from '../../lib/contract/results';
import { command, fixtureModels, freePort, quickSeedSpec, repoRoot, seedDir, tempDir, writeSpec } from '../helpers';
import { pollStatus, startOps, type Ops } from '../operations';

/** Processes serving a torch request for this file's worker alone (other files and other suites on the host run
 * their own): fork-server children name themselves `ttd:<op>` and keep their server's command line, whose socket lies
 * under the worker's own TMPDIR (`marker`), even once orphaned by a dying server; a fresh stdio server
 * (TTD_TORCH_PROCESS=fresh) is `python3 -m ttd_torch` with no arguments, under the worker (`workerPid`). */
function torchProcesses(marker: string, workerPid: number): string[] {
  const pgrep = (args: string[]) => {
    try {
      return execFileSync('pgrep', args, { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    } catch {
      return []; // pgrep exits 1 when nothing matches
    }
  };
  const cmdline = (pid: string) => readOrEmpty(`/proc/${pid}/cmdline`).replaceAll('\0', ' ');
  const underWorker = (pid: string): boolean => {
    for (let p = pid, depth = 0; p !== '0' && p !== '1' && depth < 64; depth++) {
      if (p === String(workerPid)) return true;
      p = /PPid:\s+(\d+)/.exec(readOrEmpty(`/proc/${p}/status`))?.[1] ?? '0';
    }
    return false;
  };
  const named = pgrep(['-l', '^ttd:']).filter((line) => cmdline(line.split(' ')[0]).includes(marker) || underWorker(line.split(' ')[0]));
  const fresh = pgrep(['-af', 'python3 -m ttd_torch$']).filter((line) => underWorker(line.split(' ')[0]));
  return [...named, ...fresh];
}

// A /proc file's text, or '' once its process has gone.
function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

describe('operations', () => {
  const home = tempDir();
  const tmp = tempDir('ttd-ops-tmp-'); // the worker's TMPDIR: its fork servers' sockets, which name their children
  let ops: Ops;
  let workerPid: number;
  const spec = (name: string, extra: Record<string, unknown> = {}) =>
    writeSpec(tempDir(), quickSeedSpec(name, extra), join(seedDir, 'model.py'));
  const detach = async (specPath: string, args: string[] = []) => {
    const r = await ops.ttd(['run', specPath, '--detach', '--json', ...args]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { runId: string; status: string; attached: boolean };
  };
  const wait = async (runId: string) => {
    const r = await ops.ttd(['wait', runId, '--json']);
    return {
      code: r.code,
      result: JSON.parse(r.stdout) as RunResult & { training?: { attempts: number; resumedFromEpoch: number } },
      stderr: r.stderr,
    };
  };

  beforeAll(async () => {
    ops = await startOps(home, await freePort(), 'ops');
    ops.env.TMPDIR = tmp;
    workerPid = (await ops.worker()).pid!;
  });
  afterAll(async () => ops?.stopAll());

  it('server status reports the background server, and a detached run is done by the separate worker', async () => {
    const status = await ops.ttd(['server', 'status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'running', pid: expect.any(Number) });
    const started = await detach(spec('detached'));
    expect(started).toMatchObject({ status: 'running', attached: false });
    const running = await pollStatus(ops, started.runId, (v) => v.status === 'running' || v.status === 'promoted');
    expect(['running', 'promoted']).toContain(running.status);
    const { code, result } = await wait(started.runId);
    expect(code).toBe(0);
    expect(result).toMatchObject({ status: 'promoted', trigger: 'manual', commit: null, training: { attempts: 1, resumedFromEpoch: 0 } });
    const done = JSON.parse((await ops.ttd(['status', started.runId, '--json'])).stdout);
    expect(done).toMatchObject({ status: 'promoted', runId: started.runId, training: { attempts: 1, resumedFromEpoch: 0 } });
  });

  it('a CI trigger with the same commit and spec attaches to the first run and never trains twice; --force starts anew', async () => {
    const path = spec('ci-model');
    const first = await ops.ttd(['run', path, '--trigger', 'ci', '--commit', 'deadbeef01', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const a: RunResult = JSON.parse(first.stdout);
    expect(a).toMatchObject({ status: 'promoted', trigger: 'ci', commit: 'deadbeef01' });
    expect(a.runId).toMatch(/^ci-model-ci-deadbeef01-[0-9a-f]{12}$/);
    const second = await ops.ttd(['run', path, '--trigger', 'ci', '--commit', 'deadbeef01', '--json']);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain(`attached to ${a.runId}`);
    expect(JSON.parse(second.stdout)).toEqual(a);
    const runs = JSON.parse((await ops.ttd(['runs', '--model', 'ci-model', '--json'])).stdout).runs;
    expect(runs).toEqual([expect.objectContaining({ runId: a.runId, model: 'ci-model', trigger: 'ci', status: 'completed' })]);
    const forced = await ops.ttd(['run', path, '--trigger', 'ci', '--commit', 'deadbeef01', '--force', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout).runId).toMatch(new RegExp(`^${a.runId}-force-`));
  });

  it('a run that requires approval waits, and is promoted once approved, with the approver in the audit log', async () => {
    const { runId } = await detach(spec('approved', { promote: { approval: 'required' } }));
    await pollStatus(ops, runId, (v) => v.status === 'awaiting_approval');
    const early = await ops.ttd(['approve', runId]);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain('ttd approve needs --by NAME');
    const ok = await ops.ttd(['approve', runId, '--by', 'alice']);
    expect(ok.code, ok.stderr).toBe(0);
    const again = await ops.ttd(['approve', runId, '--by', 'bob']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already approved by alice|not waiting for approval/);
    const { result } = await wait(runId);
    expect(result.status).toBe('promoted');
    const log = JSON.parse((await ops.ttd(['audit', 'log', 'approved', '--json'])).stdout).records;
    expect(log).toEqual([expect.objectContaining({ action: 'promote', approvedBy: 'alice', runId })]);
  });

  it('a rejected approval ends the run rejected with approval_rejected and the reason, nothing promoted', async () => {
    const { runId } = await detach(spec('declined', { promote: { approval: 'required' } }));
    await pollStatus(ops, runId, (v) => v.status === 'awaiting_approval');
    expect((await ops.ttd(['approve', runId, '--by', 'carol', '--reject', '--reason', 'loss too high'])).code).toBe(0);
    const { code, result } = await wait(runId);
    expect(code).toBe(1);
    expect(result.gates[result.gates.length - 1]).toEqual({
      gate: 'promotion',
      passed: false,
      code: 'approval_rejected',
      message: 'rejected by carol: loss too high; nothing promoted',
    });
    // Visibility is written a moment after the run closes.
    let found: unknown[] = [];
    for (let i = 0; i < 50 && found.length === 0; i++) {
      found = JSON.parse((await ops.ttd(['runs', '--model', 'declined', '--outcome', 'rejected', '--json'])).stdout).runs;
      if (!found.length) await new Promise((r) => setTimeout(r, 200));
    }
    expect(found).toEqual([expect.objectContaining({ runId, outcome: 'rejected', version: null })]);
    const log = JSON.parse((await ops.ttd(['audit', 'log', 'declined', '--json'])).stdout).records;
    expect(log).toEqual([expect.objectContaining({ action: 'approval_rejected', actor: 'carol', reason: 'loss too high', runId })]);
    const late = await ops.ttd(['approve', runId, '--by', 'dave']);
    expect(late.code).toBe(2);
    expect(late.stderr).toContain(`run '${runId}' is not waiting for approval: it is completed`);
    const unknown = await ops.ttd(['approve', 'no-such-run', '--by', 'dave']);
    expect(unknown.stderr).toContain("run 'no-such-run' does not exist on this server");
  });

  it('an approval that times out ends the run with approval_timeout', async () => {
    const { runId } = await detach(spec('timeout', { promote: { approval: 'required', approval_timeout: '2s' } }));
    const { code, result } = await wait(runId);
    expect(code).toBe(1);
    expect(result.gates[result.gates.length - 1]).toMatchObject({ gate: 'promotion', code: 'approval_timeout' });
  });

  it('promote and rollback move the alias between versions whose gates passed, and the audit log shows each move', async () => {
    for (const seed of [1, 2]) {
      const r = await ops.ttd(['run', spec('movable', { train: { epochs: 1, batch_size: 32, seed } }), '--json']);
      expect(r.code, r.stderr).toBe(0);
    }
    const rolled = await ops.ttd(['rollback', 'movable', '--alias', 'production', '--json']);
    expect(rolled.code, rolled.stderr).toBe(0);
    expect(JSON.parse(rolled.stdout)).toMatchObject({ version: 1, previousVersion: 2 });
    const promoted = await ops.ttd(['promote', 'movable:2', '--alias', 'production', '--json']);
    expect(JSON.parse(promoted.stdout)).toMatchObject({ version: 2, previousVersion: 1, moved: true });
    const log = JSON.parse((await ops.ttd(['audit', 'log', 'movable', '--json'])).stdout).records;
    expect(
      log.map((r: { action: string; version: number; previousVersion: number | null }) => [r.action, r.previousVersion, r.version]),
    ).toEqual([
      ['promote', null, 1],
      ['promote', 1, 2],
      ['rollback', 2, 1],
      ['manual_promote', 1, 2],
    ]);
    expect(await verifyChain(new FsObjectStore(join(home, 'store')), 'movable')).toBeNull();
    expect((await ops.ttd(['run', spec('lonely'), '--json'])).code).toBe(0);
    const none = await ops.ttd(['rollback', 'lonely', '--alias', 'production']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("'lonely@production' has no earlier version to roll back to (it has only ever pointed at version 1)");
  });

  it('a retrained candidate that is not better than production is kept as a version but not aliased', async () => {
    const good = await ops.ttd([
      'run',
      writeSpec(tempDir(), { name: 'compared', train: { epochs: 6, batch_size: 8, lr: 0.01 } }, join(seedDir, 'model.py')),
      '--json',
    ]);
    expect(good.code, good.stderr).toBe(0);
    const worse = await ops.ttd([
      'run',
      writeSpec(
        tempDir(),
        {
          name: 'compared',
          train: { epochs: 1, batch_size: 64, lr: 0.0001 },
          promote: { compare: { metric: 'validation_loss', min_improvement: 0 } },
        },
        join(seedDir, 'model.py'),
      ),
      '--json',
    ]);
    expect(worse.code, worse.stderr).toBe(1);
    const result: RunResult = JSON.parse(worse.stdout);
    expect(result.gates[result.gates.length - 1]).toMatchObject({ gate: 'promotion', code: 'not_better_than_production' });
    expect(result.gates[result.gates.length - 1].message).toMatch(
      /candidate validation_loss \d\.\d+ is not better than production \(version 1\) \d\.\d+ by more than min_improvement 0; kept as version 2, 'production' not moved/,
    );
    const state = (await readModel(new FsObjectStore(join(home, 'store')), 'compared'))!.state;
    expect(state.versions).toHaveLength(2);
    expect(state.aliases.production.version).toBe(1);
  });

  it('schedules start runs with trigger schedule, and can be described, paused, unpaused and deleted', async () => {
    const path = spec('scheduled');
    const created = await ops.ttd(['schedule', 'create', 'nightly', path, '--every', '1h', '--overlap', 'skip', '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect((await ops.ttd(['schedule', 'trigger', 'nightly'])).code).toBe(0);
    let runId = '';
    for (let i = 0; i < 60 && !runId; i++) {
      const runs = JSON.parse((await ops.ttd(['runs', '--model', 'scheduled', '--json'])).stdout).runs;
      runId = runs[0]?.runId ?? '';
      if (!runId) await new Promise((r) => setTimeout(r, 500));
    }
    expect(runId).toMatch(/^scheduled-schedule-nightly/);
    const { result } = await wait(runId);
    expect(result).toMatchObject({ status: 'promoted', trigger: 'schedule', runId });
    // The schedule's runs queue behind CI and manual ones (priority 4), fair by model.
    const address = `127.0.0.1:${ops.env.TTD_TEMPORAL_PORT}`;
    const shown = await command(join(repoRoot, '.venv', 'bin', 'temporal'), [
      'workflow',
      'describe',
      '--address',
      address,
      '-w',
      runId,
      '-o',
      'json',
    ]);
    expect(JSON.parse(shown.stdout).workflowExecutionInfo.priority).toEqual({ priorityKey: 4, fairnessKey: 'scheduled' });
    const described = JSON.parse((await ops.ttd(['schedule', 'describe', 'nightly', '--json'])).stdout);
    expect(described).toMatchObject({ scheduleId: 'nightly', model: 'scheduled', paused: false, overlap: 'SKIP', intervals: [3600000] });
    expect((await ops.ttd(['schedule', 'pause', 'nightly'])).code).toBe(0);
    expect(JSON.parse((await ops.ttd(['schedule', 'describe', 'nightly', '--json'])).stdout).paused).toBe(true);
    expect((await ops.ttd(['schedule', 'unpause', 'nightly'])).code).toBe(0);
    expect(
      JSON.parse((await ops.ttd(['schedule', 'list', '--json'])).stdout).schedules.map((s: { scheduleId: string }) => s.scheduleId),
    ).toContain('nightly');
    // A backfill runs the schedule for a past hour (one or two action times, by the window's edges).
    const end = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000);
    const start = new Date(end.getTime() - 3_600_000);
    const backfill = await ops.ttd(['schedule', 'backfill', 'nightly', '--start', start.toISOString(), '--end', end.toISOString()]);
    expect(backfill.code, backfill.stderr).toBe(0);
    let backfilled: { runId: string }[] = [];
    for (let i = 0; i < 60 && backfilled.length === 0; i++) {
      const runs = JSON.parse((await ops.ttd(['runs', '--model', 'scheduled', '--json'])).stdout).runs as {
        runId: string;
        trigger: string;
      }[];
      backfilled = runs.filter((r) => r.runId !== runId && r.trigger === 'schedule');
      if (!backfilled.length) await new Promise((r) => setTimeout(r, 500));
    }
    expect(backfilled.length).toBeGreaterThanOrEqual(1);
    for (const b of backfilled) expect((await wait(b.runId)).result.trigger).toBe('schedule');
    expect((await ops.ttd(['schedule', 'delete', 'nightly'])).code).toBe(0);
    const gone = await ops.ttd(['schedule', 'describe', 'nightly']);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain("schedule 'nightly' does not exist");
  });

  it('cancelling a run mid-training ends it cancelled', async () => {
    const slow = writeSpec(
      tempDir(),
      { name: 'cancelled', params: { step_sleep: 0.05 }, train: { epochs: 30, batch_size: 8 } },
      join(fixtureModels, 'slow-mlp.py'),
    );
    const { runId } = await detach(slow);
    await pollStatus(ops, runId, (v) => (v.progress?.epoch ?? 0) >= 1);
    // The training runs in a fork-server child named for its op: the check below can see it.
    expect(torchProcesses(tmp, workerPid).some((p) => p.includes('ttd:train'))).toBe(true);
    expect((await ops.ttd(['cancel', runId])).code).toBe(0);
    const view = await pollStatus(ops, runId, (v) => v.status === 'cancelled', 30_000);
    expect(view.status).toBe('cancelled');
    // The torch process group ends with the activity: no training process is left behind.
    let left = torchProcesses(tmp, workerPid);
    for (let i = 0; i < 20 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 250));
      left = torchProcesses(tmp, workerPid);
    }
    expect(left).toEqual([]);
  });

  it('ten pipelines of one model at once register every version, with a linear alias history and an intact audit chain', async () => {
    const started = await Promise.all(
      Array.from({ length: 10 }, (_, seed) => detach(spec('crowd', { train: { epochs: 1, batch_size: 64, seed } }))),
    );
    const results = await Promise.all(started.map((s) => wait(s.runId)));
    expect(results.map((r) => r.result.status)).toEqual(Array(10).fill('promoted'));
    const store = new FsObjectStore(join(home, 'store'));
    const state = (await readModel(store, 'crowd'))!.state;
    expect(state.versions.map((v) => v.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(state.aliasHistory).toHaveLength(10);
    state.aliasHistory.forEach((move, i) => expect(move.previousVersion).toBe(i === 0 ? null : state.aliasHistory[i - 1].version));
    expect(await verifyChain(store, 'crowd')).toBeNull();

    // Found by what they are with Temporal's own CLI, and `ttd runs` agrees: exactly these ten runs (visibility is
    // written a moment after a run closes, hence the wait).
    const ids = started.map((s) => s.runId).sort();
    const stock = async (query: string) => {
      const address = `127.0.0.1:${ops.env.TTD_TEMPORAL_PORT}`;
      const r = await command(join(repoRoot, '.venv', 'bin', 'temporal'), [
        'workflow',
        'list',
        '--address',
        address,
        '--query',
        query,
        '-o',
        'json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      return ((JSON.parse(r.stdout || '[]') as { execution: { workflowId: string } }[]) ?? []).map((w) => w.execution.workflowId).sort();
    };
    let listed: string[] = [];
    for (let i = 0; i < 50 && listed.length !== ids.length; i++) {
      listed = await stock('TtdModel="crowd" AND TtdOutcome="promoted"');
      if (listed.length !== ids.length) await new Promise((r) => setTimeout(r, 200));
    }
    expect(listed).toEqual(ids);
    const ours = JSON.parse((await ops.ttd(['runs', '--model', 'crowd', '--outcome', 'promoted', '--json'])).stdout);
    expect(ours.runs.map((r: { runId: string }) => r.runId).sort()).toEqual(ids);
    expect(new Set(ours.runs.map((r: { version: number }) => r.version))).toEqual(new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    expect(await stock('TtdModel="crowd" AND TtdOutcome="rejected"')).toEqual([]);
    expect(await stock('TtdModel="crowd" AND TtdTrigger="manual" AND TtdFormats="torchscript"')).toEqual(ids);
  }, 600_000);
});
