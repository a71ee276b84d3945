// What `ttd runs` asks the server, and how runs are started: the visibility query from each filter, the filters'
// checks, and each trigger's priority.
import { describe, expect, it } from 'vitest';
import { ALL_SEARCH_ATTRIBUTES } from '../../lib/contract/search-attributes';
import { choiceArgument, commitArgument, sinceArgument } from '../../lib/spec/arguments';
import { SpecSchema } from '../../lib/spec/spec';
import { runsQuery } from '../../temporal/run-queries';
import { devServerFeatureArgs } from '../../temporal/search-attributes';
import type { PipelineInput } from '../../workflows/definitions';
import { pipelineStartOptions, runPriority } from '../../workflows/start-options';

const input = (over: Partial<PipelineInput> = {}): PipelineInput => ({
  runId: 'r',
  spec: SpecSchema.parse({ name: 'seed-mlp' }),
  specDigest: `sha256:${'a'.repeat(64)}`,
  modelFileDigest: `sha256:${'b'.repeat(64)}`,
  modelFilePath: 'model.py',
  actor: 'alice',
  trigger: 'manual',
  commit: null,
  queues: { control: 'c', torch: 't' },
  ...over,
});

describe('runs queries', () => {
  it('each filter adds one term; none lists every pipeline run', () => {
    expect(runsQuery('pipelineWorkflow')).toBe("WorkflowType = 'pipelineWorkflow'");
    expect(runsQuery('pipelineWorkflow', { model: 'seed-mlp', outcome: 'promoted' })).toBe(
      "WorkflowType = 'pipelineWorkflow' AND TtdModel = 'seed-mlp' AND TtdOutcome = 'promoted'",
    );
    expect(runsQuery('pipelineWorkflow', { outcome: 'running' })).toBe("WorkflowType = 'pipelineWorkflow' AND ExecutionStatus = 'Running'");
    expect(runsQuery('pipelineWorkflow', { since: new Date('2026-12-01T00:00:00Z'), commit: 'ab12' })).toBe(
      "WorkflowType = 'pipelineWorkflow' AND StartTime >= '2026-12-01T00:00:00.000Z' AND TtdCommit STARTS_WITH 'ab12'",
    );
  });

  it('--since takes a time ago, a date or a time with its zone, and names the flag and the forms otherwise', () => {
    const now = new Date('2026-12-05T12:00:00Z');
    expect(sinceArgument('--since', '30m', now).toISOString()).toBe('2026-12-05T11:30:00.000Z');
    expect(sinceArgument('--since', '24h', now).toISOString()).toBe('2026-12-04T12:00:00.000Z');
    expect(sinceArgument('--since', '7d', now).toISOString()).toBe('2026-11-28T12:00:00.000Z');
    expect(sinceArgument('--since', '2026-12-01', now).toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(sinceArgument('--since', '2026-12-01T09:30:00+01:00', now).toISOString()).toBe('2026-12-01T08:30:00.000Z');
    for (const bad of ['yesterday', '0h', '2026-13-45', '2026-12-01T09:30', "1d' OR 1=1", '']) {
      expect(() => sinceArgument('--since', bad, now)).toThrow(`--since '${bad}' is neither a time ago nor a date`);
    }
  });

  it('--outcome and --commit refuse what is not theirs, so nothing unchecked reaches a query', () => {
    expect(choiceArgument('--outcome', 'failed', ['promoted', 'failed'])).toBe('failed');
    expect(() => choiceArgument('--outcome', 'won', ['promoted', 'failed'])).toThrow("--outcome 'won' is not one of promoted, failed");
    expect(commitArgument('--commit', 'deadbeef')).toBe('deadbeef');
    for (const bad of ["a'b", 'a b', 'x'.repeat(65), '']) expect(() => commitArgument('--commit', bad)).toThrow('is not a commit id');
  });
});

describe('start options', () => {
  it('CI and manual runs outrank scheduled ones; the fairness key is the model', () => {
    expect(runPriority(input({ trigger: 'ci' }))).toEqual({ priorityKey: 2, fairnessKey: 'seed-mlp' });
    expect(runPriority(input({ trigger: 'manual' }))).toEqual({ priorityKey: 2, fairnessKey: 'seed-mlp' });
    expect(runPriority(input({ trigger: 'schedule' }))).toEqual({ priorityKey: 4, fairnessKey: 'seed-mlp' });
  });

  it('a run starts with its identity as search attributes, a one-line summary and Markdown details', () => {
    const opts = pipelineStartOptions(input({ trigger: 'ci', commit: 'deadbeef0123456789', environment: 'torch-2.13' }));
    expect(Object.fromEntries(opts.typedSearchAttributes.map((p) => [p.key.name, p.value]))).toEqual({
      TtdModel: 'seed-mlp',
      TtdTrigger: 'ci',
      TtdCommit: 'deadbeef0123456789',
      TtdEnvironment: 'torch-2.13',
      TtdFormats: ['torchscript'],
    });
    expect(opts.staticSummary).not.toContain('\n');
    expect(opts.staticSummary).toContain('ttd seed-mlp · ci · commit deadbeef0123 · torch-2.13');
    expect(opts.staticDetails).toContain(`| spec | sha256:${'a'.repeat(64)} |`);
    // A table cell cannot be broken out of by what a user wrote.
    expect(pipelineStartOptions(input({ actor: 'eve | x\n| y' })).staticDetails).toContain("| actor | eve ' x ' y |");
  });

  it('the dev server registers every search attribute with its type', () => {
    const args = devServerFeatureArgs();
    for (const a of ALL_SEARCH_ATTRIBUTES) expect(args).toContain(`${a.name}=${a.kind}`);
    expect(args).toContain('matching.enableFairness=true');
  });
});
