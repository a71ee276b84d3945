// What `ttd audit verify` checks of each version's model signature and provenance (./attestations.ts): both blobs are
// there and unaltered, both name exactly the version's artifacts, and, where the model signing public key is at hand,
// both verify with the key the record names.
import { DigestMismatchError, ErrorCode } from '../contract/errors';
import { blobKey, getBlob, type ObjectStore } from '../store/store';
import { artifactFiles, checkModelSignature, checkProvenance, type NamedFile } from './attestations';
import type { AuditProblem } from './audit';
import { formatsOf, readManifest, readVersionRecord } from './records';
import { registryKey, type ModelVersion } from './registry';
import type { ModelVerifier } from './signing-key';

/** Problems with the signatures and provenance of `versions` (those whose version record the chain backs), and how many
 * carry both and check. */
export async function checkAttestations(
  store: ObjectStore,
  model: string,
  versions: ModelVersion[],
  verifiers: ModelVerifier[] | undefined,
): Promise<{ problems: AuditProblem[]; attested: number }> {
  const problems: AuditProblem[] = [];
  let attested = 0;
  const key = registryKey(model);
  for (const v of versions) {
    let files: NamedFile[];
    let record;
    try {
      record = await readVersionRecord(store, v.record);
      files = artifactFiles(formatsOf(await readManifest(store, record.manifest)));
    } catch {
      continue; // a record the chain names is checked as a blob (checkBlobs); one that is not a record carries nothing to check
    }
    if (!record.signature || !record.provenance) continue; // registered before signing
    const known = verifiers?.find((k) => k.keyId === record.signingKey);
    if (verifiers?.length && !known) {
      problems.push({
        key,
        code: ErrorCode.signatureInvalid,
        reason: `version ${v.version} was signed by key ${record.signingKey ?? '(unnamed)'}, none of the model signing public keys here`,
      });
      continue;
    }
    const verifier = known ?? null; // no public key here: the files they name are still checked
    let bad = false;
    for (const [kind, digest] of [
      ['model signature', record.signature],
      ['provenance', record.provenance],
    ] as const) {
      let text: string;
      try {
        text = (await getBlob(store, digest)).toString('utf8');
      } catch (err) {
        const why = err instanceof DigestMismatchError ? 'altered' : 'missing';
        problems.push({
          key: blobKey(digest),
          code: ErrorCode.signatureInvalid,
          reason: `version ${v.version}: its ${kind} blob is ${why}`,
        });
        bad = true;
        continue;
      }
      const opened = kind === 'provenance' ? checkProvenance(text, verifier, files) : null;
      const reason = opened ? (opened.ok ? null : opened.why) : checkModelSignature(text, verifier, files);
      if (reason) {
        problems.push({
          key: blobKey(digest),
          code: ErrorCode.signatureInvalid,
          reason: `version ${v.version}: its ${kind} does not verify: ${reason}`,
        });
        bad = true;
      }
    }
    if (!bad) attested++;
  }
  return { problems, attested };
}
