// The team runbook (docs/deploy.md) rehearsed: its blocks marked `# rehearsed` run, in the file's order, in one bash
// shell, and its unit file is written where it says and started as systemd would start it. Against real components:
// the suite's Temporal server behind nginx demanding a client certificate of a test CA, S3 on moto, torch 1.13.
// What the rehearsal changes is listed at the top of docs/deploy.md; this test is what makes that list true.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { command, freePort, quickSeedSpec, repoRoot, seedDir, tempDir, writeSpec } from '../helpers';
import { startMoto, type Moto } from '../moto';
import { startTlsProxy, type TlsProxy } from '../tls-proxy';

const RUNBOOK = join(repoRoot, 'docs', 'deploy.md');
const UNIT = 'ttd-worker';

/** The runbook's blocks in order: shell blocks whose first line is `# rehearsed`, and the unit file (an ini block whose
 * first line names its path). */
function rehearsedBlocks(markdown: string): ({ kind: 'sh'; lines: string[] } | { kind: 'file'; path: string; text: string })[] {
  const out: ({ kind: 'sh'; lines: string[] } | { kind: 'file'; path: string; text: string })[] = [];
  for (const m of markdown.matchAll(/^```(sh|ini)\n([\s\S]*?)^```$/gm)) {
    const [first, ...rest] = m[2].split('\n');
    if (m[1] === 'sh' && first.trim() === '# rehearsed') out.push({ kind: 'sh', lines: rest.filter((l) => l.trim() !== '') });
    else if (m[1] === 'ini' && /^# \/\S+$/.test(first.trim())) out.push({ kind: 'file', path: first.trim().slice(2), text: m[2] });
  }
  return out;
}

describe('the runbook (docs/deploy.md), rehearsed', () => {
  const root = tempDir('ttd-runbook-');
  const stateDir = join(root, 'systemctl');
  const unitDir = join(root, 'etc', 'systemd', 'system');
  let proxy: TlsProxy;
  let moto: Moto;

  beforeAll(async () => {
    proxy = await startTlsProxy(join(root, 'nginx'), inject('temporalAddress'), 'runbook-unused-key');
    moto = await startMoto();
    await moto.createBucket('runbook');
  });
  afterAll(async () => {
    // Whatever the outcome, the unit is stopped (a failed step would leave the worker running).
    await command(process.execPath, [join(repoRoot, 'test', 'systemctl-standin.mjs'), 'stop', UNIT], {
      env: { ...process.env, SYSTEMCTL_UNIT_DIR: unitDir, SYSTEMCTL_STATE_DIR: stateDir },
    });
    await moto?.stop();
    await proxy?.stop();
  });

  it('every rehearsed command succeeds: profile over mTLS, store, unit file, first run, metrics, auditor, upgrade', async () => {
    const metricsPort = await freePort();
    const store = 's3://runbook/ttd';
    // The path prefixes and values the rehearsal puts in place of a real host's (listed in docs/deploy.md).
    const rewrites: [string, string][] = [
      ['/etc/systemd/system', unitDir],
      ['/etc/ttd', join(root, 'etc', 'ttd')],
      ['/var/lib/ttd', join(root, 'var', 'lib', 'ttd')],
      ['/opt/ttd', repoRoot],
      ['s3://models/ttd', store],
      ['9464', String(metricsPort)],
    ];
    const rewrite = (text: string) => rewrites.reduce((t, [from, to]) => t.split(from).join(to), text);

    const blocks = rehearsedBlocks(readFileSync(RUNBOOK, 'utf8'));
    // The runbook's parts that the issue names must be among what is rehearsed, not only described.
    const all = blocks.map((b) => (b.kind === 'sh' ? b.lines.join('\n') : b.text)).join('\n');
    for (const must of [
      'temporal config set',
      'ttd server status',
      'ExecStart=',
      'systemctl enable --now',
      'ttd run',
      'ttd audit verify',
      'systemctl stop',
    ])
      expect(all, `docs/deploy.md rehearses '${must}'`).toContain(must);

    const skipped: string[] = [];
    const script = ['set -euo pipefail', 'set -x'];
    for (const block of blocks) {
      if (block.kind === 'file') {
        script.push(
          `mkdir -p "$(dirname '${rewrite(block.path)}')"`,
          `cat > '${rewrite(block.path)}' <<'UNIT_EOF'`,
          rewrite(block.text),
          'UNIT_EOF',
        );
        continue;
      }
      for (const line of block.lines) {
        if (/#\s*not rehearsed:/.test(line)) skipped.push(line);
        else script.push(rewrite(line));
      }
    }

    // The §0 values, the rehearsal's; the certificates as a secret manager would leave them.
    const certs = join(root, 'secrets');
    mkdirSync(certs);
    copyFileSync(proxy.pki.caCert, join(certs, 'ca.crt'));
    copyFileSync(proxy.pki.clientCert, join(certs, 'worker.crt'));
    copyFileSync(proxy.pki.clientKey, join(certs, 'worker.key'));
    // `systemctl` is the stand-in; `temporal` is the Temporal CLI of make setup; `ttd` is this checkout's.
    const bin = join(root, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'systemctl'),
      `#!/bin/sh\nexec '${process.execPath}' '${join(repoRoot, 'test', 'systemctl-standin.mjs')}' "$@"\n`,
    );
    chmodSync(join(bin, 'systemctl'), 0o755);
    mkdirSync(unitDir, { recursive: true });
    mkdirSync(stateDir);
    const work = join(root, 'ci');
    mkdirSync(work);
    writeSpec(work, quickSeedSpec('runbook-mlp', { environment: 'torch-1.13', formats: ['torchscript'] }), join(seedDir, 'model.py'));
    const env: Record<string, string> = {
      PATH: [bin, join(repoRoot, 'bin'), join(repoRoot, '.venv', 'bin'), '/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].join(
        ':',
      ),
      HOME: join(root, 'home'),
      LANG: 'C.UTF-8',
      TTD_HOME: join(root, 'ci-home'), // CI's and the auditor's home: no keys, no server of its own
      TEMPORAL_HOSTPORT: proxy.mtlsAddress,
      TEMPORAL_SERVER_NAME: proxy.serverName,
      TEMPORAL_NS: 'default',
      CERTS: certs,
      STORE: store,
      ...moto.env,
      SYSTEMCTL_UNIT_DIR: unitDir,
      SYSTEMCTL_STATE_DIR: stateDir,
    };
    mkdirSync(env.HOME);

    const before = proxy.accessLog().split('\n').length;
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bash', ['-c', script.join('\n')], { cwd: work, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    const journal = existsSync(join(stateDir, `${UNIT}.journal`)) ? readFileSync(join(stateDir, `${UNIT}.journal`), 'utf8') : '';
    expect(result.code, `${result.stderr}\n--- journal of ${UNIT}\n${journal}`).toBe(0);

    // The profile reached the server over mutual TLS, and the unit's worker used it: calls carried the client certificate.
    const statusAt = result.stdout.indexOf('{\n  "status"');
    expect(statusAt, result.stdout).toBeGreaterThanOrEqual(0);
    expect(JSON.parse(result.stdout.slice(statusAt, result.stdout.indexOf('\n}', statusAt) + 2))).toMatchObject({
      status: 'running',
      address: proxy.mtlsAddress,
      namespace: 'default',
      tls: true,
    });
    const calls = proxy
      .accessLog()
      .split('\n')
      .slice(before - 1);
    expect(calls.filter((l) => / 200 client=CN=client$/.test(l)).length).toBeGreaterThan(20);
    // systemd-analyze found nothing to say about the unit file.
    expect(result.stderr).not.toMatch(/ttd-worker\.service:\d+:/);
    // The worker ran from the unit (its journal), was stopped, started again and drained on SIGTERM both times.
    expect(journal.match(/worker serving .* of store s3:\/\/runbook\/ttd at /g)?.length).toBe(2);
    expect(journal.match(/^worker stopped$/gm)?.length).toBe(2);
    // It serves a pool per installed environment and says what it takes on in each (docs/deploy-capacity.md).
    expect(journal).toMatch(
      /-torch-torch-2\.13-cpu, .*-torch-torch-1\.13-cpu of store .*; \d+ torch activities at once in each pool, \d+ threads? each$/m,
    );
    // The metrics line the runbook shows, and both runs promoted.
    expect(result.stdout).toMatch(/^ttd_stage_duration_seconds_count\{/m);
    expect(result.stdout.match(/^true$/gm)?.length).toBe(5); // the five `jq -e` checks
    // Only what docs/deploy.md says is not rehearsed was skipped.
    expect(skipped.map((l) => l.replace(/.*#\s*not rehearsed:\s*/, ''))).toEqual([
      '/opt/ttd is the checkout under test',
      'the suite runs on the checkout make setup has just built',
      'the test runs as its own user',
      'no ttd user on the test machine',
    ]);
  }, 300_000);
});
