// What a stage reports per case or per output travels in workflow history: with many reference cases it would pass
// Temporal's payload limit (2 MiB; a run of 5000 cases failed there). Long lists are cut to their first few, failures
// first, and kept whole as a JSON blob in the store, which the history names by digest.
import { putBlob, type ObjectStore } from '../store/store';

/** The most entries of a per-case or per-output list that history carries. */
export const REPORTED_IN_HISTORY = 32;

/** The list as history carries it: the first REPORTED_IN_HISTORY entries, failures first; with the whole list's blob
 * digest and length when that cut something. */
export async function reportedInHistory<T extends { passed: boolean }>(
  store: ObjectStore,
  items: T[],
): Promise<{ items: T[]; total?: number; digest?: string }> {
  if (items.length <= REPORTED_IN_HISTORY) return { items };
  const failed = items.filter((i) => !i.passed);
  const shown = [...failed, ...items.filter((i) => i.passed)].slice(0, REPORTED_IN_HISTORY);
  return { items: shown, total: items.length, digest: await putBlob(store, JSON.stringify(items)) };
}
