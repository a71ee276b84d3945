// Which Host headers the dashboard answers: IP addresses, localhost, the bound name and --allow-host names; a
// DNS-rebinding page's own name never.
import { describe, expect, it } from 'vitest';
import { allowedHostArgument, hostAllowed, hostOf, isLoopback } from '../../lib/allowed-hosts';

describe('dashboard Host allowlist', () => {
  it('hostOf takes the host from name, name:port, IPv4:port and [IPv6]:port, lower-cased, trailing dot dropped', () => {
    expect(hostOf('localhost:8780')).toBe('localhost');
    expect(hostOf('LocalHost.')).toBe('localhost');
    expect(hostOf('127.0.0.1:8780')).toBe('127.0.0.1');
    expect(hostOf('[::1]:8780')).toBe('::1');
    expect(hostOf('Dash.Example.COM')).toBe('dash.example.com');
  });

  it('hostOf refuses what is not a host: absent, empty, a path, a user, a bad port, bare IPv6, a bracketed name', () => {
    for (const bad of [undefined, '', 'evil.example/x', 'user@evil.example', 'evil.example:port', '::1', '[evil.example]', 'a b', 'a..b']) {
      expect(hostOf(bad), String(bad)).toBeUndefined();
    }
  });

  it('a rebinding page names itself: evil.example is refused whatever the port, on loopback and on 0.0.0.0', () => {
    expect(hostAllowed('evil.example', '127.0.0.1', [])).toBe(false);
    expect(hostAllowed('evil.example:8780', '0.0.0.0', [])).toBe(false);
    expect(hostAllowed('localhost.evil.example', '127.0.0.1', [])).toBe(false);
    expect(hostAllowed('sub.localhost', '127.0.0.1', [])).toBe(false);
    expect(hostAllowed(undefined, '127.0.0.1', [])).toBe(false);
  });

  it('IP addresses, localhost, the bound name and --allow-host names are answered', () => {
    for (const h of ['127.0.0.1:8780', '[::1]:8780', 'localhost:8780', '10.1.2.3:8780', '[fe80::1]'])
      expect(hostAllowed(h, '127.0.0.1', [])).toBe(true);
    expect(hostAllowed('dash.internal:8780', 'dash.internal', [])).toBe(true);
    expect(hostAllowed('Dash.Example.com.', '0.0.0.0', ['dash.example.com'])).toBe(true);
    expect(hostAllowed('other.example.com', '0.0.0.0', ['dash.example.com'])).toBe(false);
  });

  it('isLoopback knows localhost, 127.0.0.0/8 and ::1, and nothing else', () => {
    for (const h of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', 'dash.example.com', '128.0.0.1']) expect(isLoopback(h), h).toBe(false);
  });

  it('--allow-host takes a DNS name or an address, and refuses a URL or a port with argument_invalid', () => {
    expect(allowedHostArgument('Dash.Example.com.')).toBe('dash.example.com');
    expect(allowedHostArgument('[::1]')).toBe('::1');
    for (const bad of ['http://dash.example.com', 'dash.example.com:8780', '', '*.example.com']) {
      expect(() => allowedHostArgument(bad)).toThrow(
        expect.objectContaining({
          code: 'argument_invalid',
          message: expect.stringContaining(`--allow-host ${JSON.stringify(bad)} is not a host name`),
        }),
      );
    }
  });
});
