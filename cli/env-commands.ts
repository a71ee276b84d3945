// `ttd env list`: the torch environments of this checkout, probed: which are installed, their torch and libtorch.
import { loadConfig } from '../lib/config';
import { describeEnvironment } from '../lib/environments';
import { failWith, printJsonOr, table } from './output';

/** `ttd env list [--json]`: prints `{"environments": [{name, python, torch_version, libtorch_version, device, …}]}`. */
export async function envListCommand(opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadConfig();
    const environments = await Promise.all(config.environments.map(describeEnvironment));
    // The default for a spec without `environment`: the newest installed (the list is newest first).
    const fallback = environments.find((e) => e.installed)?.name ?? null;
    printJsonOr(
      json,
      { environments, default: fallback },
      table([
        ['name', 'torch', 'libtorch', 'device', 'python', ''],
        ...environments.map((e) => [
          e.name,
          e.torch_version ?? 'not installed',
          e.libtorch_version ?? (e.installed ? 'unknown' : '—'),
          e.device,
          e.python,
          e.name === fallback ? 'default' : '',
        ]),
      ]),
    );
  } catch (err) {
    failWith(err, json);
  }
}
