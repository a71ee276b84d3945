// Checks the torch environment before anything starts, so a missing piece is named, not discovered mid-run.
import { existsSync } from 'node:fs';
import { forEnvironment, type Config } from '../lib/config';
import {
  canExport,
  chooseEnvironment,
  cpuFusionBuild,
  hasCuda,
  probeEnvironment,
  pythonRefusal,
  runtimeMismatch,
  SETUP_HINT,
  type TorchEnv,
} from '../lib/environments/environments';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { probeSandbox } from '../lib/environments/sandbox';
import { environmentName, parseTarget, type Spec } from '../lib/spec/spec';

/** The run's torch environment (the spec's `environment`, else the newest installed) as a configuration; throws a
 * TtdError naming the unknown environment, or the missing python, torch or libtorch runner and how to install it.
 * `servedHere`: this process serves the run's torch stages itself, so a `device: cuda` spec needs CUDA here (a
 * detached run waits for a worker of its pool wherever that runs). */
export async function preflight<C extends Config>(config: C, spec: Spec, opts: { servedHere?: boolean } = {}): Promise<C> {
  const name = environmentName(spec);
  const field = typeof spec.environment === 'object' ? 'environment.base' : 'environment';
  const chosen = await chooseEnvironment(config.environments, name);
  if (!chosen) {
    throw new TtdError(
      ErrorCode.specInvalid,
      `${field}: '${name}' is not a torch environment of this checkout; expected one of ${config.environments.map((e) => e.name).join(', ')} (ttd env list)`,
    );
  }
  if (typeof spec.environment === 'object' && !existsSync(config.uv)) {
    throw new TtdError(
      ErrorCode.environmentInvalid,
      `environment.requirements needs uv to build the environment, but '${config.uv}' does not exist; make setup installs it (PyPI uv into .venv), or set TTD_UV`,
    );
  }
  for (const [format, needs] of [
    ['aoti', 'torch.export and AOTInductor'],
    ['onnx', "torch.export and torch.onnx's dynamo exporter"],
  ] as const) {
    if (spec.formats.includes(format) && !canExport(chosen)) {
      throw new TtdError(
        ErrorCode.specInvalid,
        `formats: ${format} needs torch 2.x (${needs}), but environment '${chosen.name}' has torch ${chosen.torch}; set environment: ${config.environments.find(canExport)?.name ?? 'a torch 2.x environment'}, or formats: [torchscript]`,
      );
    }
  }
  if (config.sandbox === 'on') {
    const sandbox = await probeSandbox(config.bwrap);
    if (!sandbox.ok) {
      throw new TtdError(
        ErrorCode.sandboxUnavailable,
        `model files and archives run in a bubblewrap sandbox, but ${sandbox.reason}; or set TTD_SANDBOX=off to run them without it (only for code you trust)`,
      );
    }
  }
  const env = forEnvironment(config, chosen.name)!;
  const refused = await pythonRefusal(chosen);
  if (refused) throw refused;
  if (spec.device === 'cuda' && opts.servedHere && !(await hasCuda(chosen))) {
    throw new TtdError(
      ErrorCode.deviceUnavailable,
      `device: cuda, but torch of environment '${chosen.name}' sees no CUDA device on this host; run it with --detach so that a worker of the cuda pool serves it (ttd worker --env ${chosen.name} --device cuda on a GPU host), or set device: cpu`,
    );
  }
  // fusion.require on a CPU build without LLVM: its servers never fuse, so no group could ever be required of them. The
  // run's own build forms the groups; every parity target's build is a server that would have to run them.
  const onCuda = spec.device === 'cuda' || spec.trace.target_device.startsWith('cuda');
  if (spec.fusion.require !== 'none' && spec.model !== undefined && spec.formats.includes('torchscript') && !onCuda) {
    const targets = spec.parity.runtimes.map((t) => parseTarget(t).environment).filter((e): e is string => e !== undefined);
    const builds = [chosen, ...config.environments.filter((e) => e !== chosen && targets.includes(e.name))];
    for (const e of builds) {
      const build = await cpuFusionBuild(e);
      if (build && !build.llvm) {
        throw new TtdError(
          ErrorCode.fusionUnavailable,
          `fusion.require: ${spec.fusion.require}, but environment '${e.name}' (torch ${build.torch}, a CPU build without LLVM)${e === chosen ? '' : ', a parity target,'} cannot fuse on the CPU: its servers run every fusion group unfused; expected a build that fuses (device: cuda, or a torch built with LLVM), or set fusion.require: none (the fusion stage still shows the groups)`,
        );
      }
    }
  }
  // Every parity target's environment: the run's own, or the deploy target it names (libtorch@torch-1.13).
  for (const target of spec.parity.runtimes) {
    const { runtime, environment } = parseTarget(target);
    const host: TorchEnv | undefined = environment === undefined ? chosen : config.environments.find((e) => e.name === environment);
    if (!host) {
      throw new TtdError(
        ErrorCode.specInvalid,
        `parity.runtimes: '${target}' names environment '${environment}', which this checkout does not have; expected one of ${config.environments.map((e) => e.name).join(', ')}`,
      );
    }
    if (runtime === 'libtorch' && !existsSync(host.libtorchRunner)) {
      throw new TtdError(
        ErrorCode.libtorchRunnerMissing,
        `the libtorch runner '${host.libtorchRunner}' of environment '${host.name}' is not built; make setup builds it (cmake, and libtorch from that environment's torch)`,
      );
    }
    // A runner built against another torch than its Python's (TTD_PYTHON with the default runner) would load the
    // artifact against the wrong libtorch: refused now, naming both. The built-in environments match by construction.
    if (runtime === 'libtorch' && host.torch === undefined) {
      const mismatch = await runtimeMismatch(host);
      if (mismatch) throw new TtdError(ErrorCode.runtimeMismatch, mismatch);
    }
    if (runtime === 'python' && host !== chosen && (await probeEnvironment(host)) !== 'ok') {
      throw new TtdError(
        ErrorCode.torchMissing,
        `parity.runtimes: '${target}' needs environment '${host.name}' (python '${host.python}' with torch); ${SETUP_HINT}`,
      );
    }
  }
  return env;
}
