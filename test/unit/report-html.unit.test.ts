// The run report and dashboard pages, rendered from hand-built data: sections, escaping, empty states, no network loads.
import { describe, expect, it } from 'vitest';
import type { AuditRecord, TrailVerdict } from '../../lib/registry/audit';
import { esc } from '../../render/html';
import { histogramLabels, type ReportData } from '../../lib/parity/report';
import { renderReport } from '../../render/report-html';
import type { ParityRuntimeReport } from '../../lib/contract/results';
import { auditPage, errorPage, layout, modelPage, modelsPage, runsPage, type ModelDetail } from '../../render/ui-html';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const TEMPORAL_URL = 'http://localhost:8233/namespaces/default/workflows/ttd-seed-mlp-1/run-1/history';
const EVIL = '<script>alert("x")</script>';

function runtime(rt: 'python' | 'libtorch', fuser: boolean, passed = true): ParityRuntimeReport {
  return {
    runtime: rt,
    passed,
    code: passed ? null : 'tolerance_exceeded',
    max_abs_error: passed ? 2.384185791015625e-7 : 0.012,
    max_rel_error: passed ? 1.1e-6 : 0.005,
    flags: { fuser },
    torch_version: '2.5.1',
    threads: 1,
    ms: 431.7,
    message: passed ? `${rt}: agrees` : `${rt}: output 'validation/output/0' differs by up to 1.20e-2`,
    outputs: [
      {
        name: 'validation/output/0',
        passed,
        code: passed ? null : 'tolerance_exceeded',
        max_abs_error: 2.4e-7,
        max_rel_error: 1e-6,
        elements: 640,
      },
      { name: 'validation/output/1', passed: true, code: null, max_abs_error: 0, max_rel_error: 0, elements: 64 },
    ],
    histogram: [500, 0, 0, 3, 40, 100, 61, 0, 0, 0, 0, 0, 0],
  };
}

function fixture(): ReportData {
  return {
    runId: 'ttd-seed-mlp-1',
    model: 'seed-mlp',
    status: 'rejected',
    version: 3,
    digest: DIGEST,
    alias: 'production',
    trigger: 'ci',
    commit: '0123456789abcdef0123456789abcdef01234567',
    actor: 'ci-bot',
    startedAt: '2025-01-02T03:04:05.678Z',
    closedAt: '2025-01-02T03:05:10.000Z',
    approval: { by: 'alice', reason: 'looks <good>' },
    attempts: { attempts: 2, resumedFromEpoch: 7 },
    gates: [
      { gate: 'training', passed: true, code: null, message: 'final loss 0.12', warnings: ['loss rose at epoch 4'] },
      { gate: 'trace', passed: true, code: null, message: 'traced' },
      { gate: 'parity', passed: false, code: 'tolerance_exceeded', message: `libtorch differs\nsecond line ${EVIL}` },
    ],
    timings: [
      { stage: 'train', ms: 12000 },
      { stage: 'trace', ms: 800, cached: true },
      { stage: 'parity', ms: 0 },
    ],
    training: { losses: [1, 0.8, 0.6, 0.5, 0.42, 0.35, 0.3, 0.25, 0.2, 0.12], epochs: 10, rows: 1000 },
    optimize: {
      method: 'freeze+optimize_for_inference',
      irBefore: 'graph(%self : __torch__.Model,\n      %x : Tensor):\n  %y : Tensor = aten::relu(%x) # <b>',
      irAfter: null,
      nodeTotalBefore: 42,
      nodeTotalAfter: 30,
      maxAbsError: 0,
    },
    fusion: {
      require: 'any',
      groups: [{ kind: 'prim::TensorExprGroup', ops: ['aten::mul', 'aten::add', 'aten::relu'] }],
      unfusedPointwise: ['aten::sigmoid'],
      flags: { texpr_fuser_enabled: true, fusion_strategy: [['STATIC', 2]] },
      torchVersion: '2.5.1',
      maxAbsError: 1.5e-7,
    },
    parity: {
      atol: 1e-5,
      rtol: 1e-4,
      runtimes: [runtime('python', false), runtime('python', true), runtime('libtorch', false), runtime('libtorch', true, false)],
    },
    temporalUrl: TEMPORAL_URL,
    source: 'temporal',
    generatedAt: '2025-01-02T04:00:00.000Z',
  };
}

