// The TypeScript side of the torch fork server: one per worker process, reused across requests, restarted when
// it dies or grows past TTD_TORCH_MAX_RSS_MB, stopped with the worker; TTD_TORCH_PROCESS=fresh bypasses it.
import { afterEach, describe, expect, it } from 'vitest';
import { runTorchRequest, stopForkServers, torchEnvironment } from '../../activities/torch-process';
import { loadConfig } from '../../lib/config';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const waitFor = async (cond: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return cond();
};

describe('torch fork server', () => {
  afterEach(() => stopForkServers());

  it('serves requests from one long-lived process, each in a child of its own', async () => {
    const config = loadConfig({ ...process.env, TTD_TORCH_PROCESS: 'server' });
    const env = await torchEnvironment(config);
    expect(env?.torch_version).toMatch(/^\d+\.\d+/);
    const a = await runTorchRequest(config, 'hello', {});
    const b = await runTorchRequest(config, 'hello', {});
    expect(a).toMatchObject({ kind: 'ok', result: { protocol: 1 } });
    expect(b.kind).toBe('ok');
    expect((await torchEnvironment(config))?.pid).toBe(env!.pid);
    // The op's own time comes back with the response: what the orchestrator subtracts to see its overhead.
    expect(a.kind === 'ok' && typeof a.ms === 'number').toBe(true);
  });

  it('restarts a fork server that died, and one that grew past the memory limit', async () => {
    const config = loadConfig({ ...process.env, TTD_TORCH_PROCESS: 'server' });
    const first = (await torchEnvironment(config))!.pid;
    process.kill(first, 'SIGKILL');
    expect(await waitFor(() => !alive(first))).toBe(true);
    await new Promise((r) => setTimeout(r, 100)); // the exit event reaches us
    expect((await runTorchRequest(config, 'hello', {})).kind).toBe('ok');
    const second = (await torchEnvironment(config))!.pid;
    expect(second).not.toBe(first);

    const tiny = loadConfig({ ...process.env, TTD_TORCH_PROCESS: 'server', TTD_TORCH_MAX_RSS_MB: '1' });
    expect((await runTorchRequest(tiny, 'hello', {})).kind).toBe('ok');
    const third = (await torchEnvironment(tiny))!.pid;
    expect(third).not.toBe(second); // torch alone is far over 1 MiB: replaced before the request
    expect(await waitFor(() => !alive(second))).toBe(true);
  });

  it('stops its fork servers with the worker', async () => {
    const config = loadConfig({ ...process.env, TTD_TORCH_PROCESS: 'server' });
    const pid = (await torchEnvironment(config))!.pid;
    await stopForkServers();
    expect(await waitFor(() => !alive(pid))).toBe(true);
  });

  it('runs a fresh process per request with TTD_TORCH_PROCESS=fresh, and refuses other values', async () => {
    const config = loadConfig({ ...process.env, TTD_TORCH_PROCESS: 'fresh' });
    expect(await runTorchRequest(config, 'hello', {})).toMatchObject({ kind: 'ok' });
    expect(() => loadConfig({ ...process.env, TTD_TORCH_PROCESS: 'forked' })).toThrow(
      /TTD_TORCH_PROCESS='forked'; expected one of server, fresh/,
    );
    expect(() => loadConfig({ ...process.env, TTD_TORCH_MAX_RSS_MB: 'lots' })).toThrow(
      /TTD_TORCH_MAX_RSS_MB='lots'; expected a positive number/,
    );
  });
});
