// Arguments a user gets wrong, through the real bin/ttd: exit 2, one JSON object naming the flag, variable or file
// with the value and what was expected, and nothing written or left behind.
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { command, freePort, repoRoot, runTtd, seedDir, tempDir, testEnv, type TtdRun } from '../helpers';
import { startMoto } from '../moto';

const address = () => inject('temporalAddress');

/** The one JSON object a failed command prints, after checking it exited 2 and printed nothing else. */
function failure(run: TtdRun): { code: string; message: string } {
  expect(run.code, run.stderr).toBe(2);
  const out = JSON.parse(run.stdout);
  expect(out.status).toBe('failed');
  expect(run.stderr).toContain(`[${out.error.code}]`);
  return out.error;
}

describe('cli arguments', () => {
  it('pull -o refuses an existing file without --force and a directory, writing nothing', async () => {
    const home = tempDir();
    const dir = tempDir();
    const existing = join(dir, 'model.pt');
    writeFileSync(existing, 'keep me');
    const env = testEnv(home, address());

    const kept = failure(await runTtd(['pull', 'seed-mlp@production', '-o', existing, '--json'], env));
    expect(kept.code).toBe('output_exists');
    expect(kept.message).toBe(`-o '${existing}' already exists; pass --force to overwrite it, or choose another path`);

    const folder = failure(await runTtd(['pull', 'seed-mlp@production', '-o', dir, '--force', '--json'], env));
    expect(folder.code).toBe('output_invalid');
    expect(folder.message).toBe(`-o '${dir}' is a directory; expected the path of the file to write (e.g. ${dir}/model.pt)`);

    // With --force the destination is accepted and the next check (the model) speaks.
    expect(failure(await runTtd(['pull', 'seed-mlp@production', '-o', existing, '--force', '--json'], env)).code).toBe('model_not_found');
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    expect(readdirSync(dir)).toEqual(['model.pt']);
    expect(readdirSync(home)).toEqual([]);

    // ttd card -o is checked the same way, before the store is read.
    const card = failure(await runTtd(['card', 'seed-mlp@production', '-o', existing, '--json'], env));
    expect(card).toEqual({ code: 'output_exists', message: kept.message });
    const cardFolder = failure(await runTtd(['card', 'seed-mlp@production', '-o', dir, '--force', '--json'], env));
    expect(cardFolder).toEqual({
      code: 'output_invalid',
      message: `-o '${dir}' is a directory; expected the path of the file to write (e.g. ${dir}/card.md)`,
    });
    const link = join(dir, 'card.md');
    symlinkSync(existing, link);
    const linked = failure(await runTtd(['card', 'seed-mlp@production', '-o', link, '--force', '--json'], env));
    expect(linked.code).toBe('output_invalid');
    expect(linked.message).toContain('is a symbolic link, which card would replace by a file, even with --force');
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    expect(readdirSync(home)).toEqual([]);
  });

  it('report of an unknown run in a home where no server ever ran answers run_not_found, starting and writing nothing', async () => {
    const home = tempDir();
    // No Temporal address: the embedded server's port, where nothing listens.
    const env = { TTD_HOME: home, TEMPORAL_ADDRESS: undefined, TTD_TEMPORAL_PORT: String(await freePort()) };
    for (const args of [
      ['report', 'no-such-run', '--json'],
      ['report', 'no-such-run', '-o', join(tempDir(), 'r.html'), '--json'],
    ]) {
      const error = failure(await runTtd(args, env));
      expect(error.code).toBe('run_not_found');
      expect(error.message).toBe(
        `run 'no-such-run' registered no version in the store file://${home}/store, and no Temporal server was asked about it (no Temporal server is configured or running, and none has run in ${home}); expected a run id from 'ttd runs'`,
      );
    }
    // The other read-only commands refuse the same way: nothing started, nothing written.
    for (const args of [['runs'], ['status', 'no-such-run'], ['wait', 'no-such-run'], ['cancel', 'no-such-run']])
      expect(failure(await runTtd([...args, '--json'], env)).code).toBe('server_not_running');
    for (const args of [
      ['show', 'm@production'],
      ['pull', 'm:1', '-o', join(tempDir(), 'm.pt')],
      ['card', 'm@production'],
    ])
      expect(failure(await runTtd([...args, '--json'], env)).code).toBe('model_not_found');
    for (const args of [['models'], ['audit', 'log', 'm'], ['audit', 'verify']])
      expect((await runTtd([...args, '--json'], env)).code).toBe(0);
    expect(readdirSync(home)).toEqual([]);
  });

  it('runs --limit takes a positive whole number and names the flag and the value otherwise', async () => {
    const home = tempDir();
    for (const bad of ['-5', 'abc', '0']) {
      const error = failure(await runTtd(['runs', '--limit', bad, '--json'], testEnv(home, address())));
      expect(error).toEqual({
        code: 'argument_invalid',
        message: `--limit '${bad}' is not a positive whole number; expected e.g. --limit 20`,
      });
    }
    expect(readdirSync(home)).toEqual([]);
  });

  it('runs filters name the flag, the value and the form expected; --query prints the visibility query', async () => {
    const home = tempDir();
    const env = testEnv(home, address());
    const cases: [string[], string][] = [
      [['--outcome', 'won'], "--outcome 'won' is not one of promoted, rejected, failed, cancelled, running"],
      [['--since', 'yesterday'], "--since 'yesterday' is neither a time ago nor a date"],
      [['--commit', "x' OR TtdModel!='"], "--commit 'x' OR TtdModel!='' is not a commit id"],
    ];
    for (const [args, message] of cases) {
      const error = failure(await runTtd(['runs', ...args, '--json'], env));
      expect(error.code).toBe('argument_invalid');
      expect(error.message).toContain(message);
    }
    expect(failure(await runTtd(['runs', '--model', "a' OR 'b", '--json'], env)).code).toBe('invalid_name');
    const query = await runTtd(
      ['runs', '--model', 'seed-mlp', '--outcome', 'promoted', '--since', '2026-12-01', '--commit', 'ab12', '--query'],
      env,
    );
    expect(query.stdout.trim()).toBe(
      "WorkflowType = 'pipelineWorkflow' AND TtdModel = 'seed-mlp' AND TtdOutcome = 'promoted' AND StartTime >= '2026-12-01T00:00:00.000Z' AND TtdCommit STARTS_WITH 'ab12'",
    );
    expect(readdirSync(home)).toEqual([]);
  });

  it('a namespace without ttd search attributes is refused, naming each and the command that creates it, before anything is written', async () => {
    const namespace = `bare-${Date.now()}`;
    const bin = join(repoRoot, '.venv', 'bin', 'temporal');
    await command(bin, ['operator', 'namespace', 'create', '--address', address(), '-n', namespace]);
    const home = tempDir();
    const env = { ...testEnv(home, address()), TEMPORAL_NAMESPACE: namespace };
    const runs = failure(await runTtd(['runs', '--model', 'seed-mlp', '--json'], env));
    expect(runs.code).toBe('search_attributes_missing');
    expect(runs.message).toContain(`namespace '${namespace}' lacks TtdModel (Keyword), TtdTrigger (Keyword)`);
    expect(runs.message).toContain(`temporal operator search-attribute create --namespace ${namespace} --name TtdOutcome --type Keyword`);
    const run = failure(await runTtd(['run', join(seedDir, 'pipeline.yaml'), '--detach', '--json'], env));
    expect(run.code).toBe('search_attributes_missing');
    expect(readdirSync(home)).toEqual([]);
  });

  it('schedule create names --every or --cron, the value and the form expected, and creates nothing', async () => {
    const home = tempDir();
    const env = testEnv(home, address());
    const spec = join(seedDir, 'pipeline.yaml');
    const every = failure(await runTtd(['schedule', 'create', 'nightly', spec, '--every', 'banana', '--json'], env));
    expect(every).toEqual({
      code: 'schedule_error',
      message: "--every 'banana' is not an interval; expected a whole number and a unit s, m, h or d (e.g. 30m, 1h, 1d)",
    });
    const cron = failure(await runTtd(['schedule', 'create', 'nightly', spec, '--cron', 'every night', '--json'], env));
    expect(cron.code).toBe('schedule_error');
    expect(cron.message).toContain("--cron 'every night' is not a cron expression; expected 5 fields");
    const described = failure(await runTtd(['schedule', 'describe', 'nightly', '--json'], env));
    expect(described).toEqual({ code: 'schedule_error', message: "schedule 'nightly' does not exist" });
    expect(readdirSync(home)).toEqual([]);
  });

  it('TTD_TEMPORAL_PORT outside 1 to 65535 is a config_invalid error naming the variable, the value and the range', async () => {
    const home = tempDir();
    for (const bad of ['abc', '0', '70000']) {
      const error = failure(await runTtd(['models', '--json'], { ...testEnv(home, undefined), TTD_TEMPORAL_PORT: bad }));
      expect(error).toEqual({
        code: 'config_invalid',
        message: `TTD_TEMPORAL_PORT='${bad}'; expected a port, a whole number from 1 to 65535`,
      });
    }
    // `server status` read the configuration outside its error handling: a stack trace, not one JSON object.
    const status = failure(await runTtd(['server', 'status', '--json'], { ...testEnv(home, undefined), TTD_TEMPORAL_PORT: '70000' }));
    expect(status.code).toBe('config_invalid');
    expect(readdirSync(home)).toEqual([]);
  });

  it('run names an empty spec file as empty and a directory as a directory, and starts nothing', async () => {
    const home = tempDir();
    const dir = tempDir();
    const empty = join(dir, 'pipeline.yaml');
    writeFileSync(empty, '');
    const env = testEnv(home, address());
    const emptyError = failure(await runTtd(['run', empty, '--json'], env));
    expect(emptyError).toEqual({
      code: 'spec_invalid',
      message: `spec file '${empty}' is empty; expected a pipeline in YAML or JSON with at least a name (e.g. 'name: my-model')`,
    });
    const folder = join(dir, 'pipelines');
    mkdirSync(folder);
    const folderError = failure(await runTtd(['run', folder, '--json'], env));
    expect(folderError).toEqual({
      code: 'spec_not_found',
      message: `spec file '${folder}' is a directory; expected a pipeline.yaml or .json file (e.g. ${join(folder, 'pipeline.yaml')})`,
    });
    expect(readdirSync(home)).toEqual([]);
  });

  it('a torch fork server leaves no /tmp/ttd-torch-* directory behind, stopped or not when its worker exits', async () => {
    // A worker that exits with its server running (as `ttd run` does), and one that stops it first.
    for (const stop of [false, true]) {
      const tmp = tempDir('ttd-tmpdir-');
      const script = `
        const { loadConfig } = require('./dist/lib/config');
        const torch = require('./dist/activities/torch-process');
        const fs = require('node:fs');
        (async () => {
          const env = await torch.torchEnvironment(loadConfig());
          if (!env) throw new Error('the fork server did not start');
          if (fs.readdirSync(process.env.TMPDIR).filter((d) => d.startsWith('ttd-torch-')).length !== 1) throw new Error('no server directory');
          if (${stop}) { await torch.stopForkServers(); await new Promise((r) => setTimeout(r, 6000)); }
          process.exit(0);
        })().catch((err) => { console.error(err); process.exit(1); });`;
      const child = await command(process.execPath, ['-e', script], {
        cwd: repoRoot,
        env: { ...process.env, TMPDIR: tmp },
        timeout: 120_000,
      });
      expect(child.code, child.stderr).toBe(0);
      expect(readdirSync(tmp).filter((d) => d.startsWith('ttd-torch-'))).toEqual([]);
    }
  });
  it('a store URL that cannot hold a store is refused at once, naming TTD_STORE, the value and what was expected', async () => {
    const home = tempDir();
    const spec = join(seedDir, 'pipeline.yaml');
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'not a directory');
    const cases: Array<[string, string]> = [
      ['file://relative/store', 'is not an absolute path'],
      [`file://${file}/store`, 'lies under a file, not a directory'],
      [`file://${file}`, 'is a file, not a directory'],
      ['file:///proc/ttd-store', "lies on procfs ('/proc'), where files cannot be stored"], // mkdir -p here never returns
    ];
    for (const [store, why] of cases) {
      const started = Date.now();
      const error = failure(await runTtd(['run', spec, '--json'], { ...testEnv(home, address()), TTD_STORE: store }));
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(error).toEqual({
        code: 'store_invalid',
        message: `TTD_STORE '${store}' ${why}; expected file:///absolute/path to a directory ttd may write`,
      });
    }
    expect(readdirSync(home)).toEqual([]);
  });

  it('ttd worker refuses a TTD_PYTHON that is not a Python with torch as ttd run does, before it connects or writes', async () => {
    const noTorch = join(repoRoot, '.venv', 'bin', 'python'); // the tools' virtualenv: a Python without torch
    const cases = [
      ['/bin/true', 'config_invalid'],
      ['/nonexistent/python3', 'python_missing'],
      [noTorch, 'torch_missing'],
    ] as const;
    // The pools (queues named after the store), and the one torch queue of TTD_QUEUE_PREFIX (testEnv sets one).
    const workers: [string[], Record<string, string>, string][] = [
      [[], { TTD_QUEUE_PREFIX: '' }, ''],
      [['--env', 'custom'], { TTD_QUEUE_PREFIX: '' }, "--env 'custom': "],
      [[], {}, ''],
    ];
    // Each Python's commands at once: they only start node and probe.
    await Promise.all(
      cases.map(async ([python, code]) => {
        const home = tempDir();
        // Nothing listens at port 1: the refusal must come before the worker connects.
        const env = { ...testEnv(home, '127.0.0.1:1'), TTD_PYTHON: python };
        const [run, ...refused] = await Promise.all([
          runTtd(['run', join(seedDir, 'pipeline.yaml'), '--json'], env),
          ...workers.map(([args, extra]) => runTtd(['worker', ...args], { ...env, ...extra })),
        ]);
        const error = failure(run);
        expect(error.code).toBe(code);
        expect(error.message).toContain(`TTD_PYTHON='${python}'`);
        refused.forEach((worker, i) => {
          expect(worker.code, worker.stderr).toBe(2);
          expect(worker.stderr.trim()).toBe(`ttd: ${workers[i][2]}${error.message} [${code}]`);
        });
        expect(readdirSync(home)).toEqual([]);
      }),
    );
  });

  it('an unreachable Temporal server fails within about 10 s, naming the address and how to start one', async () => {
    const home = tempDir();
    const started = Date.now();
    const run = await runTtd(['run', join(seedDir, 'pipeline.yaml'), '--json'], testEnv(home, '127.0.0.1:1'));
    const seconds = (Date.now() - started) / 1000;
    const error = failure(run);
    expect(error.code).toBe('server_unreachable');
    expect(error.message).toMatch(
      /^cannot reach the Temporal server at 127\.0\.0\.1:1 \(TEMPORAL_ADDRESS\) within 10 s: .+; start one with 'ttd server start', or point TEMPORAL_ADDRESS at a running server$/,
    );
    expect(seconds).toBeLessThan(20);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
  it('an S3 store without its bucket, or whose endpoint is down, is named with TTD_STORE, the endpoint and the bucket', async () => {
    const moto = await startMoto();
    try {
      const home = tempDir();
      const spec = join(seedDir, 'pipeline.yaml');
      const env = { ...testEnv(home, address()), ...moto.env, TTD_STORE: 's3://no-such-bucket/ttd' };
      const missing = failure(await runTtd(['run', spec, '--json'], env));
      expect(missing).toEqual({
        code: 'store_bucket_missing',
        message: `TTD_STORE 's3://no-such-bucket/ttd' (endpoint '${moto.env.AWS_ENDPOINT_URL}' from AWS_ENDPOINT_URL, bucket 'no-such-bucket'): the bucket does not exist (listing ttd-probe/); create it or fix TTD_STORE`,
      });
      await moto.stop();
      const down = failure(await runTtd(['run', spec, '--json'], { ...env, TTD_S3_MAX_ATTEMPTS: '1' }));
      expect(down.code).toBe('store_unreachable');
      expect(down.message).toMatch(
        new RegExp(
          `^TTD_STORE 's3://no-such-bucket/ttd' \\(endpoint '${moto.env.AWS_ENDPOINT_URL}' from AWS_ENDPOINT_URL, bucket 'no-such-bucket'\\) cannot be reached \\(listing ttd-probe/\\): .+; check that the endpoint is up and AWS_ENDPOINT_URL is right$`,
        ),
      );
      expect(readdirSync(home)).toEqual([]);
    } finally {
      await moto.stop();
    }
  });
});
