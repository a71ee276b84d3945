// `ttd ui` against a DNS-rebinding page and a hostile page: a foreign Host header is refused, every response carries a
// strict Content-Security-Policy and its companions, binding beyond loopback warns, and chromium shows every page with
// no policy violation. The real CLI on a real (empty) store; nothing is mocked.
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, launchChromium, repoRoot, runTtd, tempDir, testEnv } from '../helpers';

interface Ui {
  child: ChildProcess;
  port: number;
  stdout: string;
  stderr: string;
}

/** Starts `ttd ui` with these arguments; resolves once it prints its address. */
async function startUi(env: Record<string, string | undefined>, args: string[]): Promise<Ui> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'ui', '--port', String(port), ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ui: Ui = { child, port, stdout: '', stderr: '' };
  child.stderr!.on('data', (d) => (ui.stderr += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      ui.stdout += d;
      if (/ttd ui: http:\/\/\S+\//.test(ui.stdout)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`ttd ui exited ${code}: ${ui.stdout}${ui.stderr}`)));
  });
  return ui;
}

function stopUi(ui: Ui | undefined): Promise<void> {
  if (!ui || ui.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    ui.child.once('exit', () => resolve());
    ui.child.kill('SIGTERM');
  });
}

/** A GET to 127.0.0.1:port with the Host header a browser would send for `host` (fetch cannot set Host). */
function get(port: number, host: string, path = '/'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard hardening', () => {
  const env = testEnv(tempDir(), inject('temporalAddress'));
  let ui: Ui;
  let browser: Browser | undefined;

  beforeAll(async () => {
    ui = await startUi(env, ['--allow-host', 'Dash.Example.com']);
  });
  afterAll(async () => {
    await stopUi(ui);
    await browser?.close();
  });

  it('a request whose Host is a rebinding page’s name is refused with 403 naming the host and --allow-host', async () => {
    for (const host of ['evil.example', `evil.example:${ui.port}`, `localhost.evil.example:${ui.port}`]) {
      const r = await get(ui.port, host);
      expect(r.status, host).toBe(403);
      expect(r.body).toContain(`Host &quot;${host}&quot; is not one this dashboard answers to`);
      expect(r.body).toContain('DNS rebinding');
      expect(r.body).toContain(`--allow-host ${host.split(':')[0]}`);
      expect(r.body).not.toContain('data-testid="models"');
    }
    const runs = await get(ui.port, 'evil.example', '/runs');
    expect(runs.status).toBe(403);
    expect(runs.body).not.toContain('data-testid="runs"');
  });

  it('localhost, loopback addresses and an --allow-host name are answered', async () => {
    for (const host of [`localhost:${ui.port}`, `127.0.0.1:${ui.port}`, `dash.example.com:${ui.port}`, 'DASH.example.com.']) {
      const r = await get(ui.port, host);
      expect(r.status, host).toBe(200);
      expect(r.body).toContain('data-testid="models"');
    }
    expect((await get(ui.port, 'other.example.com')).status).toBe(403);
  });

  it('every response, a refusal and a 404 included, carries the CSP, nosniff, no-referrer and no framing', async () => {
    for (const [host, path, status] of [
      [`localhost:${ui.port}`, '/', 200],
      [`localhost:${ui.port}`, '/no/such/page', 404],
      ['evil.example', '/', 403],
    ] as const) {
      const r = await get(ui.port, host, path);
      expect(r.status).toBe(status);
      const csp = String(r.headers['content-security-policy']);
      expect(csp).toMatch(
        /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]{43}='; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/,
      );
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
      expect(r.headers['x-frame-options']).toBe('DENY');
      expect(r.body).toContain('<meta http-equiv="Content-Security-Policy"');
    }
  });

  it('chromium shows the pages with no CSP violation, and would report one (an injected inline style)', async () => {
    browser = await launchChromium();
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && !m.text().includes('404') && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    await page.addInitScript(() =>
      document.addEventListener('securitypolicyviolation', (e) => console.error(`csp violation: ${e.violatedDirective} ${e.blockedURI}`)),
    );
    const base = `http://localhost:${ui.port}`;
    for (const path of ['/', '/runs', '/models/no-such-model', '/no/such/page']) {
      await page.goto(`${base}${path}`);
      // The stylesheet applied: the nav is laid out by it (flex), which a blocked <style> would leave as a block.
      await expect(page.locator('nav.top').evaluate((n) => getComputedStyle(n).display)).resolves.toBe('flex');
    }
    expect(problems).toEqual([]);
    // The listener is live: a style the policy does not name is refused and reported.
    await page.evaluate(() =>
      document.head.appendChild(Object.assign(document.createElement('style'), { textContent: 'body{color:red}' })),
    );
    await expect.poll(() => problems.join('\n')).toContain('csp violation: style-src');
    await page.close();
  });

  it('bound beyond loopback it warns on stderr; on loopback it does not', async () => {
    expect(ui.stderr).not.toContain('warning');
    const wide = await startUi(env, ['--host', '0.0.0.0']);
    try {
      await expect
        .poll(() => wide.stderr)
        .toContain(
          `ttd ui: warning: listening on every network interface (0.0.0.0): anyone who can reach port ${wide.port} can read every model, version, audit record and run report; there is no login`,
        );
      expect((await get(wide.port, 'evil.example')).status).toBe(403);
    } finally {
      await stopUi(wide);
    }
  });

  it('an --allow-host that is not a host name is refused with argument_invalid before anything listens', async () => {
    const r = await runTtd(['ui', '--port', String(await freePort()), '--allow-host', 'http://dash.example.com'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'ttd: --allow-host "http://dash.example.com" is not a host name; expected a DNS name such as dashboard.example.com (no port, no scheme) [argument_invalid]',
    );
    expect(r.stdout).toBe('');
  });
});
