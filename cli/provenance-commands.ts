// `ttd pull --signature`, `ttd provenance` and `ttd signing-key`: what a version carries for tools that are not ttd's
// (lib/registry/attestations.ts), written only after it is checked against the version's own digests and, where a
// public key is at hand, its signature.
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { openStore } from '../lib/config';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { backedVersion } from '../lib/registry/audit';
import {
  ARTIFACT_FILE_NAMES,
  artifactFiles,
  checkModelSignature,
  checkProvenance,
  SIGNATURE_FILE,
  type Statement,
} from '../lib/registry/attestations';
import { auditReader } from '../lib/registry/keys';
import { formatsOf, readManifest, readVersionRecord, type VersionRecord } from '../lib/registry/records';
import { modelSigner, modelVerifiers, rotateModelSigningKey, type ModelVerifier } from '../lib/registry/signing-key';
import { getBlob, getBlobToFile, type ObjectStore } from '../lib/store/store';
import { loadTemporalConfig, type TemporalConfig } from '../temporal/config';
import { terminalLine } from '../render/terminal';
import { failWith, printJson, writeErr, writeOut } from './output';
import { checkOutputFile } from './output-file';

/** The names `ttd pull --signature` writes into its directory, and nothing else. */
const PULLED_NAMES = new Set<string>([...Object.values(ARTIFACT_FILE_NAMES), SIGNATURE_FILE]);

interface Signed {
  store: ObjectStore;
  model: string;
  version: number;
  record: VersionRecord & { signature: string; provenance: string };
  files: ReturnType<typeof artifactFiles>;
}

// The version a ref names, backed by the audit chain, with its signature and provenance; signature_missing for a
// version registered before ttd signed versions.
async function signedVersion(config: TemporalConfig, ref: string): Promise<Signed> {
  const store = openStore(config);
  const { state, version } = await backedVersion(store, ref, auditReader(config.keysDir));
  const record = await readVersionRecord(store, version.record);
  if (!record.signature || !record.provenance) {
    throw new TtdError(
      ErrorCode.signatureMissing,
      `version ${version.version} of '${state.model}' has no model signature or provenance: it was registered before ttd signed versions; run its pipeline again to sign a new version`,
      { model: state.model, version: version.version },
    );
  }
  const files = artifactFiles(formatsOf(await readManifest(store, record.manifest)));
  return { store, model: state.model, version: version.version, record: record as Signed['record'], files };
}

// The public key that signed a version: the one its record names among those here, or none when none is here.
function verifierFor(config: TemporalConfig, s: Signed, publicKey: string | undefined): ModelVerifier | undefined {
  const known = modelVerifiers(config, publicKey);
  if (!known.length) return undefined;
  const keyId = s.record.signingKey;
  const match = keyId ? known.find((v) => v.keyId === keyId) : known[0];
  if (!match) {
    throw new TtdError(
      ErrorCode.signatureInvalid,
      `version ${s.version} of '${s.model}' was signed by key ${keyId!.slice(0, 16)}…, which is none of the public keys here (${known.map((v) => `${v.keyId.slice(0, 16)}… in ${v.source}`).join(', ')}); pass the key that signed it with --public-key`,
      { model: s.model, version: s.version, keyId },
    );
  }
  return match;
}

const invalid = (s: Signed, what: string, why: string) =>
  new TtdError(
    ErrorCode.signatureInvalid,
    `the ${what} of version ${s.version} of '${s.model}' does not verify: ${why}; nothing was written`,
    {
      model: s.model,
      version: s.version,
    },
  );

/** `ttd pull REF --signature -o DIR`: every format's artifact and the OpenSSF model signature over them, into DIR (new or
 * empty), so that `model_signing verify key --signature DIR/model.sig --public_key KEY DIR` checks them. */
