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

const CARD_USE = 'Demos of <b>ttd</b> | not production\n# not a heading';
const CARD_LIMITATION = '<script>alert(1)</script> | a cell break\n| forged | row |';

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
        quickSeedSpec('dash-seed', {
          train: { epochs: 3, batch_size: 32, lr: 0.01, seed: 0 },
          // What its author says, hostile on purpose: the card must show it as text, in a terminal, Markdown and HTML.
          card: { intended_use: CARD_USE, limitations: [CARD_LIMITATION, 'toy data: 1000 rows'], owners: ['ml-team@example.com'] },
        }),
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

  it('ttd card shows the promoted version with every gate and parity row of its record, and its author’s words escaped', async () => {
    const md = await runTtd(['card', 'dash-seed@production'], env);
    expect(md.code, md.stderr).toBe(0);
    const show = JSON.parse((await runTtd(['show', 'dash-seed@production', '--json'], env)).stdout) as {
      gates: { gate: string }[];
      reports: { parity: { runtimes: { runtime: string; format?: string }[] } };
    };
    const lines = md.stdout.split('\n');
    const gates = md.stdout.slice(md.stdout.indexOf('## Gates'), md.stdout.indexOf('### Evidence')).split('\n');
    expect(gates.filter((l) => /^\| `[a-z]+` \| (passed|\*\*FAILED\*\*) \|/.test(l)).map((l) => /`([a-z]+)`/.exec(l)![1])).toEqual(
      show.gates.map((g) => g.gate),
    );
    const parity = md.stdout.slice(md.stdout.indexOf('## Parity'), md.stdout.indexOf('## Approvals')).split('\n');
    const rows = parity.filter((l) => /^\| `(torchscript|aoti|onnx)` \| `/.test(l));
    expect(rows).toHaveLength(show.reports.parity.runtimes.length);
    expect(rows.length).toBe(promoted.parity!.length);
    show.reports.parity.runtimes.forEach((p, i) =>
      expect(rows[i]).toMatch(new RegExp(`^\\| \`${p.format ?? 'torchscript'}\` \\| \`${p.runtime}\` \\|.*\\| agrees \\|$`)),
    );
    // The author's words are text: no HTML, no heading, no extra table row.
    expect(md.stdout).toContain('Demos of \\<b\\>ttd\\</b\\> \\| not production # not a heading');
    expect(md.stdout).toContain('\\<script\\>alert(1)\\</script\\> \\| a cell break \\| forged \\| row \\|');
    expect(lines.some((l) => l.startsWith('# not a heading') || l.startsWith('| forged'))).toBe(false);
    expect(md.stdout).toContain(`| 1 |`); // the promotion's audit record
    expect(md.stdout).toContain(promoted.runId);

    const json = JSON.parse((await runTtd(['card', 'dash-seed:1', '--json'], env)).stdout) as {
      format: string;
      gates: { gate: string; evidence: unknown[] }[];
      parity: { rows: unknown[] };
      author: { intendedUse: string; limitations: string[] };
      audit: { verified: boolean; records: { action: string }[] };
    };
    expect(json.format).toBe('ttd-model-card/1');
    expect(json.gates.map((g) => g.gate)).toEqual(show.gates.map((g) => g.gate));
    for (const g of json.gates.filter((x) => x.gate !== 'promotion')) expect(g.evidence.length, g.gate).toBeGreaterThan(0);
    expect(json.parity.rows).toHaveLength(promoted.parity!.length);
    expect(json.author.intendedUse).toBe(CARD_USE); // --json gives the exact string
    expect(json.author.limitations[0]).toBe(CARD_LIMITATION);
    expect(json.audit.verified).toBe(true);
    expect(json.audit.records.map((r) => r.action)).toEqual(['promote']);

    const unknown = await runTtd(['card', 'dash-seed@staging', '--json'], env);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout).error).toEqual({
      code: 'alias_not_found',
      message: "model 'dash-seed' has no alias 'staging' (aliases: 'production')",
    });
  });

  it('links each version to its card page, which renders the card under the CSP', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = await policyProblems(page);
    await page.goto(`${base}models/dash-seed`);
    await page.getByTestId('version-card-1').click();
    await page.waitForURL(/\/versions\/1\/card$/);
    await expect(page.getByTestId('card-digest').textContent()).resolves.toBe(promoted.digest!);
    await expect(page.getByTestId('card-gates').locator('tbody tr').count()).resolves.toBe(promoted.gates.length);
    await expect(page.getByTestId('card-parity').locator('tbody tr').count()).resolves.toBe(promoted.parity!.length);
    await expect(page.getByTestId('card-author').textContent()).resolves.toContain('<script>alert(1)</script> | a cell break');
    await expect(page.getByTestId('card-author').locator('script, b').count()).resolves.toBe(0);
    await expect(page.getByTestId('card-metrics').locator('circle').count()).resolves.toBe(3);
    await expect(page.getByTestId('card-audit-verdict').textContent()).resolves.toContain('verifies');
    await shot(page, 'dashboard-card');
    // The version's report shows the card in brief and links back to it.
    await page.getByTestId('card-report-link').click();
    await page.waitForURL(/\/versions\/1\/report$/);
    await expect(page.getByTestId('model-card').textContent()).resolves.toContain('ml-team@example.com');
    await page.getByTestId('card-link').click();
    await page.waitForURL(/\/versions\/1\/card$/);
    expect(problems).toEqual([]);
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
