// `ttd env list`: the torch environments of this checkout, probed: which are installed, their torch and libtorch.
import { loadTemporalConfig } from '../temporal/config';
import { describeEnvironment } from '../lib/environments/environments';
import { probeSandbox } from '../lib/environments/sandbox';
import { failWith, printJsonOr, table } from './output';

/** `ttd env list [--json]`: prints `{"environments": [{name, python, torch_version, libtorch_version, device, …}]}`. */
export async function envListCommand(opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadTemporalConfig();
    const environments = await Promise.all(config.environments.map(describeEnvironment));
    // The default for a spec without `environment`: the newest installed (the list is newest first).
    const fallback = environments.find((e) => e.installed)?.name ?? null;
    // Where model code runs: in the sandbox (and whether it can start here), or, with TTD_SANDBOX=off, without it.
    const probe = config.sandbox === 'on' ? await probeSandbox(config.bwrap) : undefined;
    const sandbox = {
      mode: config.sandbox,
      bwrap: config.bwrap,
      usable: probe?.ok ?? null,
      problem: probe && !probe.ok ? probe.reason : null,
    };
    const sandboxLine =
      config.sandbox === 'off'
        ? "sandbox: off (TTD_SANDBOX=off): model files and archives run with the worker's file access"
        : probe?.ok
          ? `sandbox: on (${config.bwrap})`
          : `sandbox: on but unusable: ${sandbox.problem}; torch stages will fail with sandbox_unavailable`;
    printJsonOr(
      json,
      { environments, default: fallback, sandbox },
      `${table([
        ['name', 'torch', 'libtorch', 'device', 'python', ''],
        ...environments.map((e) => [
          e.name,
          e.torch_version ?? 'not installed',
          e.libtorch_version ?? (e.installed ? 'unknown' : '—'),
          e.device,
          e.python,
          e.name === fallback ? 'default' : '',
        ]),
      ])}\n${sandboxLine}`,
    );
  } catch (err) {
    failWith(err, json);
  }
}
