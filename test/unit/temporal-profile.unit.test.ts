// Reading the connection settings: a Temporal CLI profile file and TEMPORAL_* variables, through @temporalio/envconfig.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTemporalProfile, temporalConnectOptions } from '../../temporal/profile';
import { tempDir } from '../helpers';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('the Temporal connection profile', () => {
  const dir = tempDir('ttd-profile-');
  // HOME points at an empty folder: the machine's own ~/.config/temporalio never leaks into these tests.
  const base = { HOME: dir };
  const file = join(dir, 'temporal.toml');
  writeFileSync(join(dir, 'client.crt'), PEM);
  writeFileSync(join(dir, 'client.key'), PEM.replace(/CERTIFICATE/g, 'PRIVATE KEY'));
  writeFileSync(
    file,
    [
      '[profile.team]',
      'address = "temporal.internal:7233"',
      'namespace = "ml"',
      '[profile.team.tls]',
      `client_cert_path = "${join(dir, 'client.crt')}"`,
      `client_key_path = "${join(dir, 'client.key')}"`,
      '',
    ].join('\n'),
  );

  it('with nothing configured, names no address (the embedded server) and the default namespace', () => {
    const p = loadTemporalProfile(base);
    expect(p).toMatchObject({ address: undefined, namespace: 'default', file: undefined, profile: 'default', origin: {} });
    expect(temporalConnectOptions(p, '127.0.0.1:7233')).toEqual({ address: '127.0.0.1:7233' });
  });

  it('TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE work as before, and empty ones count as unset', () => {
    expect(loadTemporalProfile({ ...base, TEMPORAL_ADDRESS: 'h:1', TEMPORAL_NAMESPACE: 'n' })).toMatchObject({
      address: 'h:1',
      namespace: 'n',
      origin: { address: 'TEMPORAL_ADDRESS', namespace: 'TEMPORAL_NAMESPACE' },
    });
    expect(loadTemporalProfile({ ...base, TEMPORAL_ADDRESS: '', TEMPORAL_NAMESPACE: '' })).toMatchObject({
      address: undefined,
      namespace: 'default',
    });
  });

  it('a profile gives address, namespace and client certificate; a variable overrides its key and is named as the origin', () => {
    const p = loadTemporalProfile({ ...base, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'team', TEMPORAL_NAMESPACE: 'ml-staging' });
    expect(p).toMatchObject({ address: 'temporal.internal:7233', namespace: 'ml-staging', file, profile: 'team' });
    expect(p.origin).toEqual({
      address: `address of profile 'team' in ${file}`,
      namespace: 'TEMPORAL_NAMESPACE',
      tls: `tls of profile 'team' in ${file}`,
      'tls.client_cert': `tls.client_cert_path of profile 'team' in ${file}`,
      'tls.client_key': `tls.client_key_path of profile 'team' in ${file}`,
    });
    const options = temporalConnectOptions(p, p.address!);
    const pair = (options.tls as { clientCertPair?: { crt: Uint8Array; key: Uint8Array } }).clientCertPair;
    expect(Buffer.from(pair!.crt).toString()).toBe(PEM);
    expect(Buffer.from(pair!.key).toString()).toContain('PRIVATE KEY');
  });

  it('an API key turns TLS on unless TLS is disabled explicitly', () => {
    expect(temporalConnectOptions(loadTemporalProfile({ ...base, TEMPORAL_API_KEY: 'k-123456' }), 'h:1')).toEqual({
      address: 'h:1',
      apiKey: 'k-123456',
      tls: true,
    });
    expect(temporalConnectOptions(loadTemporalProfile({ ...base, TEMPORAL_API_KEY: 'k-123456', TEMPORAL_TLS: 'false' }), 'h:1')).toEqual({
      address: 'h:1',
      apiKey: 'k-123456',
      tls: false,
    });
  });

  it('a certificate that is not PEM, or a key without its certificate, is config_invalid naming the setting', () => {
    const notPem = loadTemporalProfile({ ...base, TEMPORAL_TLS_SERVER_CA_CERT_PATH: file });
    expect(() => temporalConnectOptions(notPem, 'h:1')).toThrow(
      expect.objectContaining({
        code: 'config_invalid',
        message: `TEMPORAL_TLS_SERVER_CA_CERT_PATH ('${file}') is not PEM (no '-----BEGIN' line); expected the CA certificate that signed the server's certificate in PEM form`,
      }),
    );
    const keyOnly = loadTemporalProfile({ ...base, TEMPORAL_TLS_CLIENT_KEY_PATH: join(dir, 'client.key') });
    expect(() => temporalConnectOptions(keyOnly, 'h:1')).toThrow(
      expect.objectContaining({
        code: 'config_invalid',
        message:
          'TEMPORAL_TLS_CLIENT_KEY_PATH gives a client key without its certificate; expected both: set TEMPORAL_TLS_CLIENT_CERT_PATH too, or tls.client_cert_path in the profile',
      }),
    );
  });

  it('a file with a TOML error is config_invalid naming the file, the line and the column', () => {
    const bad = join(dir, 'bad.toml');
    writeFileSync(bad, '[profile.x]\naddress = \n');
    expect(() => loadTemporalProfile({ ...base, TEMPORAL_CONFIG_FILE: bad })).toThrow(
      expect.objectContaining({
        code: 'config_invalid',
        message: expect.stringMatching(
          new RegExp(`^TEMPORAL_CONFIG_FILE '${bad}' cannot be used \\(profile 'default'\\): .+ at line 2, column \\d+; expected`),
        ),
      }),
    );
  });
});