export async function pullSignedCommand(
  ref: string,
  opts: { output: string; format?: string; force?: boolean; json?: boolean; publicKey?: string },
): Promise<void> {
  const json = Boolean(opts.json);
  try {
    if (opts.format !== undefined) {
      throw new TtdError(
        ErrorCode.argumentInvalid,
        `--signature pulls every format of the version (the signature covers them all), so --format ${opts.format} cannot choose one; drop --format, or drop --signature to pull one file`,
      );
    }
    const dest = checkPullDirectory(opts.output, Boolean(opts.force));
    const config = loadTemporalConfig();
    const s = await signedVersion(config, ref);
    const bundle = (await getBlob(s.store, s.record.signature)).toString('utf8');
    const verifier = verifierFor(config, s, opts.publicKey);
    // Without a key here the bundle still has to name exactly these files; with one, it must also be signed by it.
    const why = checkModelSignature(bundle, verifier ?? null, s.files);
    if (why) throw invalid(s, 'model signature', why);

    // Into a folder beside DIR, then moved into place: a failure leaves DIR as it was.
    const tmp = mkdtempSync(join(dirname(dest), `.${basename(dest)}.ttd-pull-`));
    chmodSync(tmp, 0o755); // mkdtemp's is 0700: the pulled directory is as readable as any other pull's file
    const written: { name: string; format: string; digest: string; bytes: number }[] = [];
    try {
      for (const f of s.files) written.push({ ...f, bytes: await getBlobToFile(s.store, f.digest, join(tmp, f.name)) });
      writeFileSync(join(tmp, SIGNATURE_FILE), bundle, { mode: 0o644 });
      if (!existsSync(dest)) renameSync(tmp, dest);
      else {
        for (const name of readdirSync(dest)) rmSync(join(dest, name)); // only ttd pull's own names (checked above)
        for (const name of readdirSync(tmp)) renameSync(join(tmp, name), join(dest, name));
        rmdirSync(tmp);
      }
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    const signature = {
      path: join(dest, SIGNATURE_FILE),
      digest: s.record.signature,
      keyId: s.record.signingKey ?? null,
      verified: Boolean(verifier),
    };
    if (json) return printJson({ model: s.model, version: s.version, path: dest, files: written, signature });
    writeOut(
      `wrote ${s.model} version ${s.version} to ${terminalLine(dest)}: ${written.map((f) => f.name).join(', ')} and ${SIGNATURE_FILE}\n` +
        (verifier
          ? `  signature checked with ${terminalLine(verifier.source)}; verify it with: model_signing verify key --signature ${terminalLine(signature.path)} --public_key KEY.pub ${terminalLine(dest)}\n`
          : `  signature not checked here: no model signing public key in TTD_KEYS (pass --public-key, or verify with model_signing verify key)\n`),
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** Where `-o` points for --signature: a new directory in an existing folder, or an empty one; with --force, one that
 * holds only what an earlier `ttd pull --signature` wrote. */
function checkPullDirectory(output: string, force: boolean): string {
  if (!output.trim()) {
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}' is an empty path; expected a directory to pull the version into (e.g. -o model/)`,
      {
        path: output,
      },
    );
  }
  const dest = resolve(output);
  const parent = statSync(dirname(dest), { throwIfNoEntry: false });
  if (!parent?.isDirectory()) {
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}': the folder '${dirname(dest)}' ${parent ? 'is not a directory' : 'does not exist'}; expected a directory path in an existing folder`,
      { path: dest },
    );
  }
  const st = lstatSync(dest, { throwIfNoEntry: false });
  if (!st) return dest;
  if (!st.isDirectory()) {
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}' is ${st.isSymbolicLink() ? 'a symbolic link' : 'a file'}; --signature pulls a version into a directory: expected a new or empty directory`,
      { path: dest },
    );
  }
  const entries = readdirSync(dest);
  const foreign = entries.filter((e) => !PULLED_NAMES.has(e) || !lstatSync(join(dest, e)).isFile());
  if (foreign.length) {
    throw new TtdError(
      ErrorCode.outputExists,
      `-o '${output}' holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ` and ${foreign.length - 3} more` : ''}, which ttd pull did not write; model_signing verify refuses a directory with files the signature does not name: expected a new or empty directory`,
      { path: dest },
    );
  }
  if (entries.length && !force) {
    throw new TtdError(
      ErrorCode.outputExists,
      `-o '${output}' already holds a pulled version; pass --force to replace it, or choose another directory`,
      {
        path: dest,
      },
    );
  }
  return dest;
}

/** `ttd provenance REF [-o FILE] [--statement]`: the version's SLSA provenance, a DSSE envelope as it was signed. */
export async function provenanceCommand(
  ref: string,
  opts: { output?: string; force?: boolean; statement?: boolean; json?: boolean; publicKey?: string },
): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const dest =
      opts.output !== undefined
        ? checkOutputFile(opts.output, Boolean(opts.force), { command: 'provenance', example: 'provenance.json' })
        : undefined;
    const config = loadTemporalConfig();
    const s = await signedVersion(config, ref);
    const text = (await getBlob(s.store, s.record.provenance)).toString('utf8');
    const verifier = verifierFor(config, s, opts.publicKey);
    const opened = checkProvenance(text, verifier ?? null, s.files);
    if (!opened.ok) throw invalid(s, 'provenance', opened.why);
    const statement: Statement = opened.statement;
    const out = opts.statement ? `${JSON.stringify(statement, null, 2)}\n` : text;
    if (json) {
      return printJson({
        model: s.model,
        version: s.version,
        digest: s.record.provenance,
        keyId: s.record.signingKey ?? null,
        verified: Boolean(verifier),
        envelope: JSON.parse(text) as unknown,
        statement,
      });
    }
    if (dest) {
      writeFileSync(dest, out);
      writeErr(`wrote the provenance of ${s.model} version ${s.version} to ${terminalLine(dest)}\n`);
    } else writeOut(out);
    if (!verifier) writeErr('provenance not checked here: no model signing public key in TTD_KEYS (pass --public-key)\n');
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd signing-key [--json]`: the public half of the workers' model signing key, for auditors and serving platforms;
 * created as a worker would where the keys directory has none yet. */
export async function signingKeyCommand(opts: { json?: boolean; rotate?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadTemporalConfig();
    if (opts.rotate) {
      const r = rotateModelSigningKey(config);
      if (json)
        return printJson({
          keyId: r.current.keyId,
          curve: r.current.curve,
          retiredKeyId: r.retired.keyId,
          retiredFile: r.retiredFile,
          publicKey: r.current.publicKeyPem,
        });
      writeErr(
        `versions are now signed by key ${r.current.keyId.slice(0, 16)}…; key ${r.retired.keyId.slice(0, 16)}… is retired (${terminalLine(r.retiredFile)}), and versions it signed still verify with it; copy ${terminalLine(config.keysDir)} to every worker host, and publish the new public key (below)\n`,
      );
      return writeOut(r.current.publicKeyPem);
    }
    const signer = modelSigner(config, { create: true });
    if (json) return printJson({ keyId: signer.keyId, curve: signer.curve, source: signer.source, publicKey: signer.publicKeyPem });
    writeOut(signer.publicKeyPem);
  } catch (err) {
    failWith(err, json);
  }
}
