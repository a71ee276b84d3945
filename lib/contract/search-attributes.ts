// The search attributes every pipeline run carries, so that runs can be found by what they are with Temporal's own tools
// (`temporal workflow list --query`, the Temporal UI) as with `ttd runs`. Plain data, no imports: the workflow bundle
// (workflows/search-attributes.ts), the embedded server's flags and the start-up check (temporal/search-attributes.ts)
// and `ttd runs` all read this one table. Names are public: queries in users' scripts depend on them.

/** Temporal's search attribute types that ttd uses, as `temporal operator search-attribute create --type` spells them. */
export type SearchAttributeKind = 'Keyword' | 'Int' | 'KeywordList';

/** One attribute: its name, its type, and what it holds (docs/operations.md lists them). */
export interface TtdSearchAttribute {
  name: string;
  kind: SearchAttributeKind;
  doc: string;
}

export const SEARCH_ATTRIBUTES = {
  model: { name: 'TtdModel', kind: 'Keyword', doc: "the spec's model name" },
  trigger: { name: 'TtdTrigger', kind: 'Keyword', doc: 'manual, ci or schedule' },
  commit: { name: 'TtdCommit', kind: 'Keyword', doc: 'the commit the run was started for (ttd run --commit), when given' },
  environment: {
    name: 'TtdEnvironment',
    kind: 'Keyword',
    doc: 'the torch environment the run trains in (torch-2.13, torch-1.13, a declared one)',
  },
  formats: { name: 'TtdFormats', kind: 'KeywordList', doc: 'the formats the run builds (torchscript, aoti, onnx)' },
  outcome: { name: 'TtdOutcome', kind: 'Keyword', doc: 'how the run ended: promoted, rejected, failed or cancelled; absent while it runs' },
  version: { name: 'TtdVersion', kind: 'Int', doc: 'the registry version a promoted run created' },
  digest: { name: 'TtdDigest', kind: 'Keyword', doc: "the stored artifact's sha256 digest (the first format's), once stored" },
} as const satisfies Record<string, TtdSearchAttribute>;

/** Every ttd search attribute, in the table's order. */
export const ALL_SEARCH_ATTRIBUTES: readonly TtdSearchAttribute[] = Object.values(SEARCH_ATTRIBUTES);

/** The values `ttd runs --outcome` and TtdOutcome take. */
export const OUTCOMES = ['promoted', 'rejected', 'failed', 'cancelled'] as const;
export type Outcome = (typeof OUTCOMES)[number];
