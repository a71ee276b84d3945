// How a pipeline run is started, whoever starts it (`ttd run`, a schedule): its search attributes, what the Temporal UI
// shows of it, and its place in the task queues (priority by trigger, fairness by model).
import type { Priority, SearchAttributePair } from '@temporalio/common';
import type { PipelineInput } from './definitions';
import { identityAttributes } from './search-attributes';

/** Priority keys (1 first, 5 last; Temporal's default is 3): a person or CI waiting on a run goes before scheduled
 * retraining, which nobody watches as it happens. */
export const PRIORITY_BY_TRIGGER: Record<PipelineInput['trigger'], number> = { manual: 2, ci: 2, schedule: 4 };

/** A run's priority: its trigger's key, and its model as the fairness key, so that a burst of one model's runs shares the
 * workers with other models' runs at the same priority instead of going first. The workflow gives each activity the
 * same (workflows/run-state.ts), so that runs started without it (an older schedule) queue as theirs would. */
export function runPriority(input: Pick<PipelineInput, 'trigger' | 'spec'>): Priority {
  return { priorityKey: PRIORITY_BY_TRIGGER[input.trigger] ?? 3, fairnessKey: input.spec.name };
}

/** The start options every pipeline run gets besides its id and queue. */
export function pipelineStartOptions(input: PipelineInput): {
  memo: Record<string, unknown>;
  typedSearchAttributes: SearchAttributePair[];
  staticSummary: string;
  staticDetails: string;
  priority: Priority;
} {
  return {
    memo: { model: input.spec.name, trigger: input.trigger, commit: input.commit },
    typedSearchAttributes: identityAttributes(input),
    staticSummary: runSummary(input),
    staticDetails: runStaticDetails(input),
    priority: runPriority(input),
  };
}

/** One line: the model, what started the run, its commit and environment. */
export function runSummary(input: PipelineInput): string {
  const source = input.foreign ? `foreign artifact ${input.foreign.artifactDigest.slice(0, 19)}…` : 'train → trace → verify → promote';
  return [
    `ttd ${input.spec.name}`,
    input.trigger,
    ...(input.commit ? [`commit ${input.commit.slice(0, 12)}`] : []),
    ...(input.environment ? [input.environment] : []),
    input.spec.formats.join('+'),
    source,
  ].join(' · ');
}

/** What the run starts from, as Markdown: the inputs' digests, who started it, where its artifacts go. */
export function runStaticDetails(input: PipelineInput): string {
  const rows: [string, string | undefined][] = [
    ['model', input.spec.name],
    ['spec', input.specDigest],
    ['model file', input.modelFileDigest ? `${input.modelFileDigest} (${input.modelFilePath ?? 'model.py'})` : undefined],
    ['foreign artifact', input.foreign ? `${input.foreign.artifactDigest} (${input.foreign.artifactPath})` : undefined],
    ['trigger', input.trigger],
    ['actor', input.actor],
    ['commit', input.commit ?? undefined],
    ['environment', input.environment],
    ['formats', input.spec.formats.join(', ')],
    ['alias', input.spec.promote.alias],
    ['approval', input.spec.promote.approval],
    ['store', input.store],
  ];
  const cell = (s: string) => s.replace(/\s+/g, ' ').replace(/[|`]/g, "'").slice(0, 300);
  return [
    '| | |',
    '|---|---|',
    ...rows.filter((r): r is [string, string] => r[1] !== undefined && r[1] !== '').map(([k, v]) => `| ${k} | ${cell(v)} |`),
  ].join('\n');
}
