// The Content-Security-Policy of the report and the dashboard pages: declared before anything it governs, naming the
// page's one stylesheet by the hash of its exact text, and allowing nothing else.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DASHBOARD_POLICY, PAGE_POLICY } from '../../render/html';
import { renderReport } from '../../render/report-html';
import { errorPage, modelsPage, runsPage } from '../../render/ui-html';

const pages = {
  models: modelsPage([]),
  runs: runsPage(null),
  error: errorPage(404, 'no page'),
  report: renderReport({
    runId: 'r-1',
    model: 'seed-mlp',
    status: 'failed',
    version: null,
    digest: null,
    alias: null,
    trigger: 'manual',
    commit: null,
    actor: 'x',
    startedAt: null,
    closedAt: null,
    approval: null,
    attempts: null,
    gates: [],
    timings: [],
    training: null,
    optimize: null,
    fusion: null,
    parity: null,
    temporalUrl: null,
    source: 'temporal',
    generatedAt: '2025-01-02T04:00:00.000Z',
  }),
};

describe('page policy', () => {
  it('allows no script, no load and no form, and names the one stylesheet by its sha256', () => {
    expect(PAGE_POLICY).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]{43}='; base-uri 'none'; form-action 'none'$/);
    expect(DASHBOARD_POLICY).toBe(`${PAGE_POLICY}; frame-ancestors 'none'`);
  });

  for (const [name, html] of Object.entries(pages)) {
    it(`the ${name} page declares the policy before its stylesheet, and the hash is that of the stylesheet's text`, () => {
      const meta = html.indexOf('<meta http-equiv="Content-Security-Policy"');
      const style = /<style>([\s\S]*?)<\/style>/.exec(html)!;
      expect(meta).toBeGreaterThan(-1);
      expect(meta).toBeLessThan(style.index);
      expect(html.match(/<style>/g)).toHaveLength(1);
      expect(html).not.toMatch(/\sstyle=|<script|\son[a-z]+=/i); // no inline style attribute or handler the hash cannot cover
      const hash = createHash('sha256').update(style[1]).digest('base64');
      expect(html.slice(meta, style.index)).toContain(`style-src &#39;sha256-${hash}&#39;`);
    });
  }
});
