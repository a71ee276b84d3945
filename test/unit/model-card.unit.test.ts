// The model card (lib/registry/model-card.ts): built from a version record, its manifest and the audit chain, and
// rendered as Markdown (render/model-card-md.ts) and HTML (render/model-card-html.ts) with everything untrusted escaped.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendAudit, auditKey, type AuditEntry, type AuditRecord } from '../../lib/registry/audit';
import { buildModelCard, CARD_FORMAT, loadModelCard, type CardSources, type ModelCard } from '../../lib/registry/model-card';
import { writeManifest, writeVersionRecord, type ManifestV2, type VersionRecord } from '../../lib/registry/records';
import type { ModelState } from '../../lib/registry/registry';
import { FsObjectStore } from '../../lib/store/fs-store';
import { putBlob } from '../../lib/store/store';
import { mdCode, mdText, renderCardMarkdown, sparkline } from '../../render/model-card-md';
import { cardPage } from '../../render/ui-html';
import { renderReport } from '../../render/report-html';
import type { ReportData } from '../../lib/parity/report';
import type { ParityRuntimeReport } from '../../lib/contract/results';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const cases = (n: number, err = 0) =>
  Array.from({ length: n }, (_, i) => ({ name: `case_${i}`, max_abs_error: err * i, max_rel_error: 0, passed: true, error: null }));

const parityRow = (format: string, runtime: ParityRuntimeReport['runtime'], err: number): ParityRuntimeReport => ({
  runtime,
  format,
  environment: runtime.startsWith('onnx') ? undefined : 'torch-2.13',
  passed: true,
  code: null,
  max_abs_error: err,
  max_rel_error: err / 10,
  flags: runtime.startsWith('onnx') ? { fuser: false, graph_optimization: 'all' } : { fuser: false, mode: 'serving' },
  ...(runtime.startsWith('onnx') ? { onnxruntime_version: '1.32.0' } : {}),
  torch_version: runtime.startsWith('onnx') ? null : '2.13.0+cpu',
  threads: 1,
  ms: 3,
  message: `${runtime} agrees`,
});

