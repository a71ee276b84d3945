// Which Host headers the dashboard answers: a defence against DNS rebinding, where a page on another site points
// its own name at 127.0.0.1 and reads the dashboard as if it were same-origin. That page's requests carry its name.
import { isIP } from 'node:net';
import { ErrorCode, TtdError } from './contract/errors';

/** A DNS name: labels of letters, digits and hyphens, separated by dots. */
const HOST_NAME_RE = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The host of a Host header (`name`, `name:port`, `1.2.3.4:port`, `[::1]:port`): lower-case, brackets and a trailing
 * dot dropped; undefined when the header is absent or is not a host. */
export function hostOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/i.exec(header.trim());
  if (!m) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? m[1].toLowerCase() : undefined;
  const host = m[2].toLowerCase().replace(/\.$/, '');
  return isIP(host) || HOST_NAME_RE.test(host) ? host : undefined;
}

/** Whether an address or name to bind stays on this machine: `localhost`, 127.0.0.0/8 or ::1. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** An `--allow-host` value, checked and normalised: a DNS name or an IP address. */
export function allowedHostArgument(value: string): string {
  const host = value
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  if (!isIP(host) && !HOST_NAME_RE.test(host)) {
    throw new TtdError(
      ErrorCode.argumentInvalid,
      `--allow-host ${JSON.stringify(value)} is not a host name; expected a DNS name such as dashboard.example.com (no port, no scheme)`,
    );
  }
  return host;
}

/** Whether a request's Host header names this dashboard: an IP address (a page elsewhere cannot make a browser send
 * one for a name it controls, so a rebinding page never does), `localhost`, the host it was bound to, or a name
 * allowed with --allow-host. */
export function hostAllowed(header: string | undefined, bound: string, allowed: readonly string[]): boolean {
  const host = hostOf(header);
  if (host === undefined) return false;
  return isIP(host) !== 0 || host === 'localhost' || host === bound.toLowerCase().replace(/\.$/, '') || allowed.includes(host);
}
