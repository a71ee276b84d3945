// A run's typed search attributes (lib/contract/search-attributes.ts): what the run is, known when it starts, and how it
// ended, known at its end. The CLI sets the first in the start options (so a run is found before its first workflow
// task); the workflow upserts them too, for runs started by an older schedule, and the outcome when it ends.
import { defineSearchAttributeKey, type SearchAttributePair, type SearchAttributeUpdatePair } from '@temporalio/common';
import { SEARCH_ATTRIBUTES as A } from '../lib/contract/search-attributes';
import type { RunResult } from '../lib/contract/results';
import type { PipelineInput } from './definitions';

/** The patch that added search attributes (and their upserts) to runs: a run started before it upserts none. */
export const SEARCH_ATTRIBUTES_PATCH = 'ttd-search-attributes';

const KEY = {
  model: defineSearchAttributeKey(A.model.name, 'KEYWORD'),
  trigger: defineSearchAttributeKey(A.trigger.name, 'KEYWORD'),
  commit: defineSearchAttributeKey(A.commit.name, 'KEYWORD'),
  environment: defineSearchAttributeKey(A.environment.name, 'KEYWORD'),
  formats: defineSearchAttributeKey(A.formats.name, 'KEYWORD_LIST'),
  outcome: defineSearchAttributeKey(A.outcome.name, 'KEYWORD'),
  version: defineSearchAttributeKey(A.version.name, 'INT'),
  digest: defineSearchAttributeKey(A.digest.name, 'KEYWORD'),
};

/** What a run is: model, trigger, commit, environment and formats. */
export function identityAttributes(input: PipelineInput): SearchAttributePair[] {
  return [
    { key: KEY.model, value: input.spec.name },
    { key: KEY.trigger, value: input.trigger },
    ...(input.commit ? [{ key: KEY.commit, value: input.commit }] : []),
    ...(input.environment ? [{ key: KEY.environment, value: input.environment }] : []),
    { key: KEY.formats, value: [...(input.spec.formats ?? ['torchscript'])] },
  ];
}

/** The stored artifact's digest, once the store stage has it. */
export function digestAttribute(digest: string): SearchAttributeUpdatePair[] {
  return [{ key: KEY.digest, value: digest }];
}

/** How the run ended, and the version a promoted run created. */
export function outcomeAttributes(result: Pick<RunResult, 'status' | 'version' | 'digest'> | 'cancelled'): SearchAttributeUpdatePair[] {
  if (result === 'cancelled') return [{ key: KEY.outcome, value: 'cancelled' }];
  return [
    { key: KEY.outcome, value: result.status },
    ...(result.version !== null ? [{ key: KEY.version, value: result.version }] : []),
    ...(result.digest ? [{ key: KEY.digest, value: result.digest }] : []),
  ];
}