/** A seed-like version in three formats: the manifest (stage outputs as the stages return them) and the record. */
function seedVersion(card?: unknown): { manifest: ManifestV2; record: VersionRecord } {
  const manifest: ManifestV2 = {
    format: 'ttd-manifest/2',
    model: 'seed-mlp',
    runId: 'run-1',
    artifact: { digest: d('a'), format: 'torchscript' },
    files: { artifact: d('a'), references: d('b'), aoti: d('c'), onnx: d('e'), modelFile: d('f'), weights: d('1') },
    specDigest: d('9'),
    spec: {
      name: 'seed-mlp',
      model: './model.py',
      environment: 'torch-2.13',
      params: { hidden: 8 },
      train: { epochs: 3, batch_size: 32, optimizer: 'adam', lr: 0.01, loss: 'mse', seed: 0 },
      ...(card === undefined ? {} : { card }),
    },
    formats: {
      torchscript: { digest: d('a'), references: d('b') },
      aoti: { digest: d('c'), references: d('2') },
      onnx: { digest: d('e'), references: d('2') },
    },
    stages: {
      train: { status: 'ok', files: { weights: d('1') }, losses: [2.8, 2.7, 2.6], epochs_completed: 3, rows: 1000, resumed_from_epoch: 0 },
      trace: { example_shapes: [[3]], nodes: {}, node_total: 24, warnings: [], captures: [], mode: 'trace', files: { traced: d('3') } },
      verify: {
        passed: true,
        code: null,
        message: 'ok',
        cases: cases(9, 1e-7),
        train_mode_ops: [],
        warnings: [],
        devices: [],
        nondeterministic_nodes: [],
        example_shape_checks: { chunks: 384, failed: 0 },
        files: { references: d('b') },
      },
      optimize: {
        passed: true,
        code: null,
        message: 'ok',
        method: 'freeze',
        nodes_before: {},
        nodes_after: {},
        node_total_before: 24,
        node_total_after: 11,
        nodes_for_inference: null,
        max_abs_error: 0,
        max_abs_error_for_inference: null,
        files: {},
      },
      fusion: {
        passed: true,
        code: null,
        message: 'ok',
        require: 'none',
        groups: [],
        unfused_pointwise: ['aten::relu'],
        max_abs_error: null,
        flags: {},
        torch_version: '2.13.0+cpu',
        fuses: false,
        compared: false,
        files: {},
      },
      export: {
        passed: true,
        code: null,
        message: 'ok',
        cases: cases(9),
        example_shapes: [[7, 3]],
        dynamic_dims: [{ input: 0, dim: 0, min: 1, max: 200 }],
        nodes: {},
        node_total: 7,
        warnings: [],
        example_shape_checks: { chunks: 168, failed: 0 },
        torch_version: '2.13.0+cpu',
        files: { references: d('2') },
      },
      compile: {
        passed: true,
        code: null,
        message: 'ok',
        kernels: [],
        kernel_count: 3,
        compile_ms: 10,
        cache_hit: false,
        cache_counters: {},
        cases: cases(9),
        max_abs_error: 0,
        package_bytes: 1546287,
        warnings: [],
        torch_version: '2.13.0+cpu',
        files: { package: d('c') },
      },
      onnx: {
        passed: true,
        code: null,
        message: 'ok',
        cases: cases(9, 4.77e-7),
        example_shapes: [[7, 3]],
        opset: 20,
        nodes: {},
        node_total: 5,
        warnings: [],
        torch_version: '2.13.0+cpu',
        onnx_version: '1.23.2',
        onnxruntime_version: '1.32.0',
        export_ms: 1,
        files: { onnx: d('e') },
      },
    } as ManifestV2['stages'],
  };
  const gate = (g: string, message = `${g} ok`) => ({ gate: g, passed: true, code: null, message }) as VersionRecord['gates'][number];
  const record: VersionRecord = {
    format: 'ttd-version-record/1',
    model: 'seed-mlp',
    artifact: d('a'),
    manifest: d('0'),
    runId: 'run-1',
    actor: 'ci-bot',
    trigger: 'ci',
    commit: 'abc123',
    gates: [
      gate('training'),
      gate('trace'),
      gate('optimize'),
      gate('fusion'),
      gate('export'),
      gate('compile'),
      gate('onnx'),
      gate('parity', 'torchscript agrees'),
      gate('parity', 'aoti agrees'),
      gate('parity', 'onnx agrees'),
      gate('promotion', 'all gates passed'),
    ],
    parity: {
      atol: 1e-5,
      rtol: 1e-4,
      passed: true,
      runtimes: [
        parityRow('torchscript', 'python', 0),
        parityRow('torchscript', 'libtorch', 0),
        parityRow('aoti', 'python', 0),
        parityRow('aoti', 'libtorch', 0),
        parityRow('onnx', 'onnxruntime', 4.77e-7),
        parityRow('onnx', 'onnxruntime-node', 4.77e-7),
      ],
    },
  };
  return { manifest, record };
}

const state = (model = 'seed-mlp'): ModelState => ({
  model,
  versions: [
    { version: 1, digest: d('a'), record: d('0'), runId: 'run-1', createdAt: '2026-01-01T00:00:00Z' },
    { version: 2, digest: d('d'), record: d('8'), runId: 'run-2', createdAt: '2026-01-02T00:00:00Z' },
  ],
  aliases: { production: { version: 1, digest: d('a'), updatedAt: '2026-01-03T00:00:00Z' } },
  aliasHistory: [],
});

