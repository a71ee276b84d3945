// `ttd show`, `ttd pull` and `ttd models`: read the registry, print or write, nothing else.
import { modelVerifiers } from '../lib/registry/signing-key';
import { openStore } from '../lib/config';
import { loadTemporalConfig } from '../temporal/config';
import { anchoredModels } from '../lib/registry/anchors';
import { assertBacked, auditedModels, backedVersion, readAudit, rotateSigningKey, verifyTrail } from '../lib/registry/audit';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { auditReader, auditWriter } from '../lib/registry/keys';
import { assertName } from '../lib/registry/names';
import { recordAliasMove } from '../lib/registry/promotion';
import { repairRegistry } from '../lib/registry/repair';
import { listModels, parseRef, previousOf, readModel, resolveRef, type ModelVersion } from '../lib/registry/registry';
import { fuserShown, runtimeVersion } from '../lib/contract/results';
import { formatsOf, legacyReports, readManifest, readVersionRecord, type LegacyReports } from '../lib/registry/records';
import { FORMATS, type Format } from '../lib/spec/spec';
import { getBlobToFile } from '../lib/store/store';
import { terminalLine } from '../render/terminal';
import { checkOutputFile } from './output-file';
import { failWith, gateLines, printJson, printJsonOr, sci, table, writeOut } from './output';

function fusionLines(fusion: LegacyReports['fusion']): string[] {
  if (!fusion) return [];
  return [
    `fusion (require ${fusion.require}, torch ${fusion.torch_version})`,
    ...(fusion.groups.length ? fusion.groups.map((g) => `  ${g.kind}: ${g.ops.join(', ')}`) : ['  no fusion groups']),
    ...(fusion.unfused_pointwise.length ? [`  unfused pointwise: ${fusion.unfused_pointwise.join(', ')}`] : []),
  ];
}

/** `ttd show REF [--json]`: one version with its aliases, files and stage reports. */
export async function showCommand(ref: string, opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const store = openStore(loadTemporalConfig());
    const { state, version } = await resolveRef(store, parseRef(ref));
    const record = await readVersionRecord(store, version.record);
    const manifest = await readManifest(store, record.manifest);
    const reports = legacyReports(manifest);
    const aliases = Object.entries(state.aliases)
      .filter(([, a]) => a.version === version.version)
      .map(([name]) => name);
    const view = {
      model: state.model,
      version: version.version,
      digest: version.digest,
      aliases,
      createdAt: version.createdAt,
      runId: version.runId,
      actor: record.actor,
      trigger: record.trigger,
      commit: record.commit,
      files: manifest.files,
      specDigest: manifest.specDigest,
      gates: record.gates,
      formats: formatsOf(manifest),
      reports: { ...reports, parity: record.parity },
      // Each build stage's output as the stage returned it (lib/contract/ops.ts); absent for versions stored before them.
      ...(manifest.format === 'ttd-manifest/2' ? { stages: manifest.stages } : {}),
      // The declared environment it was built in, with every package its requirements resolved to.
      ...(manifest.format === 'ttd-manifest/2' && manifest.environment ? { environment: manifest.environment } : {}),
      // The spec as the version stored it (a declared environment's `resolved` list included).
      spec: manifest.spec,
      // Its OpenSSF model signature and SLSA provenance (blob digests) and the key that signed them; null before signing.
      signed:
        record.signature && record.provenance
          ? { signature: record.signature, provenance: record.provenance, keyId: record.signingKey ?? null }
          : null,
      versions: state.versions.map((v) => ({ version: v.version, digest: v.digest, createdAt: v.createdAt, runId: v.runId })),
      allAliases: state.aliases,
      aliasHistory: state.aliasHistory,
    };
    if (json) return printJson(view);
    const lines = [
      // Records and manifests are store objects: whoever can write the store chose these strings.
      `${terminalLine(state.model)} version ${version.version}${aliases.length ? ` (${aliases.map((a) => `@${terminalLine(a)}`).join(', ')})` : ''}`,
      `  digest   ${terminalLine(version.digest)}`,
      ...Object.entries(formatsOf(manifest)).map(([format, a]) => `  ${terminalLine(format).padEnd(11)} ${terminalLine(a?.digest)}`),
      ...(manifest.format === 'ttd-manifest/2' && manifest.environment
        ? [
            `  environment ${terminalLine(manifest.environment.base)} + ${manifest.environment.installed.length} packages (${terminalLine(manifest.environment.digest)}): ${manifest.environment.resolved.map(terminalLine).join(' ')}`,
          ]
        : []),
      record.signature
        ? `  signed   by key ${terminalLine(record.signingKey?.slice(0, 16) ?? '?')}… (ttd pull ${terminalLine(state.model)}:${version.version} --signature, ttd provenance)`
        : '  signed   no: registered before ttd signed versions',
      `  created  ${terminalLine(version.createdAt)} by ${terminalLine(record.actor)} (${terminalLine(record.trigger)}${record.commit ? ` ${terminalLine(record.commit)}` : ''}), run ${terminalLine(version.runId)}`,
      'gates',
      ...gateLines(record.gates),
      ...fusionLines(reports.fusion),
      `parity (atol ${record.parity?.atol}, rtol ${record.parity?.rtol})`,
      table([
        ['format', 'runtime', 'environment', 'fuser', 'max abs err', 'torch', 'result'],
        ...(record.parity?.runtimes ?? []).map((p) => [
          p.format ?? 'torchscript',
          p.runtime,
          p.environment ?? '—',
          fuserShown(p),
          sci(p.max_abs_error),
          runtimeVersion(p) ?? '—',
          p.passed ? 'agrees' : 'FAILED',
        ]),
      ]),
      'versions',
      table(state.versions.map((v) => [String(v.version), v.digest.slice(0, 19), v.createdAt])),
    ];
    writeOut(`${lines.join('\n')}\n`);
  } catch (err) {
    failWith(err, json);
  }
}

