// Helpers for operations tests: a dev server and workers as separate processes, started with the real CLI.
import type { ChildProcess } from 'node:child_process';
import { freePort, runTtd, type TtdRun } from './helpers';
import { startWorker } from './hosts';

/** One operator's setup: its home, port and queue prefix. */
export interface Ops {
  env: Record<string, string | undefined>;
  ttd(args: string[], extra?: Record<string, string>): Promise<TtdRun>;
  worker(queue?: 'control' | 'torch'): Promise<ChildProcess>;
  stopAll(): Promise<void>;
}

/** Starts `ttd server start` in `home` on `port`; workers are started on demand and stopped by stopAll. */
export async function startOps(home: string, port: number, queuePrefix: string): Promise<Ops> {
  const env = { TTD_HOME: home, TTD_TEMPORAL_PORT: String(port), TEMPORAL_ADDRESS: undefined, TTD_QUEUE_PREFIX: queuePrefix };
  const workers: ChildProcess[] = [];
  const ttd = (args: string[], extra: Record<string, string> = {}) => runTtd(args, { ...env, ...extra });
  // A port free when chosen can be taken before the server binds it (as the local port of any outgoing connection on
  // this machine): ttd names that server_conflict, and the operator's answer is another port, as here.
  for (let attempt = 1; ; attempt++) {
    const started = await ttd(['server', 'start']);
    if (started.code === 0) break;
    if (attempt === 3 || !started.stderr.includes('[server_conflict]')) throw new Error(`ttd server start failed: ${started.stderr}`);
    env.TTD_TEMPORAL_PORT = String(await freePort());
  }
  return {
    env,
    ttd,
    async worker(queue) {
      const { child } = await startWorker(env, queue ? ['--queue', queue] : []);
      workers.push(child);
      return child;
    },
    async stopAll() {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
      await Promise.all(
        workers.map((w) => (w.exitCode !== null || w.signalCode !== null ? undefined : new Promise((r) => w.once('exit', r)))),
      );
      await ttd(['server', 'stop']);
    },
  };
}

/** Polls `ttd status RUN --json` until `until` holds (or the time runs out). */
export async function pollStatus(
  ops: Ops,
  runId: string,
  until: (view: Record<string, any>) => boolean,
  timeoutMs = 120_000,
): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await ops.ttd(['status', runId, '--json']);
    const view = r.code === 0 ? JSON.parse(r.stdout) : {};
    if (until(view)) return view;
    if (Date.now() > deadline) throw new Error(`status of ${runId} never matched; last: ${r.stdout}${r.stderr}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}
