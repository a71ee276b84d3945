// Visibility queries for ttd's runs: `ttd runs` builds one from its filters, and prints it, so that the same query
// works in `temporal workflow list --query` and in the Temporal UI's search box (docs/operations.md, "Finding runs").
import { SEARCH_ATTRIBUTES as A, type Outcome } from '../lib/contract/search-attributes';

/** What `ttd runs` filters on; each value has been checked (names, commit ids, dates), so none needs escaping. */
export interface RunFilter {
  model?: string;
  /** How the run ended, or `running` for one that has not. */
  outcome?: Outcome | 'running';
  /** Runs started at or after this time. */
  since?: Date;
  /** A commit id or its prefix (a short SHA finds the runs of the full one). */
  commit?: string;
}

/** The visibility query for pipeline runs of `workflowType` that match the filter. */
export function runsQuery(workflowType: string, filter: RunFilter = {}): string {
  const terms = [`WorkflowType = '${workflowType}'`];
  if (filter.model !== undefined) terms.push(`${A.model.name} = '${filter.model}'`);
  if (filter.outcome === 'running') terms.push(`ExecutionStatus = 'Running'`);
  else if (filter.outcome !== undefined) terms.push(`${A.outcome.name} = '${filter.outcome}'`);
  if (filter.since !== undefined) terms.push(`StartTime >= '${filter.since.toISOString()}'`);
  if (filter.commit !== undefined) terms.push(`${A.commit.name} STARTS_WITH '${filter.commit}'`);
  return terms.join(' AND ');
}
