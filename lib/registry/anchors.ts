// Anchors: the head of each model's audit chain (its length and last hash), signed and kept outside the store, so
// that a store writer who removes records from the end of a chain, or the whole chain, is found out.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { canonicalJson } from '../store/digest';
import { ErrorCode, TtdError } from '../contract/errors';
import type { AuditSigner, AuditVerifier } from './keys';
import { assertName } from './names';

const FORMAT = 'ttd-audit-anchor/1';

const AnchorSchema = z.object({
  format: z.literal(FORMAT),
  model: z.string(),
  seq: z.number().int().positive(),
  hash: z.string(),
  keyId: z.string(),
  signature: z.string(),
});

/** An anchor as read from disk, with the file it came from. */
export type Anchor = z.infer<typeof AnchorSchema> & { path: string };

/** What an anchor's signature covers. */
export function anchorMessage(a: { model: string; seq: number; hash: string }): string {
  return `ttd-audit-anchor:${canonicalJson({ model: a.model, seq: a.seq, hash: a.hash })}`;
}

/** The anchor file of a model. */
export function anchorPath(dir: string, model: string): string {
  return join(dir, `${assertName('model', model)}.json`);
}

/** Records that a model's chain reached `record` (never moves an anchor back: a host's anchor is a lower bound). */
export async function writeAnchor(dir: string, signer: AuditSigner, record: { model: string; seq: number; hash: string }): Promise<void> {
  const path = anchorPath(dir, record.model);
  const current = readAnchor(dir, record.model);
  if (current && current.seq >= record.seq) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const anchor = {
    format: FORMAT,
    model: record.model,
    seq: record.seq,
    hash: record.hash,
    keyId: signer.keyId,
    signature: signer.sign(anchorMessage(record)),
  };
  replaceFile(path, anchor);
}

/** Signs again with `signer` every anchor of `dir` that `old` signed and that verifies with it (a key rotation): an
 * anchor that does not verify is left as it is, for `ttd audit verify` to name. */
export function reSignAnchors(dir: string, old: AuditVerifier, signer: AuditSigner): void {
  for (const model of anchoredModels(dir)) {
    const anchor = readAnchor(dir, model);
    if (!anchor || anchor.keyId !== old.keyId || !old.verify(anchorMessage(anchor), anchor.signature)) continue;
    const { path: _path, ...content } = anchor;
    replaceFile(anchorPath(dir, model), { ...content, keyId: signer.keyId, signature: signer.sign(anchorMessage(anchor)) });
  }
}

function replaceFile(path: string, anchor: object): void {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}`;
  try {
    writeFileSync(tmp, `${JSON.stringify(anchor, null, 2)}\n`);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** A model's anchor, or undefined when it has none. A file that is not an anchor is an error naming it. */
export function readAnchor(dir: string, model: string): Anchor | undefined {
  const path = anchorPath(dir, model);
  if (!existsSync(path)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    raw = undefined;
  }
  const parsed = AnchorSchema.safeParse(raw);
  if (!parsed.success || parsed.data.model !== model) {
    throw new TtdError(
      ErrorCode.auditAnchorMismatch,
      `${path} is not the audit anchor of model '${model}' (expected a ${FORMAT} JSON object naming it)`,
      {
        path,
      },
    );
  }
  return { ...parsed.data, path };
}

/** Models that have an anchor in `dir`. */
export function anchoredModels(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}
