// The one way to run a torch request (`python -m ttd_torch`, JSON lines): on the worker's long-lived fork server
// (torch imported once; every request in a forked child of its own), or in a fresh process (TTD_TORCH_PROCESS=fresh).
// The envelope (envelope.ts), the command line (command.ts) and the two ways (fork-server.ts, fresh-process.ts) are
// its parts; what other modules use is exported here.
import type { Config } from '../../lib/config';
import { GateCode } from '../../lib/contract/gate-codes';
import { probeSandbox } from '../../lib/environments/sandbox';
import type { TorchOutcome, TorchRequestOptions } from './envelope';
import { forkServer, runOnForkServer } from './fork-server';
import { runInFreshProcess } from './fresh-process';

export type { TorchOutcome, TorchRequestOptions } from './envelope';
export { configPythons, requestDirs, spinEnv, workRoot } from './command';
export { stopForkServers, torchEnvironment, type TorchEnvironment } from './fork-server';

/** Sends one request to the torch environment and waits for its response. */
export async function runTorchRequest(
  config: Config,
  op: string,
  args: Record<string, unknown>,
  opts: TorchRequestOptions = {},
): Promise<TorchOutcome> {
  opts = { maxRssMb: config.torchStageMaxRssMb, ...opts };
  if (config.sandbox === 'on') {
    const probe = await probeSandbox(config.bwrap);
    if (!probe.ok) return { kind: GateCode.sandboxUnavailable, reason: probe.reason };
  }
  if (config.torchProcess === 'fresh') return runInFreshProcess(config, op, args, opts);
  const server = await forkServer(config);
  if ('crashed' in server) return server.crashed;
  return runOnForkServer(server, op, args, opts);
}