const audit = (seq: number, e: Partial<AuditRecord>): AuditRecord => ({
  action: 'promote',
  model: 'seed-mlp',
  version: 1,
  digest: d('a'),
  alias: 'production',
  previousVersion: null,
  record: d('0'),
  runId: 'run-1',
  actor: 'ci-bot',
  trigger: 'ci',
  commit: 'abc123',
  checks: [],
  at: `2026-01-0${seq}T00:00:00Z`,
  seq,
  prev: null,
  hash: 'h',
  ...e,
});

function sources(card?: unknown, over: Partial<CardSources> = {}): CardSources {
  const { manifest, record } = seedVersion(card);
  const s = state();
  return {
    state: s,
    version: s.versions[0],
    record,
    manifest,
    chain: {
      records: [
        audit(1, {}),
        audit(2, { action: 'promote', version: 2, digest: d('d'), previousVersion: 1 }), // moved production off v1
        audit(3, { action: 'rollback', version: 1, digest: d('a'), previousVersion: 2, actor: 'oncall', reason: 'v2 regressed' }),
        audit(4, { action: 'approval_rejected', version: null, digest: d('a'), alias: null, actor: 'alice', reason: 'not yet' }),
        audit(5, { action: 'keep', version: 2, digest: d('d'), previousVersion: null, alias: null }), // not about v1
      ],
      problem: null,
    },
    sizes: { [d('a')]: 3446, [d('b')]: 20952, [d('f')]: 1393 },
    ...over,
  };
}

/** The `|` of a Markdown line that split cells: those not escaped by an odd run of backslashes. */
function cellBreaks(line: string): number {
  let n = 0;
  for (let i = 0; i < line.length; i++) {
    if (line[i] !== '|') continue;
    let slashes = 0;
    for (let j = i - 1; j >= 0 && line[j] === '\\'; j--) slashes++;
    if (slashes % 2 === 0) n++;
  }
  return n;
}