const PULL_OUTPUT = { command: 'pull', example: 'model.pt' } as const;

/** `ttd pull REF -o FILE`: writes the artifact only if its bytes match the registered digest. */
export async function pullCommand(ref: string, opts: { output: string; format?: string; force?: boolean; json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const format = opts.format ?? 'torchscript';
    if (!(FORMATS as readonly string[]).includes(format)) {
      throw new TtdError(ErrorCode.argumentInvalid, `--format must be one of ${FORMATS.join(', ')} (got '${format}')`);
    }
    const dest = checkOutputFile(opts.output, Boolean(opts.force), PULL_OUTPUT);
    const config = loadTemporalConfig();
    const store = openStore(config);
    // Only what the audit trail backs is served: a registry entry or version record a store writer added or moved is refused.
    const { state, version } = await backedVersion(store, ref, auditReader(config.keysDir));
    const formats = formatsOf(await readManifest(store, (await readVersionRecord(store, version.record)).manifest));
    const artifact = formats[format as Format];
    if (!artifact) {
      throw new TtdError(
        ErrorCode.formatNotFound,
        `version ${version.version} of '${state.model}' has no ${format} artifact; it has ${Object.keys(formats).join(', ')} (ttd pull --format NAME)`,
      );
    }
    const bytes = await getBlobToFile(store, artifact.digest, dest); // a digest mismatch throws before anything is written
    if (json) printJson({ model: state.model, version: version.version, digest: artifact.digest, format, path: dest, bytes });
    else writeOut(`wrote ${state.model} version ${version.version} as ${format} (${artifact.digest}) to ${dest}\n`);
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd models [--json]`: every model with its latest version and aliases. */
export async function modelsCommand(opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const store = openStore(loadTemporalConfig());
    const models = [];
    for (const name of await listModels(store)) {
      const found = await readModel(store, name);
      if (!found) continue;
      const latest = found.state.versions[found.state.versions.length - 1];
      models.push({
        model: name,
        versions: found.state.versions.length,
        latest: latest ? { version: latest.version, digest: latest.digest, createdAt: latest.createdAt } : null,
        aliases: Object.fromEntries(Object.entries(found.state.aliases).map(([a, v]) => [a, v.version])),
      });
    }
    if (json) return printJson({ models });
    if (models.length === 0) return void writeOut('no models registered\n');
    writeOut(
      `${table(
        [
          ['model', 'versions', 'latest', 'aliases'],
          ...models.map((m) => [
            m.model,
            String(m.versions),
            m.latest ? `${m.latest.version} ${m.latest.digest.slice(0, 19)}` : '—',
            Object.entries(m.aliases)
              .map(([a, v]) => `${a}→${v}`)
              .join(' '),
          ]),
        ],
        '',
      )}\n`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd promote MODEL:VERSION --alias A`: moves an alias to a version whose gates all passed. */
export async function promoteCommand(ref: string, opts: { alias: string; json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadTemporalConfig();
    const store = openStore(config);
    // Every argument is checked before anything is read or written: a bad alias never leaves a record behind.
    const parsed = parseRef(ref);
    if (parsed.version === undefined) throw new TtdError(ErrorCode.badReference, `ttd promote needs MODEL:VERSION (got '${ref}')`);
    assertName('alias', opts.alias);
    await repairRegistry(store, parsed.model, auditReader(config.keysDir)); // a damaged state, rebuilt from the chain
    const { state, version } = await resolveRef(store, parsed);
    const record = await readVersionRecord(store, version.record);
    // The verification gates must all have passed; a comparison that kept the version back may be overruled.
    const failed = record.gates.filter((g) => !g.passed && g.gate !== 'promotion');
    if (failed.length) {
      throw new TtdError(
        ErrorCode.versionNotPromotable,
        `version ${version.version} of '${parsed.model}' did not pass gate ${failed.map((g) => `'${g.gate}' (${g.code})`).join(', ')}; only versions whose gates all passed can be promoted`,
      );
    }
    // A version the audit trail does not back (one a store writer registered) is never promoted.
    await assertBacked(store, parsed.model, { version: version.version, digest: version.digest }, auditReader(config.keysDir));
    const current = state.aliases[opts.alias]?.version ?? null;
    const moved =
      current === version.version
        ? { moved: false, previousVersion: current }
        : await recordAliasMove(
            store,
            auditWriter(config.keysDir, { create: false }),
            auditEntry('manual_promote', parsed.model, version, opts.alias, config.actor),
          );
    printJsonOr(
      json,
      { model: parsed.model, alias: opts.alias, version: version.version, previousVersion: moved.previousVersion, moved: moved.moved },
      moved.moved
        ? `'${parsed.model}@${opts.alias}' now points at version ${version.version} (was ${moved.previousVersion ?? 'unset'})`
        : `'${parsed.model}@${opts.alias}' already points at version ${version.version}`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd rollback MODEL --alias A`: moves the alias back to the version it held before. */
export async function rollbackCommand(model: string, opts: { alias: string; json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadTemporalConfig();
    const store = openStore(config);
    const parsed = parseRef(model);
    assertName('alias', opts.alias); // before anything is written
    await repairRegistry(store, parsed.model, auditReader(config.keysDir));
    const { state } = await resolveRef(store, parsed);
    const current = state.aliases[opts.alias];
    if (!current) throw new TtdError(ErrorCode.aliasNotFound, `model '${model}' has no alias '${opts.alias}'`);
    const target = previousOf(state, opts.alias);
    if (target === null) {
      throw new TtdError(
        ErrorCode.nothingToRollBack,
        `'${model}@${opts.alias}' has no earlier version to roll back to (it has only ever pointed at version ${current.version})`,
      );
    }
    const version = state.versions.find((v) => v.version === target)!;
    await assertBacked(store, model, { version: version.version, digest: version.digest }, auditReader(config.keysDir));
    const moved = await recordAliasMove(
      store,
      auditWriter(config.keysDir, { create: false }),
      auditEntry('rollback', model, version, opts.alias, config.actor),
    );
    printJsonOr(
      json,
      { model, alias: opts.alias, version: target, previousVersion: moved.previousVersion },
      `rolled '${model}@${opts.alias}' back from version ${moved.previousVersion} to version ${target}`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd audit log MODEL [--json]`: every alias move, approval, rejection and rollback, in order. */
export async function auditLogCommand(model: string, opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const store = openStore(loadTemporalConfig());
    const records = await readAudit(store, assertName('model', model));
    if (json) return printJson({ model, records });
    if (!records.length) return void writeOut(`no audit records for '${model}'\n`);
    writeOut(
      `${table(
        [
          ['seq', 'at', 'action', 'version', 'alias', 'who', 'run', 'why'],
          ...records.map((r) => [
            String(r.seq),
            r.at,
            r.action,
            r.version === null ? '—' : `${r.previousVersion ?? '—'}→${r.version}`,
            r.alias ?? '—',
            r.approvedBy ? `${r.actor} (approved by ${r.approvedBy})` : r.actor,
            r.runId ?? '—',
            r.reason ?? '',
          ]),
        ],
        '',
      )}\n`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

function auditEntry(action: 'manual_promote' | 'rollback', model: string, version: ModelVersion, alias: string, actor: string) {
  return {
    action,
    model,
    digest: version.digest,
    alias,
    record: version.record,
    runId: null,
    actor,
    trigger: null,
    commit: null,
    checks: [],
    at: new Date().toISOString(),
  };
}

/** `ttd audit verify [MODEL] [--json]`: recomputes every chain, checks every signature against the public key, holds each
 * chain to its anchor, checks every blob and cross-checks the registry; exit 1 names the first problem of each model. */
export async function auditVerifyCommand(
  model: string | undefined,
  opts: { json?: boolean; publicKey?: string; anchors?: string; retiredKeys?: string; requireSigned?: boolean; signingKey?: string },
): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadTemporalConfig();
    const store = openStore(config);
    const trust = {
      ...auditReader(config.keysDir, { publicKey: opts.publicKey, anchorsDir: opts.anchors, retiredDir: opts.retiredKeys }),
      requireSigned: Boolean(opts.requireSigned),
      // The model signing public keys: --signing-key alone, else the workers' current and retired ones (TTD_KEYS).
      modelVerifiers: modelVerifiers(config, opts.signingKey),
    };
    // Every model the store or the anchors know of: a chain deleted with its registry entry still has its anchor.
    const models =
      model !== undefined // an empty name ('') is a bad name, not 'all models'
        ? [assertName('model', model)]
        : [
            ...new Set([
              ...(await auditedModels(store)),
              ...(await listModels(store)),
              ...(trust.anchorsDir ? anchoredModels(trust.anchorsDir) : []),
            ]),
          ].sort();
    const verdicts = [];
    for (const m of models) verdicts.push(await verifyTrail(store, m, trust));
    const ok = verdicts.every((v) => v.problem === null);
    if (json) {
      printJson({
        ok,
        store: store.location,
        models: verdicts,
        publicKey: trust.verifier ? { keyId: trust.verifier.keyId, source: trust.verifier.source } : null,
        signingKeys: trust.modelVerifiers.map((k) => ({ keyId: k.keyId, source: k.source })),
        retiredKeys: (trust.verifier?.retired ?? []).map((k) => ({ keyId: k.keyId, source: k.source, retiredAt: k.retiredAt })),
        anchors: trust.anchorsDir ?? null,
      });
    } else {
      for (const v of verdicts) {
        writeOut(
          v.problem
            ? `${v.model}: BROKEN at ${terminalLine(v.problem.key)}: ${terminalLine(v.problem.reason)} [${v.problem.code}]${v.problems.length > 1 ? ` (and ${v.problems.length - 1} more problems; --json lists them)` : ''}\n`
            : `${v.model}: ${v.records} records, chain intact, every blob matches its digest; ${signatureSummary(v.signed, v.unsigned, trust.verifier?.keyId, trust.verifier?.retired?.length ?? 0)}; ${v.anchor ? `anchored at record ${v.anchor.seq}` : 'no anchor'}; registry agrees; ${v.attested} version${v.attested === 1 ? '' : 's'} with a model signature and provenance that ${trust.modelVerifiers.length ? 'verify' : 'name their artifacts (no model signing public key here to verify them: --signing-key)'}\n`,
        );
      }
      if (!verdicts.length) writeOut('no audit records\n');
    }
    process.exitCode = ok ? 0 : 1;
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd audit rotate-key [--json]`: a new audit signing key in TTD_KEYS; the old one retired (docs/trust-audit.md). */
export async function auditRotateKeyCommand(opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const config = loadTemporalConfig();
    const r = await rotateSigningKey(openStore(config), config.keysDir);
    const chains = Object.keys(r.heads).length;
    printJsonOr(
      json,
      r,
      `${r.resumed ? 'finished an interrupted rotation: ' : ''}audit records are now signed by key ${r.keyId}; key ${r.retiredKeyId} is retired (${terminalLine(r.retiredKeyFile)}), its records in ${chains} chain${chains === 1 ? '' : 's'} still verify; copy ${terminalLine(config.keysDir)} (the key files and retired/) to every worker host`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

function signatureSummary(signed: number, unsigned: number, keyId: string | undefined, retired: number): string {
  if (signed === 0) return `${unsigned} unsigned (written before records were signed)`;
  const by = retired ? `${keyId} or ${retired === 1 ? 'the key' : `one of the ${retired} keys`} retired before it` : keyId;
  return `${signed} signed by ${by}${unsigned ? `, ${unsigned} unsigned before them` : ''}`;
}
