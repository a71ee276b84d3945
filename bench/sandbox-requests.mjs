// Benchmark (not a test): what the sandbox costs per torch request, without Temporal: one Node process, the fork
// server with TTD_SANDBOX=on and off side by side, requests interleaved; `hello` (the bare per-request cost) and the
// seed's `train` (10 epochs, batch 1). Also a fresh process per `hello` (TTD_TORCH_PROCESS=fresh).
// Usage: node bench/sandbox-requests.mjs [RUNS]   (default 5; needs the TypeScript build in dist/)
import { copyFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { median, root } from './common.mjs';

const require = createRequire(import.meta.url);
const { loadConfig } = require(join(root, 'dist', 'lib', 'config'));
const torch = require(join(root, 'dist', 'activities', 'torch-process'));

const runs = Number(process.argv[2] ?? 5);
const seedModel = join(root, 'examples', 'seed-mlp', 'model.py');
const TRAIN = { epochs: 10, batch_size: 1, optimizer: 'adam', lr: 0.001, loss: 'mse', seed: 0 };

async function timed(config, op, args) {
  const t0 = performance.now();
  const out = await torch.runTorchRequest(config, op, args);
  if (out.kind !== 'ok')
    throw new Error(`${op} (TTD_SANDBOX=${config.sandbox}, ${config.torchProcess}): ${JSON.stringify(out).slice(0, 400)}`);
  return performance.now() - t0;
}

function trainArgs() {
  const dir = mkdtempSync(join(torch.workRoot(), 'ttd-stage-'));
  copyFileSync(seedModel, join(dir, 'model.py'));
  return { model_path: join(dir, 'model.py'), params: {}, train: TRAIN, out_dir: dir };
}

async function main() {
  const configs = Object.fromEntries(
    ['off', 'on'].flatMap((sandbox) =>
      ['server', 'fresh'].map((mode) => [
        `${sandbox}/${mode}`,
        loadConfig({ ...process.env, TTD_SANDBOX: sandbox, TTD_TORCH_PROCESS: mode }),
      ]),
    ),
  );
  // Two fork servers (same python, one sandboxed): keyed apart by their configuration, both started before timing.
  const m = {};
  const add = (k, v) => (m[k] ??= []).push(v);
  for (const sandbox of ['off', 'on']) await timed(configs[`${sandbox}/server`], 'hello', {});
  for (let i = 0; i < runs; i++) {
    for (const sandbox of i % 2 ? ['on', 'off'] : ['off', 'on']) {
      add(`hello, fork server, sandbox ${sandbox}`, await timed(configs[`${sandbox}/server`], 'hello', {}));
      add(`train (seed, 10 epochs), fork server, sandbox ${sandbox}`, await timed(configs[`${sandbox}/server`], 'train', trainArgs()));
      add(`hello, fresh process, sandbox ${sandbox}`, await timed(configs[`${sandbox}/fresh`], 'hello', {}));
    }
  }
  console.log(`| request (median of ${runs}) | sandbox off | sandbox on | on/off |`);
  console.log('|---|---|---|---|');
  for (const what of ['hello, fork server', 'train (seed, 10 epochs), fork server', 'hello, fresh process']) {
    const off = median(m[`${what}, sandbox off`]);
    const on = median(m[`${what}, sandbox on`]);
    console.log(`| ${what} | ${off.toFixed(1)} ms | ${on.toFixed(1)} ms | ${(on / off).toFixed(2)}× |`);
  }
  await torch.stopForkServers();
}

// The fork servers and their pipes are unref'd (they never keep a worker alive): keep this process alive meanwhile.
const alive = setInterval(() => undefined, 1000);
main()
  .finally(() => clearInterval(alive))
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
