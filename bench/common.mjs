// Helpers the benchmarks share: subprocesses, medians, a Temporal dev server of their own, the env of a `ttd` command.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The ttd command, as a user runs it. */
export const ttdBin = join(root, 'bin', 'ttd');

/** Runs a command to completion; throws with its stderr unless it exits 0. */
export function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

/** The median of a list of numbers. */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** Milliseconds as seconds for a table. */
export const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

/** An in-memory Temporal dev server on a random port; its address, pid and a stop function. */
export async function startServer() {
  const port = 7800 + Math.floor(Math.random() * 100);
  // What the embedded server has: ttd's search attributes (a worker refuses a namespace without them), priority, fairness.
  const { devServerFeatureArgs } = createRequire(import.meta.url)(join(root, 'dist', 'temporal', 'search-attributes.js'));
  const server = spawn(
    join(root, '.venv', 'bin', 'temporal'),
    ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(port + 1000), '--headless', '--log-level', 'error', '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true', ...devServerFeatureArgs()],
    { stdio: 'ignore' },
  );
  await new Promise((r) => setTimeout(r, 3000));
  return { address: `127.0.0.1:${port}`, pid: server.pid, stop: () => server.kill('SIGTERM') };
}

/** A free TCP port on loopback. */
export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** moto_server (S3 on loopback, everything in memory) on a free port with a bucket `models`; the env that points ttd
 * and the AWS SDK at it, its pid (to measure it), and a stop function. */
export async function startMoto() {
  const port = await freePort();
  const child = spawn(join(root, '.venv', 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const endpoint = `http://127.0.0.1:${port}`;
  const env = { AWS_ENDPOINT_URL: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' };
  const mk = `import boto3; boto3.client('s3', endpoint_url='${endpoint}', region_name='us-east-1', aws_access_key_id='b', aws_secret_access_key='b').create_bucket(Bucket='models')`;
  for (let i = 0; ; i++) {
    try {
      sh(join(root, '.venv', 'bin', 'python'), ['-c', mk]);
      break;
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { env, pid: child.pid, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

/** The environment of a `ttd` command: its home, the server, task queues of its own; `extra` on top. */
export function ttdEnv(address, home, extra = {}) {
  return { ...process.env, TTD_HOME: home, TEMPORAL_ADDRESS: address, TTD_QUEUE_PREFIX: `bench-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, NO_COLOR: '1', ...extra };
}

/** A copy of the seed's spec in `dir` with `fields` (top-level YAML lines, `key: value`) replacing the seed's lines of
 * the same key or added, its model file named by absolute path. */
export function seedSpec(dir, fields) {
  const seed = join(root, 'examples', 'seed-mlp');
  let text = readFileSync(join(seed, 'pipeline.yaml'), 'utf8').replace(/^model: .*$/m, `model: ${join(seed, 'model.py')}`);
  const added = [];
  for (const field of fields) {
    const key = field.slice(0, field.indexOf(':'));
    const line = new RegExp(`^${key}:.*$`, 'm');
    if (line.test(text)) text = text.replace(line, field);
    else added.push(field);
  }
  const path = join(dir, 'pipeline.yaml');
  writeFileSync(path, `${text.trimEnd()}\n${added.map((f) => `${f}\n`).join('')}`);
  return path;
}
