// Checks the torch environment before anything starts, so a missing piece is named, not discovered mid-run.
import { existsSync } from 'node:fs';
import type { Config } from '../lib/config';
import { ErrorCode, TtdError } from '../lib/errors';
import { runProcess } from '../lib/subprocess';
import type { Spec } from '../lib/spec';

// find_spec locates torch without importing it (importing costs ~0.6 s).
const TORCH_PROBE = "import importlib.util,sys; sys.exit(0 if importlib.util.find_spec('torch') else 3)";

/** Throws a TtdError naming the missing python, torch or libtorch runner and how to install it. */
export async function preflight(config: Config, spec: Spec): Promise<void> {
  const probe = await runProcess(config.python, ['-c', TORCH_PROBE], { stdout: 'ignore', stderr: 'ignore' });
  if (probe.spawnError !== undefined) {
    throw new TtdError(
      ErrorCode.pythonMissing,
      `python '${config.python}' (TTD_PYTHON) cannot be run: ${probe.spawnError}; make setup installs Debian's python3-torch for /usr/bin/python3`,
    );
  }
  if (!probe.ok) {
    throw new TtdError(
      ErrorCode.torchMissing,
      `python '${config.python}' (TTD_PYTHON) has no torch module; make setup installs Debian's python3-torch for /usr/bin/python3, or set TTD_PYTHON to an interpreter with torch`,
    );
  }
  if (spec.parity.runtimes.includes('libtorch') && !existsSync(config.libtorchRunner)) {
    throw new TtdError(
      ErrorCode.libtorchRunnerMissing,
      `the libtorch runner '${config.libtorchRunner}' is not built; make setup builds it (needs libtorch-dev and cmake)`,
    );
  }
}