/** The part of the page inside the element with this data-testid, up to its closing tag (sections do not nest in themselves). */
function part(html: string, testId: string): string {
  const start = html.indexOf(`data-testid="${testId}"`);
  expect(start, `data-testid="${testId}" is on the page`).toBeGreaterThan(-1);
  const open = html.lastIndexOf('<', start);
  const tag = /^<([a-z0-9]+)/.exec(html.slice(open))![1];
  const end = html.indexOf(`</${tag}>`, start);
  return html.slice(open, end === -1 ? undefined : end + tag.length + 3);
}

/** Asserts that a page loads nothing: no scripts, no stylesheets, no http(s) address but the allowed ones. */
function expectSelfContained(html: string, allowed: string[] = []): void {
  expect(html).not.toMatch(/<script/i);
  expect(html).not.toMatch(/<link/i);
  expect(html).not.toMatch(/\ssrc=/i);
  expect(html).not.toMatch(/@import|url\(/i);
  const urls = [...html.matchAll(/https?:\/\/[^"'\s<>)]+/g)].map((m) => m[0]);
  const xmlns = 'http://www.w3.org/2000/svg';
  expect(urls.filter((u) => u !== xmlns && !allowed.includes(u))).toEqual([]);
}

describe('run report', () => {
  it('parity lines of each format and of a deploy target in another environment get rows of their own', () => {
    const own = { environment: 'torch-2.13' };
    const html = renderReport({
      ...fixture(),
      parity: {
        atol: 1e-5,
        rtol: 1e-4,
        runtimes: [
          { ...runtime('python', false), ...own, format: 'torchscript' },
          { ...runtime('python', false), ...own, format: 'aoti' },
          { ...runtime('libtorch', false), environment: 'torch-1.13', format: 'torchscript' },
        ],
      },
    });
    expect(part(html, 'parity-python@torch-2.13-fuser-off')).toContain('torchscript');
    expect(part(html, 'parity-aoti-python@torch-2.13-fuser-off')).toContain('aoti');
    expect(part(html, 'parity-libtorch@torch-1.13-fuser-off')).toContain('torch-1.13');
    expect(part(html, 'runtime-aoti-python@torch-2.13-fuser-off')).toContain('python · aoti · torch-2.13');
  });

  it('ONNX parity lines are keyed and shown by graph optimisation level and ONNX Runtime version, not a fuser', () => {
    const onnx = (level: 'disabled' | 'all'): ParityRuntimeReport => ({
      ...runtime('python', false),
      runtime: 'onnxruntime-node',
      format: 'onnx',
      flags: { fuser: false, graph_optimization: level },
      torch_version: null,
      onnxruntime_version: '1.30.0',
      execution_provider: 'CPUExecutionProvider',
    });
    const html = renderReport({ ...fixture(), parity: { atol: 1e-5, rtol: 1e-4, runtimes: [onnx('disabled'), onnx('all')] } });
    expect(part(html, 'parity-onnx-onnxruntime-node-graph-opt-all')).toContain('graph opt all');
    expect(part(html, 'parity-onnx-onnxruntime-node-graph-opt-disabled')).toContain('onnxruntime 1.30.0');
  });

  it('a gate that failed on numbers shows its first diverging operator, escaped, with both sides values', () => {
    const html = renderReport({
      ...fixture(),
      gates: [
        {
          gate: 'onnx',
          passed: false,
          code: 'onnx_divergence',
          message: 'the ONNX model and eager differ',
          divergence: {
            case: 'validation',
            node: EVIL,
            op: 'Where (aten.atan2.default)',
            module: 'head.0',
            location: 'model.py:22',
            max_abs_error: 3.14159,
            eager: [3.14159, null],
            artifact: [0, 0],
            compared: 4,
          },
        },
      ],
    });
    const block = part(html, 'divergence-onnx');
    expect(block).toContain('Where (aten.atan2.default)');
    expect(block).toContain('model.py:22');
    expect(block).toContain('head.0');
    expect(block).toContain('3.14159, nan/inf');
    expect(block).not.toContain('<script>');
  });

  it('a stage without a section of its own is shown from its output: scalars, list sizes and stored files, escaped', () => {
    const html = renderReport({
      ...fixture(),
      stages: {
        export: { passed: true, code: null, message: '<b>exported</b>', dynamic_dims: ['batch'], files: { program: 'sha256:ab' } },
      },
    });
    const stage = part(html, 'stage-export');
    expect(stage).toContain('&lt;b&gt;exported&lt;/b&gt;');
    expect(stage).toContain('1 entry');
    expect(stage).toContain('file program');
    expect(stage).toContain('sha256:ab');
    expect(part(renderReport(fixture()), 'stages')).toContain('no stage outputs recorded');
  });

  it('a full report has every section and header fact', () => {
    const html = renderReport(fixture());
    expect(html).toContain('alice (looks &lt;good&gt;)');
    expect(html).toContain('2 (resumed from the checkpoint of epoch 7)');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    for (const id of [
      'header',
      'status',
      'digest',
      'temporal-link',
      'loss-curve',
      'gates',
      'gate-training',
      'gate-trace',
      'gate-parity',
      'timings',
      'ir',
      'ir-before',
      'ir-after',
      'fusion-groups',
      'parity-table',
      'histogram-python-fuser-off',
      'histogram-python-fuser-on',
      'histogram-libtorch-fuser-off',
      'histogram-libtorch-fuser-on',
    ]) {
      expect(html).toContain(`data-testid="${id}"`);
    }
    expect(part(html, 'status')).toBe('<span class="badge bad" data-testid="status">rejected</span>');
    expect(part(html, 'digest')).toContain(DIGEST);
    expect(part(html, 'temporal-link')).toContain(`href="${TEMPORAL_URL}"`);
    const header = part(html, 'header');
    for (const text of [
      'ttd-seed-mlp-1',
      'v3',
      'production',
      'ci-bot',
      '0123456789abcdef0123456789abcdef01234567',
      'from the run&#39;s workflow history',
    ]) {
      expect(header).toContain(text);
    }
  });

  it('a promoted run has a green status badge and an unknown status a grey one', () => {
    expect(part(renderReport({ ...fixture(), status: 'promoted' }), 'status')).toContain('badge ok');
    expect(part(renderReport({ ...fixture(), status: 'running' }), 'status')).toContain('badge neutral');
    expect(part(renderReport({ ...fixture(), status: 'failed' }), 'status')).toContain('badge bad');
  });

  it('a report loads nothing from the network and links only to the Temporal UI', () => {
    const html = renderReport(fixture());
    expectSelfContained(html, [TEMPORAL_URL]);
    expect([...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1])).toEqual([TEMPORAL_URL]);
    expect(html).toContain('<style>');
  });

  it('a report without a Temporal address has no link, and a non-http address is not made a link', () => {
    expect(renderReport({ ...fixture(), temporalUrl: null })).not.toContain('temporal-link');
    const js = renderReport({ ...fixture(), temporalUrl: 'javascript:alert(1)' });
    expect(js).not.toContain('href="javascript:');
  });

  it('strings from the data are escaped: a gate message with a script tag stays text, newlines kept', () => {
    const html = renderReport({ ...fixture(), model: EVIL, runId: `run"${EVIL}` });
    expect(html).not.toContain('<script>');
    const gate = part(html, 'gate-parity');
    expect(gate).toContain('libtorch differs\nsecond line &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(gate).toContain('tolerance_exceeded');
    expect(gate).toContain('FAILED');
    expect(part(html, 'ir-before')).toContain('aten::relu(%x) # &lt;b&gt;');
    expect(part(html, 'ir-after')).toContain('not stored');
    expect(part(html, 'gate-training')).toContain('<li>loss rose at epoch 4</li>');
  });

  it('the loss curve has one polyline with a point per epoch, ticks and a tooltip per point', () => {
    const chart = part(renderReport(fixture()), 'loss-curve');
    const polylines = [...chart.matchAll(/<polyline[^>]*points="([^"]*)"/g)];
    expect(polylines).toHaveLength(1);
    expect(polylines[0][1].trim().split(/\s+/)).toHaveLength(10);
    expect(chart.match(/<circle /g)).toHaveLength(10);
    expect(chart).toContain('<title>epoch 1: 1</title>');
    expect(chart).toContain('<title>epoch 10: 0.12</title>');
    expect(chart).toContain('>epoch</text>');
    expect(chart).toContain('>loss</text>');
    for (const tick of ['0.00', '0.25', '0.50', '0.75', '1.00']) expect(chart).toContain(`>${tick}</text>`);
  });

  it('a run without losses says no training, and one loss is a single point', () => {
    const none = part(renderReport({ ...fixture(), training: { losses: [], epochs: 0, rows: null } }), 'loss-curve');
    expect(none).toContain('no training in this run');
    expect(none).not.toContain('<svg');
    const one = part(renderReport({ ...fixture(), training: { losses: [0.5], epochs: 1, rows: 10 } }), 'loss-curve');
    expect(one.match(/<circle /g)).toHaveLength(1);
    expect(one).not.toContain('<polyline');
    expect(one).not.toMatch(/NaN|Infinity/);
  });

  it('equal losses draw a flat line without NaN anywhere in the page', () => {
    for (const v of [0.3, 0, -2, 1e-9]) {
      const html = renderReport({ ...fixture(), training: { losses: [v, v, v, v], epochs: 4, rows: 10 } });
      expect(html).not.toMatch(/NaN|Infinity/);
      const ys = [...part(html, 'loss-curve').matchAll(/<circle class="point" cx="[^"]+" cy="([^"]+)"/g)].map((m) => m[1]);
      expect(new Set(ys).size).toBe(1);
    }
  });

  it('null and non-finite losses are skipped and named, breaking the line', () => {
    const losses = [1, 0.5, null, Number.NaN, 0.3, 0.2] as unknown as number[];
    const chart = part(renderReport({ ...fixture(), training: { losses, epochs: 6, rows: 10 } }), 'loss-curve');
    expect(chart.match(/<circle /g)).toHaveLength(4);
    expect(chart.match(/<polyline/g)).toHaveLength(2);
    expect(chart).toContain('2 non-finite losses not plotted (epoch 3, 4)');
    expect(chart).not.toMatch(/NaN/);
  });

  it('the histogram has one bar per bin, with its label and count', () => {
    const html = renderReport(fixture());
    const labels = histogramLabels();
    for (const r of fixture().parity!.runtimes) {
      const hist = part(html, `histogram-${r.runtime}-fuser-${r.flags.fuser ? 'on' : 'off'}`);
      expect(hist.match(/<rect /g)).toHaveLength(labels.length);
      for (const label of labels) expect(hist).toContain(`>${esc(label)}</text>`);
      expect(hist).toContain('>500</text>');
      expect(hist).toContain('over 704 compared elements');
    }
  });

  it('all-zero and absent histograms and outputs render without NaN and say why', () => {
    const rt = (over: Partial<ParityRuntimeReport>) => ({ ...runtime('python', false), ...over });
    const data = fixture();
    data.parity!.runtimes = [
      rt({ histogram: new Array(13).fill(0) }),
      rt({ flags: { fuser: true }, histogram: undefined, outputs: undefined }),
    ];
    const html = renderReport(data);
    expect(html).not.toMatch(/NaN|Infinity/);
    const zero = part(html, 'histogram-python-fuser-off');
    expect(zero.match(/<rect /g)).toHaveLength(13);
    expect(zero).toContain('all bins are zero');
    expect(part(html, 'histogram-python-fuser-on')).toContain('not recorded');
    expect(part(html, 'runtime-python-fuser-on')).toContain('per-output results not recorded');
  });

  it('the parity table has a row per runtime run with errors in exponent notation and outputs in details', () => {
    const html = renderReport(fixture());
    const table = part(html, 'parity-table');
    expect(table).toContain('1.00e-5');
    expect(table).toContain('1.00e-4');
    const row = part(html, 'parity-python-fuser-off');
    expect(row).toContain('2.38e-7');
    expect(row).toContain('agrees');
    const failed = part(html, 'parity-libtorch-fuser-on');
    expect(failed).toContain('FAILED');
    expect(failed).toContain('tolerance_exceeded');
    const outputs = part(html, 'outputs-libtorch-fuser-on');
    expect(outputs).toMatch(/^<details data-testid="outputs-libtorch-fuser-on" open>/);
    expect(outputs).toContain('validation/output/1');
    expect(outputs).toContain('<td>0</td>');
    expect(outputs).toContain('<td>640</td>');
  });

  it('timings show ms, seconds, a cached badge and a bar proportional to the longest stage', () => {
    const timings = part(renderReport(fixture()), 'timings');
    expect(part(timings, 'timing-train')).toContain('12.00');
    expect(part(timings, 'timing-trace')).toContain('cached');
    expect(part(timings, 'timing-train')).not.toContain('cached</span>');
    const widths = [...timings.matchAll(/<rect class="bar[^"]*" x="0" y="0" width="([^"]+)"/g)].map((m) => Number(m[1]));
    expect(widths).toHaveLength(3);
    expect(widths[0]).toBeGreaterThan(widths[1]);
    expect(widths[2]).toBe(0);
  });

  it('fusion lists each group with its ops, and an empty list says so', () => {
    const html = renderReport(fixture());
    const fusion = part(html, 'fusion-groups');
    expect(fusion.replace(/<\/?code>/g, '')).toContain('prim::TensorExprGroup: aten::mul, aten::add, aten::relu');
    expect(fusion).toContain('aten::sigmoid');
    expect(fusion).toContain('texpr_fuser_enabled=true');
    const none = renderReport({ ...fixture(), fusion: { ...fixture().fusion!, groups: [] } });
    expect(part(none, 'fusion-groups')).toContain('no fusion group');
  });

  it('sections a rejected run did not reach say so instead of disappearing', () => {
    const html = renderReport({ ...fixture(), training: null, optimize: null, fusion: null, parity: null, gates: [], timings: [] });
    for (const id of ['loss-curve', 'ir', 'fusion-groups', 'parity-table']) expect(part(html, id)).toContain('not reached in this run');
    expect(part(html, 'gates')).toContain('no gate reached a verdict');
    expect(html).not.toMatch(/NaN/);
  });

  it('a report from the store names its source, and a missing digest is a dash', () => {
    const html = renderReport({ ...fixture(), source: 'store', digest: null, version: null });
    expect(html).toContain('from the store&#39;s version record');
    expect(part(html, 'digest')).toContain('—');
  });
});

const RECORD_BASE: Omit<AuditRecord, 'seq' | 'prev' | 'hash' | 'action'> = {
  model: 'seed-mlp',
  version: 2,
  digest: DIGEST,
  alias: 'production',
  previousVersion: 1,
  record: null,
  runId: 'ttd-seed-mlp-2',
  actor: 'alice',
  trigger: 'manual',
  commit: null,
  checks: [
    { gate: 'training', passed: true, code: null },
    { gate: 'parity', passed: false, code: 'tolerance_exceeded' },
  ],
  approvedBy: 'bob',
  at: '2025-01-02T03:04:05Z',
};
const RECORDS: AuditRecord[] = [
  { ...RECORD_BASE, action: 'promote', seq: 1, prev: null, hash: `sha256:${'1'.repeat(64)}` },
  { ...RECORD_BASE, action: 'rollback', seq: 2, prev: `sha256:${'1'.repeat(64)}`, hash: `sha256:${'2'.repeat(64)}`, reason: EVIL },
];

describe('dashboard pages', () => {
  it('every page has the nav and loads nothing', () => {
    const detail: ModelDetail = { name: 'm', versions: [], aliases: {}, aliasHistory: [] };
    const verdict: TrailVerdict = {
      model: 'm',
      records: 0,
      problem: null,
      problems: [],
      signed: 0,
      unsigned: 0,
      anchor: null,
      attested: 0,
    };
    for (const html of [
      modelsPage([]),
      modelPage(detail),
      auditPage('m', [], verdict),
      runsPage([]),
      errorPage(404, 'x'),
      layout('t', ''),
    ]) {
      expect(html).toContain('<a href="/" data-testid="nav-models">Models</a>');
      expect(html).toContain('<a href="/runs" data-testid="nav-runs">Runs</a>');
      expectSelfContained(html);
    }
  });

  it('the models page links each model by its encoded name and shows aliases', () => {
    const html = modelsPage([
      { name: 'seed-mlp', versions: 3, latestVersion: 3, aliases: { production: 2, staging: 3 }, updatedAt: '2025-01-02T03:04:05Z' },
      { name: 'a b/<c>', versions: 0, latestVersion: null, aliases: {}, updatedAt: null },
    ]);
    expect(part(html, 'model-link-seed-mlp')).toBe('<a href="/models/seed-mlp" data-testid="model-link-seed-mlp">seed-mlp</a>');
    expect(html).toContain('href="/models/a%20b%2F%3Cc%3E"');
    expect(html).toContain('data-testid="model-link-a b/&lt;c&gt;"');
    expect(html).not.toContain('<c>');
    expect(part(html, 'model-seed-mlp')).toContain('<code>production</code> → v2');
  });

  it('an empty registry says how to fill it', () => {
    expect(part(modelsPage([]), 'models')).toContain('no models registered yet; ttd run a pipeline');
  });

  it('a model page lists versions newest first with report links, aliases and alias history', () => {
    const html = modelPage({
      name: 'seed-mlp',
      versions: [1, 2].map((v) => ({
        version: v,
        digest: DIGEST,
        status: v === 2 ? 'ready' : 'failed',
        aliases: v === 2 ? ['production'] : [],
        createdAt: '2025-01-02T03:04:05Z',
        runId: `ttd/run ${v}`,
        trigger: 'ci',
        commit: 'abcdef0123456789',
        actor: EVIL,
        formats: v === 2 ? ['torchscript', 'onnx'] : ['torchscript'],
      })),
      aliases: { production: { version: 2, digest: DIGEST, updatedAt: '2025-01-02T03:04:05Z' } },
      aliasHistory: [
        { alias: 'production', version: 2, digest: DIGEST, previousVersion: 1, at: '2025-01-02T03:04:05Z', runId: 'r2', actor: 'bob' },
      ],
    });
    expect(html).not.toContain('<script>');
    const versions = part(html, 'versions');
    expect(versions.indexOf('version-2')).toBeLessThan(versions.indexOf('version-1'));
    expect(part(html, 'version-report-2')).toContain('href="/models/seed-mlp/versions/2/report"');
    expect(part(html, 'version-card-2')).toContain('href="/models/seed-mlp/versions/2/card"');
    expect(part(html, 'version-2')).toContain(`title="${DIGEST}"`);
    expect(part(html, 'version-2')).toContain('<code>torchscript</code> <code>onnx</code>');
    expect(part(html, 'version-2')).toContain('href="/runs/ttd%2Frun%202/report"');
    expect(part(html, 'aliases')).toContain('v2');
    expect(part(html, 'alias-history')).toContain('bob');
    expect(part(html, 'audit-link')).toContain('href="/models/seed-mlp/audit"');
  });

  it('a model without versions or aliases says so', () => {
    const html = modelPage({ name: 'm', versions: [], aliases: {}, aliasHistory: [] });
    expect(part(html, 'versions')).toContain('no versions');
    expect(part(html, 'aliases')).toContain('no aliases');
    expect(part(html, 'alias-history')).toContain('no alias has moved');
  });

  it('the audit page shows an intact chain with its records and compact checks', () => {
    const html = auditPage('seed-mlp', RECORDS, {
      model: 'seed-mlp',
      records: 2,
      problem: null,
      problems: [],
      signed: 0,
      unsigned: 2,
      anchor: null,
      attested: 0,
    });
    expect(part(html, 'audit-verdict')).toContain('chain intact (2 records)');
    expect(part(html, 'audit-verdict')).toContain('banner ok');
    const row = part(html, 'audit-2');
    expect(row).toContain('rollback');
    expect(row).toContain('training:passed');
    expect(row).toContain('parity:tolerance_exceeded');
    expect(row).toContain('bob');
    expect(row).toContain('&lt;script&gt;');
    expect(html).not.toContain('<script>');
  });

  it('the audit page names the first bad record and its reason', () => {
    const verdict: TrailVerdict = {
      model: 'seed-mlp',
      records: 2,
      problem: {
        key: 'audit/seed-mlp/00000002.json',
        reason: 'edited: its content does not hash to its recorded hash',
        code: 'audit_broken',
      },
      problems: [],
      signed: 0,
      unsigned: 2,
      anchor: null,
      attested: 0,
    };
    const banner = part(auditPage('seed-mlp', RECORDS, verdict), 'audit-verdict');
    expect(banner).toContain('banner bad');
    expect(banner).toContain('audit/seed-mlp/00000002.json');
    expect(banner).toContain('edited: its content does not hash to its recorded hash');
    expect(banner).not.toContain('intact');
  });

  it('the runs page links each run report by its encoded id, with a status badge', () => {
    const html = runsPage([
      {
        runId: 'ttd-seed/1?x',
        model: 'seed-mlp',
        status: 'promoted',
        startedAt: '2025-01-02T03:04:05Z',
        closedAt: null,
        trigger: 'ci',
        commit: null,
      },
    ]);
    expect(html).toContain('href="/runs/ttd-seed%2F1%3Fx/report"');
    expect(html).toContain('<span class="badge ok">promoted</span>');
    expect(part(runsPage([]), 'runs')).toContain('no runs yet');
    expect(part(runsPage(null), 'runs')).toContain('Temporal is not reachable');
  });

  it('the error page shows the status and the escaped message', () => {
    const html = errorPage(404, `model ${EVIL} not found`);
    expect(part(html, 'error-status')).toContain('404 Not Found');
    expect(part(html, 'error-message')).toContain('&lt;script&gt;');
    expect(html).not.toContain('<script>');
  });
});
