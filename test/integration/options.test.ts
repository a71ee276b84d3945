// Every option the README's spec documents, through `ttd run` on the suite's Temporal server with real torch.
// One run covers several independent options, so the file stays short:
//   defaults   adam, mse, trace, target_device cpu, freeze, fusion none, parity [python, libtorch],
//              approval none, alias production (every value spelled out)
//   sgd        train.optimizer sgd; promote.compare (not better: kept as version 2, production not moved)
//   pair       tuple inputs, cross_entropy, optimize_for_inference, fusion pointwise-chains, parity [libtorch],
//              alias staging
//   pair-mse   the same classifier with loss mse: fails in training (what makes cross_entropy's effect visible)
//   branchy    trace.mode script, fusion any, parity [python], approval required (approved with the CLI),
//              target_device cpu against a cpu device constant
//   declined   approval required (rejected with the CLI); every torch stage comes from the step cache
//   unbatched  trace.batch_sizes [] with the seed's unbatched example
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec, type TtdRun } from '../helpers';

const optionFixtures = join(repoRoot, 'test', 'fixtures', 'options');
const seedModel = join(seedDir, 'model.py');
const pairModel = join(optionFixtures, 'pair-classifier.py');
const branchyModel = join(optionFixtures, 'branchy-chain.py');

const seedTrain = { epochs: 1, batch_size: 32, optimizer: 'adam', lr: 0.01, loss: 'mse', seed: 0 };
const quickTrain = { epochs: 1, batch_size: 32, lr: 0.01 };

/** One `ttd run --json` and what it printed. */
interface Finished {
  code: number | null;
  result: RunResult;
  stderr: string;
}

/** A show --json view (loosely typed: the reports are checked field by field). */
type Shown = Record<string, any>;

