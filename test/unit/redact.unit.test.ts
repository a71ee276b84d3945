// Redaction of the worker's secrets (lib/environments/redact.ts), on explicit environments (no process.env).
import { describe, expect, it } from 'vitest';
import { redact, redactDeep, secretValues } from '../../lib/environments/redact';

const env = {
  AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
  GITHUB_TOKEN: 'ghp_0123456789abcdef',
  DB_PASSWORD: 'hunter2hunter2',
  SIGNING_KEY: 'k3y-material-123',
  GOOGLE_APPLICATION_CREDENTIALS: '/etc/gcp/creds.json',
  PATH: '/usr/bin:/bin',
  TTD_HOME: '/srv/ttd',
  SHORT_TOKEN: 'abc',
};

describe('redact', () => {
  it('redact replaces every secret value with its variable name, wherever it appears', () => {
    const text = `KeyError: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY at AKIAIOSFODNN7EXAMPLE; again wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`;
    expect(redact(text, env)).toBe(
      'KeyError: [redacted AWS_SECRET_ACCESS_KEY] at [redacted AWS_ACCESS_KEY_ID]; again [redacted AWS_SECRET_ACCESS_KEY]',
    );
    expect(redact('token ghp_0123456789abcdef pw hunter2hunter2 key k3y-material-123 file /etc/gcp/creds.json', env)).toBe(
      'token [redacted GITHUB_TOKEN] pw [redacted DB_PASSWORD] key [redacted SIGNING_KEY] file [redacted GOOGLE_APPLICATION_CREDENTIALS]',
    );
  });

  it('redact leaves values of ordinary variables and very short secrets as they are', () => {
    expect(redact('PATH is /usr/bin:/bin, home /srv/ttd, abc', env)).toBe('PATH is /usr/bin:/bin, home /srv/ttd, abc');
    expect(secretValues(env).map(([, name]) => name)).not.toContain('SHORT_TOKEN');
    expect(secretValues(env).map(([, name]) => name)).not.toContain('PATH');
  });

  it("Temporal's API key and client key material are secrets too", () => {
    const temporal = { TEMPORAL_API_KEY: 'tmprl-api-key-0123', TEMPORAL_TLS_CLIENT_KEY_DATA: '-----BEGIN PRIVATE KEY-----MIIEv' };
    expect(redact('key tmprl-api-key-0123 and -----BEGIN PRIVATE KEY-----MIIEv', temporal)).toBe(
      'key [redacted TEMPORAL_API_KEY] and [redacted TEMPORAL_TLS_CLIENT_KEY_DATA]',
    );
  });

  it('redact replaces the longer of two overlapping secrets first', () => {
    const nested = { OUTER_SECRET: 'abcdef-123456', INNER_TOKEN: 'abcdef' };
    expect(redact('x abcdef-123456 y abcdef', nested)).toBe('x [redacted OUTER_SECRET] y [redacted INNER_TOKEN]');
  });

  it('redactDeep redacts every string of a result and keeps its shape and other values', () => {
    const result = { passed: false, message: 'saw hunter2hunter2', cases: [{ error: 'ghp_0123456789abcdef', max: 1.5 }], n: null };
    expect(redactDeep(result, env)).toEqual({
      passed: false,
      message: 'saw [redacted DB_PASSWORD]',
      cases: [{ error: '[redacted GITHUB_TOKEN]', max: 1.5 }],
      n: null,
    });
  });
});
