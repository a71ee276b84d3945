// Connecting as Temporal users configure it: the suite's server behind Debian's nginx, one endpoint that demands a
// client certificate of a test CA (mutual TLS), one that demands an API key. ttd reaches it through a profile file
// or TEMPORAL_* variables, and every refusal is a clear error with a code, at once, leaving nothing behind.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';
import { startWorker } from '../hosts';
import { startTlsProxy, type TlsProxy } from '../tls-proxy';

const API_KEY = 'ttd-test-key-4f9c2e71';

describe('connecting to Temporal through TLS, client certificates and API keys', () => {
  let proxy: TlsProxy;
  const dir = tempDir('ttd-conn-');
  beforeAll(async () => {
    proxy = await startTlsProxy(join(dir, 'nginx'), inject('temporalAddress'), API_KEY);
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  /** A home whose env names no server (no TEMPORAL_ADDRESS): the connection comes from what `extra` sets. */
  const envFor = (home: string, extra: Record<string, string>) => ({ ...testEnv(home, undefined), ...extra });
  /** A profile file with the mutual-TLS endpoint as profile 'team'. */
  const profileFile = () => {
    const path = join(dir, 'temporal.toml');
    writeFileSync(
      path,
      [
        '[profile.team]',
        `address = "${proxy.mtlsAddress}"`,
        'namespace = "default"',
        '[profile.team.tls]',
        `client_cert_path = "${proxy.pki.clientCert}"`,
        `client_key_path = "${proxy.pki.clientKey}"`,
        `server_ca_cert_path = "${proxy.pki.caCert}"`,
        `server_name = "${proxy.serverName}"`,
        '',
      ].join('\n'),
    );
    return path;
  };
  const failure = (r: { code: number | null; stdout: string; stderr: string }) => {
    expect(r.code, r.stderr).toBe(2);
    return JSON.parse(r.stdout).error as { code: string; message: string };
  };
  const storeIsEmpty = (home: string) => !existsSync(join(home, 'store')) || readdirSync(join(home, 'store')).length === 0;
  let promotedRun: string;

  it('a run is promoted through mutual TLS with a profile file, and every call carried the client certificate', async () => {
    const home = tempDir();
    const spec = writeSpec(tempDir(), quickSeedSpec('mtls-seed'), join(seedDir, 'model.py'));
    const before = proxy.accessLog().split('\n').length;
    const r = await runTtd(['run', spec, '--json'], envFor(home, { TEMPORAL_CONFIG_FILE: profileFile(), TEMPORAL_PROFILE: 'team' }));
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as RunResult;
    expect(result).toMatchObject({ status: 'promoted', version: 1 });
    promotedRun = result.runId;
    // The run's client and its workers went through nginx's mutual-TLS endpoint, each call with the test client's
    // certificate (not to the server directly, which the test env does not name).
    const port = proxy.mtlsAddress.split(':')[1];
    const calls = proxy
      .accessLog()
      .split('\n')
      .slice(before - 1)
      .filter(Boolean);
    expect(calls.filter((line) => line.startsWith(`${port} 200 `)).length).toBeGreaterThan(10);
    // 499: a long poll the worker gave up when the run ended.
    for (const line of calls) expect(line).toMatch(new RegExp(`^${port} (200|499) client=CN=client$`));
  });

  it('a connection without a client certificate, or with one of another CA, is refused at once as server_auth_failed', async () => {
    const home = tempDir();
    const spec = writeSpec(tempDir(), quickSeedSpec('mtls-refused'), join(seedDir, 'model.py'));
    const base = { TEMPORAL_ADDRESS: proxy.mtlsAddress, TEMPORAL_TLS_SERVER_CA_CERT_PATH: proxy.pki.caCert };

    const started = Date.now();
    const none = failure(await runTtd(['run', spec, '--json'], envFor(home, base)));
    expect(Date.now() - started).toBeLessThan(10_000); // not the 10 s an unreachable server is given
    expect(none).toEqual({
      code: 'server_auth_failed',
      message:
        `the Temporal server at ${proxy.mtlsAddress} demands a client certificate (mutual TLS) and none was given (HTTP 400 Bad Request); ` +
        'set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or tls.client_cert_path and tls.client_key_path in the profile',
    });

    const stranger = failure(
      await runTtd(
        ['run', spec, '--json'],
        envFor(home, {
          ...base,
          TEMPORAL_TLS_CLIENT_CERT_PATH: proxy.pki.strangerCert,
          TEMPORAL_TLS_CLIENT_KEY_PATH: proxy.pki.strangerKey,
        }),
      ),
    );
    expect(stranger).toEqual({
      code: 'server_auth_failed',
      message:
        `the Temporal server at ${proxy.mtlsAddress} refused the client certificate of TEMPORAL_TLS_CLIENT_CERT_PATH (HTTP 400 Bad Request); ` +
        'expected a certificate signed by a CA the server trusts, with its key (TEMPORAL_TLS_CLIENT_KEY_PATH)',
    });
    expect(storeIsEmpty(home)).toBe(true); // bad credentials leave nothing behind
  });

  it('a server certificate ttd cannot verify is refused naming the CA or server-name setting to change', async () => {
    const home = tempDir();
    const certs = { TEMPORAL_TLS_CLIENT_CERT_PATH: proxy.pki.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: proxy.pki.clientKey };
    const noCa = failure(await runTtd(['status', 'x', '--json'], envFor(home, { TEMPORAL_ADDRESS: proxy.mtlsAddress, ...certs })));
    expect(noCa).toEqual({
      code: 'server_auth_failed',
      message:
        `ttd does not trust the TLS certificate of the Temporal server at ${proxy.mtlsAddress} (InvalidCertificate(UnknownIssuer)); ` +
        'set TEMPORAL_TLS_SERVER_CA_CERT_PATH (or tls.server_ca_cert_path in the profile) to the CA that signed it',
    });
    const wrongName = failure(
      await runTtd(
        ['status', 'x', '--json'],
        envFor(home, { TEMPORAL_CONFIG_FILE: profileFile(), TEMPORAL_PROFILE: 'team', TEMPORAL_TLS_SERVER_NAME: 'elsewhere.test' }),
      ),
    );
    expect(wrongName).toEqual({
      code: 'server_auth_failed',
      message:
        `the TLS certificate of the Temporal server at ${proxy.mtlsAddress} is not for the name 'elsewhere.test' of TEMPORAL_TLS_SERVER_NAME ` +
        `(it holds ${proxy.serverName}, 127.0.0.1) (InvalidCertificate(NotValidForNameContext)); ` +
        'set TEMPORAL_TLS_SERVER_NAME (or tls.server_name in the profile) to a name the certificate holds',
    });
  });

  it('an API-key endpoint answers the right key and refuses a wrong or missing one without echoing it', async () => {
    const home = tempDir();
    const keyed = (key: string | undefined) =>
      envFor(home, {
        TEMPORAL_ADDRESS: proxy.apiKeyAddress,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: proxy.pki.caCert,
        ...(key ? { TEMPORAL_API_KEY: key } : {}),
      });
    const ok = await runTtd(['status', promotedRun, '--json'], keyed(API_KEY));
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ runId: promotedRun, status: 'promoted' });

    const wrongKey = 'ttd-wrong-key-0b8d1a';
    const started = Date.now();
    const wrong = await runTtd(['status', promotedRun, '--json'], keyed(wrongKey));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(failure(wrong)).toEqual({
      code: 'server_auth_failed',
      message:
        `the Temporal server at ${proxy.apiKeyAddress} refused the API key of TEMPORAL_API_KEY (HTTP 401 Unauthorized); ` +
        'expected a key the server accepts (check it has not expired or been revoked)',
    });
    expect(wrong.stdout + wrong.stderr).not.toContain(wrongKey);

    expect(failure(await runTtd(['status', promotedRun, '--json'], keyed(undefined)))).toEqual({
      code: 'server_auth_failed',
      message:
        `the Temporal server at ${proxy.apiKeyAddress} asks for credentials and none were given (HTTP 401 Unauthorized); ` +
        'set TEMPORAL_API_KEY, or api_key in the profile',
    });
  });

  it('`ttd worker` connects with the profile and completes a run started through the API-key endpoint', async () => {
    const home = tempDir();
    const spec = writeSpec(tempDir(), quickSeedSpec('worker-mtls'), join(seedDir, 'model.py'));
    const workerEnv = envFor(home, { TEMPORAL_CONFIG_FILE: profileFile(), TEMPORAL_PROFILE: 'team' });
    const keyEnv = envFor(home, {
      TEMPORAL_ADDRESS: proxy.apiKeyAddress,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: proxy.pki.caCert,
      TEMPORAL_API_KEY: API_KEY,
    });
    const before = proxy.accessLog().split('\n').length;
    const worker = await startWorker(workerEnv);
    try {
      const started = await runTtd(['run', spec, '--detach', '--json'], keyEnv);
      expect(started.code, started.stderr).toBe(0);
      const { runId } = JSON.parse(started.stdout) as { runId: string };
      let view: Record<string, unknown> = {};
      for (const deadline = Date.now() + 150_000; Date.now() < deadline && view.status !== 'promoted';) {
        await new Promise((r) => setTimeout(r, 1000));
        const s = await runTtd(['status', runId, '--json'], keyEnv);
        if (s.code === 0) view = JSON.parse(s.stdout);
        if (view.status === 'rejected' || view.status === 'failed') break;
      }
      expect(view).toMatchObject({ runId, status: 'promoted', version: 1 });
    } finally {
      await worker.stop();
    }
    // The worker's polls and its activities' calls went through the mutual-TLS endpoint with the client certificate.
    const port = proxy.mtlsAddress.split(':')[1];
    const calls = proxy
      .accessLog()
      .split('\n')
      .slice(before - 1);
    expect(calls.filter((line) => line === `${port} 200 client=CN=client`).length).toBeGreaterThan(10);
  });

  it('`ttd server status` checks a remote server through the profile: reachable with the namespace, else why not', async () => {
    const home = tempDir();
    const profile = { TEMPORAL_CONFIG_FILE: profileFile(), TEMPORAL_PROFILE: 'team' };
    const ok = await runTtd(['server', 'status', '--json'], envFor(home, profile));
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      status: 'running',
      pid: null,
      address: proxy.mtlsAddress,
      namespace: 'default',
      tls: true,
    });
    expect(JSON.parse(ok.stdout).serverVersion).toMatch(/^\d+\.\d+/);
    expect(failure(await runTtd(['server', 'status', '--json'], envFor(home, { ...profile, TEMPORAL_NAMESPACE: 'no-such-ns' })))).toEqual({
      code: 'namespace_not_found',
      message: `the Temporal server at ${proxy.mtlsAddress} has no namespace 'no-such-ns' (TEMPORAL_NAMESPACE); expected a namespace that exists there, set by TEMPORAL_NAMESPACE or namespace in the profile`,
    });
    const stranger = { TEMPORAL_TLS_CLIENT_CERT_PATH: proxy.pki.strangerCert, TEMPORAL_TLS_CLIENT_KEY_PATH: proxy.pki.strangerKey };
    expect(failure(await runTtd(['server', 'status', '--json'], envFor(home, { ...profile, ...stranger }))).code).toBe(
      'server_auth_failed',
    );
    // Nothing listens at the embedded server's port of this home: a remote server is not judged by it.
    expect(existsSync(join(home, 'temporal.db'))).toBe(false);
  });

  it('a missing certificate file, an unknown profile or a missing profile file is config_invalid naming it, before anything is written', async () => {
    const home = tempDir();
    const spec = writeSpec(tempDir(), quickSeedSpec('conn-config'), join(seedDir, 'model.py'));
    const missing = join(dir, 'no-such-client.crt');
    expect(
      failure(
        await runTtd(
          ['run', spec, '--json'],
          envFor(home, {
            TEMPORAL_ADDRESS: proxy.mtlsAddress,
            TEMPORAL_TLS_CLIENT_CERT_PATH: missing,
            TEMPORAL_TLS_CLIENT_KEY_PATH: proxy.pki.clientKey,
          }),
        ),
      ),
    ).toEqual({
      code: 'config_invalid',
      message: `TEMPORAL_TLS_CLIENT_CERT_PATH names '${missing}', which does not exist; expected the PEM file of the client certificate`,
    });
    const file = profileFile();
    expect(failure(await runTtd(['run', spec, '--json'], envFor(home, { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'taem' })))).toEqual({
      code: 'config_invalid',
      message: `TEMPORAL_PROFILE='taem': TEMPORAL_CONFIG_FILE '${file}' has no profile 'taem'; expected one of: 'team'`,
    });
    const gone = join(dir, 'absent.toml');
    expect(failure(await runTtd(['run', spec, '--json'], envFor(home, { TEMPORAL_CONFIG_FILE: gone })))).toEqual({
      code: 'config_invalid',
      message: `TEMPORAL_CONFIG_FILE='${gone}' does not exist; expected a TOML file of Temporal CLI profiles ([profile.NAME] tables)`,
    });
    const typo = join(dir, 'typo.toml');
    writeFileSync(
      typo,
      `[profile.default]\naddress = "${proxy.mtlsAddress}"\n[profile.default.tls]\nclient_cert = "${proxy.pki.clientCert}"\n`,
    );
    const bad = failure(await runTtd(['run', spec, '--json'], envFor(home, { TEMPORAL_CONFIG_FILE: typo })));
    expect(bad.code).toBe('config_invalid');
    expect(bad.message).toContain(
      `TEMPORAL_CONFIG_FILE '${typo}' cannot be used (profile 'default'): Validation error: key(s) unrecognized in profile.default.tls: client_cert;`,
    );
    expect(storeIsEmpty(home)).toBe(true);
  });
});