describe('every documented spec option, end to end', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));
  const ttd = (args: string[]) => runTtd(args, env());
  const runs: Record<string, Finished> = {};
  const shown: Record<string, Shown> = {};

  /** Starts `ttd run SPEC --json` in the foreground; `runId` resolves once its first progress line names the run. */
  function startRun(specPath: string): { runId: Promise<string>; done: Promise<Finished> } {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'run', specPath, '--json'], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1', ...env() } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let found: (id: string) => void = () => {};
    const runId = new Promise<string>((resolve) => (found = resolve));
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /^run (\S+): /m.exec(stderr);
      if (m) found(m[1]);
    });
    const done = new Promise<Finished>((resolve) =>
      child.on('close', (code) => resolve({ code, stderr, result: stdout ? JSON.parse(stdout) : ({} as RunResult) })),
    );
    return { runId, done };
  }

  /** Waits until the run asks for approval, then answers it with `ttd approve RUN ...answer`. */
  async function answerApproval(runId: string, answer: string[]): Promise<TtdRun> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const status = await ttd(['status', runId, '--json']);
      if (status.code === 0 && JSON.parse(status.stdout).status === 'awaiting_approval') break;
      if (Date.now() > deadline) throw new Error(`run ${runId} never awaited approval: ${status.stdout}${status.stderr}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return ttd(['approve', runId, ...answer]);
  }

  /** Runs a spec (model file copied beside it) to its end; `approval` answers the approval it waits for. */
  async function pipeline(key: string, spec: Record<string, unknown>, model: string, approval?: string[]): Promise<void> {
    const started = startRun(writeSpec(tempDir(), spec, model));
    if (approval) {
      const answered = await answerApproval(await started.runId, approval);
      expect(answered.code, answered.stderr).toBe(0);
    }
    runs[key] = await started.done;
  }

  /** `ttd show REF --json`, which must succeed. */
  async function show(ref: string): Promise<Shown> {
    const r = await ttd(['show', ref, '--json']);
    expect(r.code, `${ref}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  }

  beforeAll(async () => {
    await pipeline(
      'defaults',
      {
        name: 'opt-seed',
        train: seedTrain,
        trace: { batch_sizes: [1, 7], mode: 'trace', target_device: 'cpu' },
        optimize: { method: 'freeze' },
        fusion: { require: 'none' },
        parity: { runtimes: ['python', 'libtorch'], atol: 1e-5, rtol: 1e-4 },
        promote: { alias: 'production', approval: 'none' },
      },
      seedModel,
    );
    // The same training but for the optimizer, compared with the production that adam made.
    await pipeline(
      'sgd',
      {
        name: 'opt-seed',
        train: { ...seedTrain, optimizer: 'sgd' },
        promote: { compare: { metric: 'validation_loss', min_improvement: 0 } },
      },
      seedModel,
    );
    const pair = {
      train: { ...quickTrain, loss: 'cross_entropy' },
      optimize: { method: 'optimize_for_inference' },
      // This build (no LLVM) never fuses on the CPU: fused runs through NNC's interpreter only because the spec asks.
      fusion: { fused_runs: 'always' },
      parity: { runtimes: ['libtorch'] },
      promote: { alias: 'staging' },
    };
    await pipeline('pair', { name: 'opt-pair', ...pair }, pairModel);
    await pipeline('pair-mse', { name: 'opt-pair-mse', ...pair, train: { ...quickTrain, loss: 'mse' } }, pairModel);
    await pipeline(
      'branchy',
      {
        name: 'opt-branchy',
        train: quickTrain,
        trace: { mode: 'script', target_device: 'cpu' },
        fusion: { require: 'none' },
        parity: { runtimes: ['python'] },
        promote: { approval: 'required' },
      },
      branchyModel,
      ['--by', 'alice'],
    );
    // The defaults run's spec under another name: the step cache serves every torch stage.
    await pipeline('declined', { name: 'opt-declined', train: seedTrain, promote: { approval: 'required' } }, seedModel, [
      '--by',
      'carol',
      '--reject',
      '--reason',
      'not this one',
    ]);
    // As the seed post traces it: one 1-D row, no batch dimension to vary.
    await pipeline('unbatched', { name: 'opt-unbatched', train: seedTrain, trace: { batch_sizes: [] } }, seedModel);
    // Retrained for longer and compared with it: both archives are evaluated at the shape they were verified at.
    await pipeline(
      'unbatched-compare',
      { name: 'opt-unbatched', train: { ...seedTrain, epochs: 2 }, trace: { batch_sizes: [] }, promote: { compare: {} } },
      seedModel,
    );
    for (const [key, ref] of [
      ['defaults', 'opt-seed@production'],
      ['sgd', 'opt-seed:2'],
      ['pair', 'opt-pair@staging'],
      ['branchy', 'opt-branchy@production'],
    ]) {
      const r = await ttd(['show', ref, '--json']);
      if (r.code === 0) shown[key] = JSON.parse(r.stdout); // else the run's own outcome test says why
    }
  }, 600_000); // eight runs one after another: 52 s on a quiet host, past 240 s beside other files on a loaded one

  // [run, status, exit code, gate of the last entry, its code]
  const outcomes: [string, string, number, string, string | null][] = [
    ['defaults', 'promoted', 0, 'promotion', null],
    ['sgd', 'rejected', 1, 'promotion', 'not_better_than_production'],
    ['pair', 'promoted', 0, 'promotion', null],
    ['pair-mse', 'failed', 2, 'training', 'model_error'],
    ['branchy', 'promoted', 0, 'promotion', null],
    ['declined', 'rejected', 1, 'promotion', 'approval_rejected'],
    ['unbatched', 'promoted', 0, 'promotion', null],
  ];

  it('promote.compare evaluates models traced on one unbatched row, and the longer-trained one wins', () => {
    const { result, stderr } = runs['unbatched-compare'];
    expect(Object.keys(result.timings), stderr).toContain('evaluate');
    expect(result.status, JSON.stringify(result.gates)).toBe('promoted');
    expect(result.version).toBe(2);
  });

  it.each(outcomes)('the %s run ends %s (exit %i) at gate %s with code %s', (key, status, exit, gate, code) => {
    const { code: got, result, stderr } = runs[key];
    expect(result.status, `${stderr}\n${JSON.stringify(result.gates)}`).toBe(status);
    expect(got).toBe(exit);
    expect(result.gates[result.gates.length - 1]).toMatchObject({ gate, code });
    // Every gate before the last one passed: an option never costs an unrelated gate.
    expect(result.gates.slice(0, -1).every((g) => g.passed)).toBe(true);
  });

  // [run, parity.runtimes]
  it.each([
    ['defaults', ['python', 'libtorch']],
    ['pair', ['libtorch']],
    ['branchy', ['python']],
  ])('parity.runtimes of the %s run (%j) runs exactly those runtimes as their servers do, fused only where the spec asks', (key, runtimes) => {
    // A CPU build without LLVM never fuses: one serving run per runtime, and an interpreter run where fused_runs always.
    const fused = key === 'pair';
    const expected = (runtimes as string[]).flatMap((r) => (fused ? [`${r}/serving`, `${r}/interpreter`] : [`${r}/serving`]));
    const parity = runs[key].result.parity ?? [];
    expect(parity.map((p) => `${p.runtime}/${p.flags.mode}`)).toEqual(expected);
    expect(parity.map((p) => p.flags.fuser)).toEqual(expected.map((e) => !e.endsWith('/serving')));
    expect(shown[key].reports.parity.runtimes.map((p: Shown) => `${p.runtime}/${p.flags.mode}`)).toEqual(expected);
    // Each runtime says what its build is: no LLVM, CPU fusion off by default.
    for (const p of parity) expect(p.fusion).toMatchObject({ llvm_enabled: false, can_fuse_on_cpu: false });
    expect(runs[key].result.gates.find((g) => g.gate === 'parity')!.message).toMatch(new RegExp(`^${expected.length} runtime runs agree`));
  });

  it('train.optimizer sgd trains other weights than adam from the same seed, rate and data', () => {
    expect(runs.sgd.result.cached ?? []).not.toContain('train');
    expect(shown.sgd.files.weights).toMatch(/^sha256:/);
    expect(shown.sgd.files.weights).not.toBe(shown.defaults.files.weights);
    expect(shown.sgd.reports.training.losses[0]).not.toBe(shown.defaults.reports.training.losses[0]);
  });

  it('promote.compare keeps a candidate that is not better as version 2 and leaves production on version 1', async () => {
    expect(runs.sgd.result.gates.at(-1)!.message).toMatch(
      /^candidate validation_loss \d+\.\d+ is not better than production \(version 1\) \d+\.\d+ by more than min_improvement 0; kept as version 2, 'production' not moved$/,
    );
    expect(shown.sgd.version).toBe(2);
    expect(shown.sgd.aliases).toEqual([]);
    expect(shown.defaults.version).toBe(1);
    expect(shown.defaults.aliases).toEqual(['production']);
    const log = JSON.parse((await ttd(['audit', 'log', 'opt-seed', '--json'])).stdout).records;
    expect(log.map((r: Shown) => [r.action, r.version, r.alias, r.reason])).toEqual([
      ['promote', 1, 'production', null],
      ['keep', 2, null, 'not_better_than_production'],
    ]);
  });

  it('train.loss cross_entropy trains a classifier on class indices, which loss mse refuses in training', () => {
    expect(shown.pair.reports.training).toMatchObject({ epochs: 1, rows: 128 });
    // Three logits per validation row: 64 rows × 3 classes.
    const validation = runs.pair.result.parity![0].outputs!.find((o) => o.name === 'validation/output/0')!;
    expect(validation.elements).toBe(64 * 3);
    expect(runs['pair-mse'].result.gates[0].message).toMatch(/^train failed: RuntimeError: The size of tensor a \(3\) must match/);
  });

  it('a forward that takes two tensors is traced with both, and the references carry both inputs', () => {
    expect(shown.pair.reports.trace.example_shapes).toEqual([
      [4, 4],
      [4, 4],
    ]);
    expect(shown.pair.reports.trace.mode).toBe('trace');
  });

  it('optimize.method freeze folds the graph and optimize_for_inference is checked in memory as well', () => {
    expect(shown.defaults.reports.optimize).toMatchObject({ method: 'freeze', nodes_for_inference: null });
    expect(runs.defaults.result.gates.find((g) => g.gate === 'optimize')!.message).not.toContain('optimize_for_inference');
    expect(shown.pair.reports.optimize.method).toBe('optimize_for_inference');
    expect(shown.pair.reports.optimize.nodes_for_inference).toBeTypeOf('object');
    expect(runs.pair.result.gates.find((g) => g.gate === 'optimize')!.message).toMatch(
      /optimize_for_inference \(in memory, not saved\): \d+ nodes, agrees with traced/,
    );
  });

  // [run, fused outputs compared with unfused, the groups the fuser forms]
  it.each([
    ['defaults', false, []],
    ['branchy', false, [['aten::mul', 'aten::add', 'aten::relu']]],
    ['pair', true, [['aten::mul', 'aten::add', 'aten::relu']]],
  ])('the fusion stage of the %s run shows the groups the fuser forms, and compares fused runs: %s', (key, compared, groups) => {
    const fusion = shown[key].reports.fusion;
    expect(fusion.require).toBe('none');
    expect(fusion.groups.map((g: Shown) => g.ops)).toEqual(groups);
    expect(fusion.compared).toBe(compared);
    expect(fusion.fuses).toBe(false);
    expect(fusion.build).toMatchObject({ llvm_enabled: false });
    const message = runs[key].result.gates.find((g) => g.gate === 'fusion')!.message;
    if (compared) {
      expect(fusion.unfused_pointwise).toEqual([]);
      expect(message).toMatch(/fused agrees with unfused on \d+ cases .*forced through NNC's interpreter \(fusion.fused_runs always\): torch 2\.13\.0\+cpu \(CPU, no LLVM\) never fuses$/);
    } else {
      expect(message).toMatch(/\(formed on case \w+\); torch 2\.13\.0\+cpu \(CPU, no LLVM\) runs these groups unfused: its servers never fuse on cpu/);
    }
  });

  it('trace.mode script compiles the branch that a trace would record once, into a prim::If', () => {
    expect(shown.branchy.reports.trace.mode).toBe('script');
    expect(shown.branchy.reports.trace.nodes['prim::If']).toBe(1);
    expect(shown.defaults.reports.trace.mode).toBe('trace');
    expect(shown.defaults.reports.trace.nodes['prim::If']).toBeUndefined();
  });

  it('trace.target_device cpu turns a baked-in cpu constant into a warning that names it', () => {
    const trace = runs.branchy.result.gates.find((g) => g.gate === 'trace')!;
    expect(trace.passed).toBe(true);
    expect(trace.warnings?.join('\n')).toContain('bakes device cpu (used by aten::zeros) into constants; it matches target_device cpu');
    expect(shown.branchy.reports.trace.devices).toEqual(['cpu']);
  });

  it('promote.alias staging moves only that alias', async () => {
    expect(runs.pair.result.alias).toBe('staging');
    expect(shown.pair.aliases).toEqual(['staging']);
    const production = await ttd(['show', 'opt-pair@production', '--json']);
    expect(production.code).toBe(2);
    expect(production.stderr).toContain("'opt-pair' has no alias 'production'");
  });

  it('promote.approval none promotes without an approver, required waits for one and records who approved', async () => {
    expect(runs.defaults.result.timings.approval).toBeUndefined();
    expect(runs.branchy.result.timings.approval).toBeGreaterThan(0);
    const seed = JSON.parse((await ttd(['audit', 'log', 'opt-seed', '--json'])).stdout).records;
    expect(seed[0]).toMatchObject({ action: 'promote', approvedBy: null });
    const branchy = JSON.parse((await ttd(['audit', 'log', 'opt-branchy', '--json'])).stdout).records;
    expect(branchy).toEqual([expect.objectContaining({ action: 'promote', approvedBy: 'alice', runId: runs.branchy.result.runId })]);
  });

  it('a rejected approval registers nothing and audits who rejected it and why', async () => {
    expect(runs.declined.result.gates.at(-1)!.message).toBe('rejected by carol: not this one; nothing promoted');
    expect(runs.declined.result.version).toBeNull();
    const log = JSON.parse((await ttd(['audit', 'log', 'opt-declined', '--json'])).stdout).records;
    expect(log).toEqual([expect.objectContaining({ action: 'approval_rejected', actor: 'carol', reason: 'not this one' })]);
    expect((await ttd(['show', 'opt-declined', '--json'])).code).toBe(2);
  });

  it('a run whose torch inputs match an earlier run takes every torch stage from the step cache', () => {
    expect(runs.declined.result.cached).toEqual(['train', 'trace', 'verify', 'optimize', 'fusion', 'parity']);
  });

  it('trace.batch_sizes [] verifies an unbatched example without batch cases', async () => {
    expect(runs.unbatched.result.status, JSON.stringify(runs.unbatched.result.gates)).toBe('promoted');
    expect(runs.unbatched.result.cached).toContain('train');
    const view = await show('opt-unbatched@production');
    expect(view.reports.trace.example_shapes).toEqual([[3]]);
    expect(view.reports.trace.cases.map((c: Shown) => c.name)).not.toContainEqual(expect.stringMatching(/^batch_/));
    expect(view.reports.trace.cases.map((c: Shown) => c.name)).toContain('example');
  });
});
