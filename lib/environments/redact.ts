// Redaction of the worker's secrets from text that leaves a stage (messages, tracebacks, stderr tails), so that a
// model that got hold of a credential cannot put it into workflow history, a run result or a report.
import { isSecretName } from './sandbox';

// Values shorter than this are not redacted: replacing "1" or "true" everywhere would garble messages and hide nothing.
const MIN_SECRET_CHARS = 6;

/** The secret values of an environment (variables named like *SECRET*, *TOKEN*, *PASSWORD*, *_KEY, AWS_*,
 * *CREDENTIAL*), longest first, each with its variable's name. */
export function secretValues(env: NodeJS.ProcessEnv = process.env): [string, string][] {
  const found = new Map<string, string>();
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value.trim().length < MIN_SECRET_CHARS || !isSecretName(name)) continue;
    if (!found.has(value)) found.set(value, name);
  }
  return [...found.entries()].sort((a, b) => b[0].length - a[0].length);
}

/** `text` with every secret value of `env` replaced by `[redacted NAME]`. */
export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text;
  for (const [value, name] of secretValues(env)) out = out.split(value).join(`[redacted ${name}]`);
  return out;
}

/** `value` with `redact` applied to every string in it (objects and arrays are copied, other values kept). */
export function redactDeep<T>(value: T, env: NodeJS.ProcessEnv = process.env): T {
  const secrets = secretValues(env);
  if (!secrets.length) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return secrets.reduce((t, [s, name]) => t.split(s).join(`[redacted ${name}]`), v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}