describe('model card', () => {
  it('a card names what the version is: digests of every format, the spec, the model file, environment, run and who', () => {
    const card = buildModelCard(sources());
    expect(card.format).toBe(CARD_FORMAT);
    expect(card).toMatchObject({ model: 'seed-mlp', version: 1, digest: d('a'), aliases: ['production'], kept: null });
    expect(card.artifacts).toEqual([
      { format: 'torchscript', digest: d('a'), references: d('b'), bytes: 3446 },
      { format: 'aoti', digest: d('c'), references: d('2'), bytes: null },
      { format: 'onnx', digest: d('e'), references: d('2'), bytes: null },
    ]);
    expect(card.spec).toEqual({ digest: d('9'), model: './model.py', modelFile: { digest: d('f'), bytes: 1393 }, foreign: false });
    expect(card.environment).toMatchObject({ name: 'torch-2.13', torchVersion: '2.13.0+cpu' });
    expect(card.run).toEqual({ runId: 'run-1', actor: 'ci-bot', trigger: 'ci', commit: 'abc123' });
    expect(card.parameters).toEqual({ hidden: 8 });
    expect(card.training).toMatchObject({ epochs: 3, lr: 0.01 });
    expect(card.metrics).toEqual({ epochs: 3, rows: 1000, finalLoss: 2.6, losses: [2.8, 2.7, 2.6] });
  });

  it('the training data is the model file and the references each format was checked with, one row per file, sizes where stored', () => {
    const { data } = buildModelCard(sources());
    expect(data.source).toBe('model_file');
    expect(data.trainingRows).toBe(1000);
    expect(data.files).toEqual([
      { role: 'model_file', formats: [], digest: d('f'), bytes: 1393 },
      { role: 'references', formats: ['torchscript'], digest: d('b'), bytes: 20952 },
      { role: 'references', formats: ['aoti', 'onnx'], digest: d('2'), bytes: null },
    ]);
    expect(data.notRecorded).toContain('not their digest or size');
  });

  it('every gate of the record is on the card with the stage outputs that back it, parity gates by format', () => {
    const card = buildModelCard(sources());
    expect(card.gates.map((g) => g.gate)).toEqual(sources().record.gates.map((g) => g.gate));
    const by = (i: number) => card.gates[i].evidence;
    expect(by(0)).toEqual([{ stage: 'train', facts: { epochs: 3, rows: 1000, final_loss: 2.6, resumed_from_epoch: 0 } }]);
    expect(by(1).map((e) => e.stage)).toEqual(['trace', 'verify']);
    expect(by(1)[1].facts).toMatchObject({ cases: 9, cases_agreeing: 9, max_abs_error: 8e-7, example_shaped_chunks: 384 });
    expect(by(2)[0].facts).toMatchObject({ method: 'freeze', node_total_before: 24, node_total_after: 11 });
    expect(by(3)[0].facts).toMatchObject({ require: 'none', build_fuses: false, torch_version: '2.13.0+cpu' });
    expect(by(4)[0].facts).toMatchObject({ dynamic_dims: 'input 0 dim 0: 1..200', node_total: 7 });
    expect(by(5)[0].facts).toMatchObject({ kernels: 3, package_bytes: 1546287 });
    expect(by(6)[0].facts).toMatchObject({ opset: 20, onnxruntime_version: '1.32.0' });
    expect(by(7)).toEqual([
      { stage: 'parity (torchscript)', facts: { runs: 2, runs_agreeing: 2, max_abs_error: 0, atol: 1e-5, rtol: 1e-4 } },
    ]);
    expect(by(8)[0].stage).toBe('parity (aoti)');
    expect(by(9)[0]).toMatchObject({ stage: 'parity (onnx)', facts: { runs: 2, max_abs_error: 4.77e-7 } });
    expect(by(10)[0].stage).toBe('promotion');
  });

  it('the parity matrix has every runtime × format row of the record with its errors, tolerance and verdict', () => {
    const card = buildModelCard(sources());
    expect(card.parity?.rows).toHaveLength(6);
    expect(card.parity?.rows[0]).toEqual({
      format: 'torchscript',
      runtime: 'python',
      environment: 'torch-2.13',
      mode: 'off',
      version: '2.13.0+cpu',
      maxAbsError: 0,
      maxRelError: 0,
      atol: 1e-5,
      rtol: 1e-4,
      passed: true,
      code: null,
    });
    expect(card.parity?.rows[4]).toMatchObject({
      format: 'onnx',
      runtime: 'onnxruntime',
      mode: 'graph opt all',
      version: 'onnxruntime 1.32.0',
    });
  });

  it('the audit records of the version are those naming it or its digest, and those that moved an alias off it', () => {
    const card = buildModelCard(sources());
    expect(card.audit.verified).toBe(true);
    expect(card.audit.records.map((r) => [r.seq, r.action, r.concerns])).toEqual([
      [1, 'promote', 'this_version'],
      [2, 'promote', 'moved_away'],
      [3, 'rollback', 'this_version'],
      [4, 'approval_rejected', 'this_version'],
    ]);
    expect(card.audit.records[2]).toMatchObject({ actor: 'oncall', reason: 'v2 regressed', previousVersion: 2, version: 1 });
  });

  it("the author's card: section is on the card, limitations as a list; without one the card says none was written", () => {
    expect(buildModelCard(sources()).author).toBeNull();
    expect(renderCardMarkdown(buildModelCard(sources()))).toContain("The spec's author wrote no `card:` section");
    const card = buildModelCard(sources({ intended_use: 'demos', limitations: 'toy data', owners: ['ml@example.com'] }));
    expect(card.author).toEqual({ intendedUse: 'demos', limitations: ['toy data'], owners: ['ml@example.com'] });
    // A stored spec whose card: does not fit (a store writer's) is shown as none rather than trusted.
    expect(buildModelCard(sources({ owners: 'x' })).author).toBeNull();
  });

  it('a foreign artifact names its references file as its data, has no training, and backs trace with verify_artifact', () => {
    const src = sources();
    const { manifest } = seedVersion();
    src.manifest = {
      ...manifest,
      spec: { name: 'r-seed', artifact: './model.pt', references: './references.safetensors', train: { epochs: 10 } },
      files: { artifact: d('a'), references: d('b') },
      formats: { torchscript: { digest: d('a'), references: d('b') } },
      stages: {
        verify_artifact: {
          passed: true,
          code: null,
          message: 'ok',
          cases: cases(4),
          train_mode_ops: [],
          warnings: [],
          devices: [],
          nondeterministic_nodes: [],
          nodes: {},
          node_total: 12,
          case_count: 4,
          files: {},
        },
      } as ManifestV2['stages'],
    };
    src.record = { ...src.record, gates: [src.record.gates[1], src.record.gates[7]] };
    const card = buildModelCard(src);
    expect(card.spec).toMatchObject({ model: './model.pt', modelFile: null, foreign: true });
    expect(card.data).toMatchObject({ source: 'foreign', trainingRows: null });
    expect(card.data.files).toEqual([{ role: 'foreign_references', formats: ['torchscript'], digest: d('b'), bytes: 20952 }]);
    expect(card.training).toBeNull();
    expect(card.metrics).toBeNull();
    expect(card.gates[0].evidence).toEqual([
      {
        stage: 'verify_artifact',
        facts: { cases: 4, cases_agreeing: 4, max_abs_error: 0, max_rel_error: 0, case_count: 4, node_total: 12, train_mode_ops: 0 },
      },
    ]);
    const md = renderCardMarkdown(card);
    expect(md).toContain('A foreign artifact: trained elsewhere');
    expect(md).toContain('No training metrics: nothing was trained.');
  });

  it('no signatures are on a card until the version record carries them', () => {
    expect(buildModelCard(sources()).signatures).toEqual([]);
    expect(renderCardMarkdown(buildModelCard(sources()))).toContain('No signature or provenance is stored with this version.');
  });

  it('the Markdown has every gate and every parity row, one table row each', () => {
    const md = renderCardMarkdown(buildModelCard(sources()));
    const gatesSection = md.slice(md.indexOf('## Gates'), md.indexOf('### Evidence'));
    const gateRows = gatesSection
      .split('\n')
      .filter((l) => /^\| `(training|trace|optimize|fusion|export|compile|onnx|parity|promotion)` \|/.test(l));
    expect(gateRows).toHaveLength(11);
    const parityRows = md
      .split('\n')
      .filter((l) => /^\| `(torchscript|aoti|onnx)` \| `(python|libtorch|onnxruntime|onnxruntime-node)` \|/.test(l));
    expect(parityRows).toHaveLength(6);
    for (const row of parityRows) expect(cellBreaks(row)).toBe(11);
    expect(md).toContain('Loss by epoch: `█▅▁`');
    expect(md).toContain('`parity (aoti)`: runs 2, runs agreeing 2');
  });

  it('a loss curve is a sparkline from lowest to highest, with a gap for a loss that was not finite', () => {
    expect(sparkline([3, 2, 1])).toBe('█▅▁');
    expect(sparkline([1, null, 1])).toBe('▄ ▄');
    expect(sparkline([])).toBe('');
  });
});

