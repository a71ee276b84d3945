// Stored records read through one schema each (lib/registry/records.ts), including those written by earlier versions of ttd.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../lib/store/fs-store';
import {
  legacyReports,
  readManifest,
  readVersionRecord,
  RecordInvalidError,
  writeManifest,
  type ManifestV2,
} from '../../lib/registry/records';
import { putBlob } from '../../lib/store/store';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const store = () => new FsObjectStore(mkdtempSync(join(tmpdir(), 'ttd-records-')));
const base = {
  model: 'seed-mlp',
  runId: 'run-1',
  artifact: { digest: d('a'), format: 'torchscript' },
  files: { artifact: d('a'), references: d('b'), irBefore: d('c'), irAfter: d('e') },
  specDigest: d('f'),
  spec: { name: 'seed-mlp' },
};

describe('stored records', () => {
  it('a manifest written before the stage contract (ttd-manifest/1) still reads, and show gets its reports unchanged', async () => {
    const s = store();
    const reports = {
      training: { losses: [2, 1], epochs: 2, rows: 10 },
      trace: { mode: 'trace', node_total: 5 },
      optimize: {
        method: 'freeze',
        nodes_before: {},
        nodes_after: {},
        node_total_before: 9,
        node_total_after: 5,
        nodes_for_inference: null,
        max_abs_error: 0,
      },
    };
    const at = await putBlob(s, JSON.stringify({ format: 'ttd-manifest/1', ...base, reports }));
    const m = await readManifest(s, at);
    expect(m.format).toBe('ttd-manifest/1');
    expect(legacyReports(m)).toEqual(reports);
  });

  it('a manifest of stage outputs gives show the same report fields, derived from the outputs', async () => {
    const s = store();
    const manifest: ManifestV2 = {
      format: 'ttd-manifest/2',
      ...base,
      stages: {
        train: {
          status: 'ok',
          files: { weights: d('1') },
          losses: [2, 1],
          epochs_completed: 2,
          rows: 10,
          resumed_from_epoch: 0,
          checkpoint_path: null,
        },
        fusion: {
          passed: true,
          code: null,
          message: 'ok',
          require: 'any',
          groups: [{ kind: 'prim::TensorExprGroup', ops: ['aten::mul'] }],
          unfused_pointwise: [],
          max_abs_error: 0,
          flags: { can_fuse_on_cpu: true },
          torch_version: '1.13.0',
          files: { graph: d('2') },
        },
      } as ManifestV2['stages'],
    };
    const m = await readManifest(s, await writeManifest(s, manifest));
    const reports = legacyReports(m);
    expect(reports.training).toEqual({ losses: [2, 1], epochs: 2, rows: 10 });
    expect(reports.fusion?.require).toBe('any');
    expect(reports.fusion?.groups[0]?.ops).toEqual(['aten::mul']);
  });

  it('a version record that does not fit its schema is refused, naming the record and the field', async () => {
    const s = store();
    const at = await putBlob(s, JSON.stringify({ format: 'ttd-version-record/1', model: 'm', artifact: d('a') }));
    const err = await readVersionRecord(s, at).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecordInvalidError);
    expect((err as Error).message).toMatch(new RegExp(`^version record ${at} does not fit its schema: manifest: `));
  });

  it('a manifest with an unknown format is refused rather than guessed', async () => {
    const s = store();
    const at = await putBlob(s, JSON.stringify({ format: 'ttd-manifest/9', ...base }));
    await expect(readManifest(s, at)).rejects.toThrow(/manifest .* does not fit its schema: format/);
  });
});
