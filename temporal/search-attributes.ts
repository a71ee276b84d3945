// ttd's search attributes on the server: registered by the embedded dev server, checked on a cluster before anything
// starts there (a run whose workflow upserts an attribute the namespace lacks would fail every workflow task).
import type { Client } from '@temporalio/client';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { ALL_SEARCH_ATTRIBUTES, type SearchAttributeKind } from '../lib/contract/search-attributes';

/** The dev server's flags for what ttd relies on (the embedded server's, and the test suite's server's): every search
 * attribute registered (`--search-attribute TtdModel=Keyword`), and task queue priority with fairness on one partition
 * per queue, so that a CI run's tasks pass a burst of scheduled ones and one model's burst does not starve another's
 * (docs/operations.md, "Priority and fairness"). */
export function devServerFeatureArgs(): string[] {
  return [
    ...ALL_SEARCH_ATTRIBUTES.flatMap((a) => ['--search-attribute', `${a.name}=${a.kind}`]),
    ...[
      'matching.useNewMatcher=true',
      'matching.enableFairness=true',
      'matching.numTaskqueueReadPartitions=1',
      'matching.numTaskqueueWritePartitions=1',
    ].flatMap((v) => ['--dynamic-config-value', v]),
  ];
}

// The server's IndexedValueType enum (temporal.api.enums.v1) for each kind ttd uses.
const INDEXED_VALUE_TYPE: Record<SearchAttributeKind, number> = { Keyword: 2, Int: 3, KeywordList: 7 };

/** Makes sure the namespace has every ttd search attribute with its type. The embedded server (`embedded`: no
 * TEMPORAL_ADDRESS; a server an older ttd started lacks them) gets the missing ones added; on any other server they
 * are an operator's to create, so a missing or mistyped one is an error naming each and the command that creates it. */
export async function ensureSearchAttributes(client: Client, namespace: string, opts: { embedded: boolean }): Promise<void> {
  const listed = await client.connection.operatorService.listSearchAttributes({ namespace });
  const types = { ...listed.systemAttributes, ...listed.customAttributes } as Record<string, number>;
  const missing = ALL_SEARCH_ATTRIBUTES.filter((a) => !(a.name in types));
  const mistyped = ALL_SEARCH_ATTRIBUTES.filter((a) => a.name in types && types[a.name] !== INDEXED_VALUE_TYPE[a.kind]);
  if (missing.length && opts.embedded && !mistyped.length) {
    await client.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((a) => [a.name, INDEXED_VALUE_TYPE[a.kind]])),
    });
    return;
  }
  if (!missing.length && !mistyped.length) return;
  const command = (a: (typeof missing)[number]) =>
    `temporal operator search-attribute create --namespace ${namespace} --name ${a.name} --type ${a.kind}`;
  const parts = [
    ...(missing.length ? [`lacks ${missing.map((a) => `${a.name} (${a.kind})`).join(', ')}`] : []),
    ...(mistyped.length ? [`has ${mistyped.map((a) => `${a.name} with another type than ${a.kind}`).join(', ')}`] : []),
  ];
  throw new TtdError(
    ErrorCode.searchAttributesMissing,
    `namespace '${namespace}' ${parts.join(' and ')}: ttd's runs carry these search attributes ` +
      `(docs/operations.md, "Finding runs"); create ${missing.length === 1 ? 'it' : 'them'} with ` +
      `${missing.map(command).join(' && ')}${mistyped.length ? ' (a mistyped one must be removed first: temporal operator search-attribute delete)' : ''}`,
    { namespace, missing: missing.map((a) => a.name), mistyped: mistyped.map((a) => a.name) },
  );
}