describe('model card Markdown escaping', () => {
  it('text keeps to one line and to itself: no HTML, link, emphasis, code, math or cell break gets through', () => {
    expect(mdText('a | b')).toBe('a \\| b');
    expect(mdText('one\ntwo\r\nthree\tfour')).toBe('one two three four');
    expect(mdText('<script>alert(1)</script>')).toBe('\\<script\\>alert(1)\\</script\\>');
    expect(mdText('[click](javascript:alert(1)) ![img](http://x/y.png)')).toBe(
      '\\[click\\](javascript:alert(1)) !\\[img\\](http://x/y.png)',
    );
    expect(mdText('**bold** _it_ `code` ~~gone~~ $x$ &amp; \\')).toBe(
      '\\*\\*bold\\*\\* \\_it\\_ \\`code\\` \\~\\~gone\\~\\~ \\$x\\$ \\&amp; \\\\',
    );
    expect(mdText('\x1b]0;pwned\x07 \u202eevil')).toBe('\\\\x1b\\]0;pwned\\\\x07 \\\\u202eevil');
  });

  it('text that starts a list item cannot start a heading, a list, a quote or a rule there', () => {
    expect(mdText('# owned', true)).toBe('\\# owned');
    expect(mdText('1. first', true)).toBe('1\\. first');
    expect(mdText('- item', true)).toBe('\\- item');
    expect(mdText('> quote', true)).toBe('\\> quote');
    expect(mdText('    indented code', true)).toBe('indented code');
    expect(mdText('--- ', true)).toBe('\\---');
    expect(mdText('# mid-line', false)).toBe('# mid-line');
  });

  it('code spans take a longer fence than any backticks inside, and escape | only in a table', () => {
    expect(mdCode('plain')).toBe('`plain`');
    expect(mdCode('a`b')).toBe('``a`b``');
    expect(mdCode('`x`')).toBe('`` `x` ``');
    expect(mdCode('a|b', true)).toBe('`a\\|b`');
    expect(mdCode('a\nb')).toBe('`a b`');
    expect(mdCode('')).toBe('—');
  });

  it('a hostile card:, model name and actors cannot add rows, cells, headings or HTML to the Markdown', () => {
    const hostile = 'x | y\n# heading\n<img src=x onerror=alert(1)>\n| a | b |\n|---|---|\n[link](http://evil)\x1b[2J';
    const src = sources({ intended_use: hostile, limitations: [hostile, '1. one', '```fence'], owners: [hostile] });
    src.state = { ...src.state, model: 'evil|`name`<b>' };
    src.record = { ...src.record, actor: hostile, commit: 'c|d', gates: [{ ...src.record.gates[0], message: hostile }] };
    src.chain = { records: [audit(1, { actor: hostile, reason: hostile, approvedBy: hostile })], problem: null };
    const md = renderCardMarkdown(buildModelCard(src));
    // Outside code spans (where Markdown shows text as it is) no `<` is left unescaped.
    const prose = md.replace(/(`+)(.+?)\1(?!`)/g, '');
    expect(prose).not.toMatch(/(^|[^\\])</m);
    expect(md).toContain('``evil|`name`<b>``');
    expect(md).not.toContain('\x1b');
    expect(md).not.toMatch(/^#+ (heading|owned)/m);
    expect(md).not.toMatch(/^```fence/m);
    // Every table row keeps the cells of its header: nothing from the strings breaks a cell or starts a row.
    const lines = md.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i].startsWith('| ') || !lines[i + 1]?.startsWith('| ---')) continue;
      const cells = cellBreaks(lines[i]);
      for (let j = i + 1; j < lines.length && lines[j].startsWith('|'); j++) expect(cellBreaks(lines[j]), lines[j]).toBe(cells);
    }
    // The only lines that start with '|' are rows of our own tables, each directly under a header or another row.
    const rows = lines.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith('|'));
    for (const [, i] of rows) expect(lines[i - 1].startsWith('|') || lines[i + 1].startsWith('| ---')).toBe(true);
    expect(md).toContain('\\[link\\](http://evil)\\\\x1b\\[2J');
  });

  it('the dashboard card page escapes the same strings and loads nothing', () => {
    const src = sources({ intended_use: '<script>alert(1)</script>', limitations: ['<img src=x>'], owners: ['"><b>'] });
    src.record = { ...src.record, actor: '<iframe>' };
    const html = cardPage(buildModelCard(src));
    expect(html).not.toMatch(/<(script|img|iframe|b>)/i);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('data-testid="card-gate-10"');
    expect(html).toContain('data-testid="card-parity-5"');
    expect(html).not.toMatch(/src="https?:|<link/i);
  });
});

describe('model card in the run report', () => {
  const report = (card: ModelCard | undefined, version: number | null): ReportData => ({
    runId: 'run-1',
    model: 'seed-mlp',
    status: version === null ? 'rejected' : 'promoted',
    version,
    digest: version === null ? null : d('a'),
    alias: null,
    trigger: 'ci',
    commit: null,
    actor: 'ci-bot',
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
    ...(card ? { card } : {}),
    temporalUrl: null,
    source: 'store',
    generatedAt: '2026-01-01T00:00:00Z',
  });
  const section = (html: string) =>
    html.slice(html.indexOf('data-testid="model-card"'), html.indexOf('</section>', html.indexOf('data-testid="model-card"')));

  it("a run that registered a version shows its card's author section and promotions, and links the card where one is served", () => {
    const card = buildModelCard(sources({ intended_use: '<b>demos</b>', limitations: ['toy data'], owners: ['ml@example.com'] }));
    const served = section(renderReport(report(card, 1), { cardHref: '/models/seed-mlp/versions/1/card' }));
    expect(served).toContain('<a href="/models/seed-mlp/versions/1/card" data-testid="card-link">');
    expect(served).toContain('<code>ttd card seed-mlp:1</code>');
    expect(served).toContain('&lt;b&gt;demos&lt;/b&gt;');
    expect(served).toContain('toy data');
    expect(served).toContain('3: rollback <code>production</code> by oncall');
    // A report written to a file has no dashboard to link to: it names the command instead.
    const file = section(renderReport(report(card, 1)));
    expect(file).not.toContain('<a ');
    expect(file).toContain('ttd card seed-mlp:1');
  });

  it('a run that registered no version says it has no card', () => {
    expect(section(renderReport(report(undefined, null)))).toContain('this run registered no version, so it has no model card');
  });
});

describe('model card from a store', () => {
  it('sizes come from the store and a broken audit chain is named on the card, with only the records before it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ttd-card-'));
    const store = new FsObjectStore(root);
    const { manifest, record } = seedVersion({ owners: ['ml@example.com'] });
    const model = await putBlob(store, 'print("model")\n');
    const manifestDigest = await writeManifest(store, { ...manifest, files: { ...manifest.files, modelFile: model } });
    const recordDigest = await writeVersionRecord(store, { ...record, manifest: manifestDigest });
    const s = state();
    const version = { ...s.versions[0], record: recordDigest };
    const entry = (seq: number): AuditEntry => ({
      action: 'promote',
      model: 'seed-mlp',
      version: 1,
      digest: d('a'),
      alias: 'production',
      previousVersion: null,
      record: recordDigest,
      runId: `run-${seq}`,
      actor: `actor-${seq}`,
      trigger: 'manual',
      commit: null,
      checks: [],
      at: '2026-01-01T00:00:00Z',
    });
    await appendAudit(store, entry(1));
    await appendAudit(store, entry(2));
    const good: ModelCard = await loadModelCard(store, s, version, {});
    expect(good.spec.modelFile).toEqual({ digest: model, bytes: 15 });
    expect(good.audit).toMatchObject({ verified: true, problem: null });
    expect(good.audit.records.map((r) => r.actor)).toEqual(['actor-1', 'actor-2']);
    expect(good.author?.owners).toEqual(['ml@example.com']);

    // A store writer edits the second record: the card says the chain does not verify and lists only the first.
    const key = auditKey('seed-mlp', 2);
    const path = join(root, key);
    const edited = JSON.parse((await store.get(key))!.body.toString('utf8')) as AuditRecord;
    writeFileSync(path, JSON.stringify({ ...edited, actor: 'mallory' }));
    const bad = await loadModelCard(store, s, version, {});
    expect(bad.audit.verified).toBe(false);
    expect(bad.audit.problem?.key).toBe(key);
    expect(bad.audit.records.map((r) => r.actor)).toEqual(['actor-1']);
    expect(renderCardMarkdown(bad)).toContain('**The audit chain does not verify** at `audit/seed-mlp/00000002.json`');
  });
});
