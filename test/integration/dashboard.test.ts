// What people see: `ttd report` (one self-contained HTML file) and `ttd ui` (a read-only dashboard), checked in
// Debian's real chromium driven by playwright-core. Screenshots go to test-output/screenshots/.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import {
  fixtureModels,
  freePort,
  launchChromium,
  screenshotDir,
  quickSeedSpec,
  repoRoot,
  runTtd,
  seedDir,
  tempDir,
  testEnv,
  writeSpec,
} from '../helpers';

describe('report and dashboard in a real browser', () => {
  const home = tempDir();
  const env = testEnv(home, inject('temporalAddress'));
  let promoted: RunResult;
  let rejected: RunResult;
  let browser: Browser;
  let ui: ChildProcess | undefined;
  let base: string;

  const run = async (spec: string) => {
    const r = await runTtd(['run', spec, '--json'], env);
    return JSON.parse(r.stdout) as RunResult;
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
  /** Collects every Content-Security-Policy violation and console error of a page (a 404's load error aside). */
  const policyProblems = async (page: Page) => {
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && !m.text().includes('404') && problems.push(m.text()));
    await page.addInitScript(() =>
      document.addEventListener('securitypolicyviolation', (e) => console.error(`csp violation: ${e.violatedDirective}`)),
    );
    return problems;
  };

  beforeAll(async () => {
    mkdirSync(screenshotDir, { recursive: true });
    promoted = await run(
      writeSpec(
        tempDir(),
        quickSeedSpec('dash-seed', { train: { epochs: 3, batch_size: 32, lr: 0.01, seed: 0 } }),
        join(seedDir, 'model.py'),
      ),
    );
    rejected = await run(
      writeSpec(
        tempDir(),
        { name: 'dash-branchy', train: { epochs: 2, batch_size: 32 } },
        join(fixtureModels, 'control_flow_divergence-if-sum.py'),
      ),
    );
    browser = await launchChromium();
    const port = await freePort();
    ui = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'ui', '--port', String(port)], {
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    base = await new Promise<string>((resolve, reject) => {
      let out = '';
      ui!.stdout!.on('data', (d) => {
        out += d;
        const m = /ttd ui: (http:\/\/\S+\/)/.exec(out);
        if (m) resolve(m[1]);
      });
      ui!.on('exit', (code) => reject(new Error(`ttd ui exited ${code}: ${out}`)));
    });
  }, 300_000);

  afterAll(async () => {
    ui?.kill('SIGTERM');
    await browser?.close();
  });

  it('ran one promoted and one rejected pipeline to look at', () => {
    expect(promoted.status).toBe('promoted');
    expect(rejected.status).toBe('rejected');
  });

  it('serves on the loopback address only, read-only', async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const post = await fetch(base, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect((await fetch(`${base}no/such/page`)).status).toBe(404);
    expect((await fetch(`${base}models/no-such-model`)).status).toBe(404);
  });

  it('goes from the models list to a model, its version and the version report', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = await policyProblems(page);
    await page.goto(base);
    await expect(page.getByTestId('models').textContent()).resolves.toContain('dash-seed');
    await shot(page, 'dashboard-models');

    await page.getByTestId('model-link-dash-seed').click();
    await page.waitForURL(/\/models\/dash-seed$/);
    const row = page.getByTestId('version-1');
    await expect(row.textContent()).resolves.toContain('production');
    await expect(row.innerHTML()).resolves.toContain(promoted.digest!);
    await expect(page.getByTestId('aliases').textContent()).resolves.toContain('production');
    await expect(page.getByTestId('alias-history').textContent()).resolves.toContain(promoted.runId);
    await shot(page, 'dashboard-model');

    await page.getByTestId('version-report-1').click();
    await page.waitForURL(/\/versions\/1\/report$/);
    await expect(page.getByTestId('status').textContent()).resolves.toContain('promoted');
    await expect(page.getByTestId('digest').textContent()).resolves.toContain(promoted.digest!);
    // One point per epoch on the loss curve; every gate of the run with its verdict.
    await expect(page.getByTestId('loss-curve').locator('circle').count()).resolves.toBe(3);
    for (const g of promoted.gates) await expect(page.getByTestId(`gate-${g.gate}`).textContent()).resolves.toContain('passed');
    // The parity table: one serving run per runtime, each with a histogram of its errors.
    for (const p of promoted.parity!) {
      const id = `histogram-${p.runtime}-fuser-${p.flags.fuser ? 'on' : 'off'}`;
      await expect(page.getByTestId(id).count()).resolves.toBe(1);
    }
    await expect(page.getByTestId('parity-table').textContent()).resolves.toContain('libtorch');
    await expect(page.getByTestId('timings').textContent()).resolves.toContain('parity');
    await shot(page, 'dashboard-version-report');
    expect(problems).toEqual([]); // every page, the report with its SVG charts included, kept to the CSP
    await page.close();
  });

  it('shows the audit log with its chain verdict', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${base}models/dash-seed`);
    await page.getByTestId('audit-link').click();
    await page.waitForURL(/\/audit$/);
    await expect(page.getByTestId('audit-verdict').textContent()).resolves.toContain('chain intact');
    const audit = await page.getByTestId('audit').textContent();
    expect(audit).toContain('promote');
    expect(audit).toContain(promoted.runId);
    await shot(page, 'dashboard-audit');
    await page.close();
  });

  it('lists recent runs with their status and opens a rejected run’s report', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${base}runs`);
    const runs = page.getByTestId('runs');
    await expect(runs.textContent()).resolves.toContain(promoted.runId);
    await expect(page.getByTestId(`run-${rejected.runId}`).textContent()).resolves.toContain('rejected');
    await expect(page.getByTestId(`run-${promoted.runId}`).textContent()).resolves.toContain('promoted');
    await shot(page, 'dashboard-runs');
    await page.getByRole('link', { name: rejected.runId }).click();
    await page.waitForURL(/\/report$/);
    await expect(page.getByTestId('status').textContent()).resolves.toContain('rejected');
    const trace = await page.getByTestId('gate-trace').textContent();
    expect(trace).toContain('FAILED');
    expect(trace).toContain('control_flow_divergence');
    // Parity never ran: the report says so rather than leaving the section out.
    await expect(page.getByTestId('parity-table').textContent()).resolves.toContain('not reached in this run');
    await expect(page.getByTestId('parity-table').locator('table').count()).resolves.toBe(0);
    await shot(page, 'dashboard-rejected-report');
    await page.close();
  });

  it('writes a run report that renders with the network off, and refuses a missing directory', async () => {
    const out = join(tempDir(), 'report.html');
    const r = await runTtd(['report', promoted.runId, '-o', out], env);
    expect(r.code, r.stderr).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toMatch(/<script|<link|src="https?:/i);
    const context = await browser.newContext({ offline: true, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems = await policyProblems(page);
    const failed: string[] = [];
    page.on('requestfailed', (req) => failed.push(req.url()));
    await page.goto(`file://${out}`);
    await expect(page.getByTestId('loss-curve').locator('circle').count()).resolves.toBe(3);
    await expect(page.getByTestId('digest').textContent()).resolves.toContain(promoted.digest!);
    await page.getByTestId('ir-after').locator('summary').click();
    await expect(page.getByTestId('ir-after').textContent()).resolves.toContain('graph');
    expect(failed).toEqual([]);
    expect(problems).toEqual([]); // the file's own CSP (a meta tag) allows its stylesheet and nothing else
    await shot(page, 'report');
    await context.close();

    const bad = await runTtd(['report', promoted.runId, '-o', join(home, 'no', 'such', 'dir', 'r.html'), '--json'], env);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).error.code).toBe('output_invalid');
    const unknown = await runTtd(['report', 'no-such-run', '--json'], env);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout).error).toMatchObject({ code: 'run_not_found' });
  });
});
