#!/usr/bin/env node
// Runs one command in ttd's sandbox, as the parity stage runs its runners (lib/environments/sandbox.ts): for the libtorch smoke test
// under the sandbox, and for trying by hand what a model or an archive may do there.
// Usage: node infra/sandbox-exec.js [--python PY]... [--ro PATH]... -- COMMAND [ARGS...]
// The command writes only its working directory and the directories of the absolute paths among its arguments.
const { spawnSync } = require('node:child_process');
const { existsSync, statSync } = require('node:fs');
const { dirname, isAbsolute, resolve } = require('node:path');

function main() {
  const { bwrapArgs, sandboxEnv } = require(resolve(__dirname, '..', 'dist', 'lib', 'environments', 'sandbox'));
  const argv = process.argv.slice(2);
  const pythons = [];
  const readOnly = [];
  let i = 0;
  for (; i < argv.length && argv[i] !== '--'; i += 2) {
    if (argv[i] === '--python') pythons.push(argv[i + 1]);
    else if (argv[i] === '--ro') readOnly.push(argv[i + 1]);
    else throw new Error(`sandbox-exec: unknown option '${argv[i]}'; expected --python PY, --ro PATH or -- COMMAND`);
  }
  const command = argv.slice(i + 1);
  if (!command.length) throw new Error('sandbox-exec: no command; usage: sandbox-exec.js [--python PY] [--ro PATH] -- COMMAND [ARGS...]');
  const cwd = process.cwd();
  const readWrite = new Set([cwd]);
  for (const arg of command.slice(1)) {
    if (!isAbsolute(arg)) continue;
    const dir = existsSync(arg) && statSync(arg).isDirectory() ? arg : dirname(arg);
    if (existsSync(dir) && dir !== '/') readWrite.add(dir);
  }
  readOnly.push(command[0]);
  const bwrap = process.env.TTD_BWRAP || '/usr/bin/bwrap';
  const args = bwrapArgs({ pythons, readOnly, readWrite: [...readWrite], cwd }, sandboxEnv(pickedEnv()));
  const res = spawnSync(bwrap, [...args, ...command], { stdio: 'inherit' });
  if (res.error) throw res.error;
  process.exit(res.status ?? 1);
}

// What the caller set for the runner's own logging (the smoke test reads the JIT log).
function pickedEnv() {
  const out = {};
  for (const name of ['PYTORCH_JIT_LOG_LEVEL']) if (process.env[name] !== undefined) out[name] = process.env[name];
  return out;
}

try {
  main();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
