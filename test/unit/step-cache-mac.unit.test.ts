// Step-cache entries against a store writer (on the real filesystem store): an entry is trusted only with a MAC made
// with the workers' key over its content and the key it is stored under; a forged verdict is a miss, with the reason.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { entryMac, lookupEntry, recordEntry } from '../../activities/step-cache';
import { FsObjectStore } from '../../lib/store/fs-store';
import { stepCacheKey } from '../../lib/registry/keys';
import { putBlob } from '../../lib/store/store';
import { tempDir } from '../helpers';

const KEY = 'cache/verify/aaaa.json';

async function cache() {
  const store = new FsObjectStore(tempDir());
  const macKey = stepCacheKey(join(tempDir(), 'keys'));
  const blob = await putBlob(store, 'traced archive');
  const output = { passed: true, code: null, message: 'traced and eager outputs agree', archive: blob };
  await recordEntry(store, KEY, 'verify', output, macKey);
  const entry = () => store.get(KEY).then((o) => JSON.parse(o!.body.toString()));
  const rewrite = async (body: unknown) => store.put(KEY, Buffer.from(JSON.stringify(body)));
  return { store, macKey, output, entry, rewrite };
}

describe('step cache entries', () => {
  it('an entry written by a worker is a hit', async () => {
    const c = await cache();
    expect(await lookupEntry(c.store, KEY, c.macKey)).toEqual({ kind: 'hit', output: c.output });
    expect((await c.entry()).format).toBe('ttd-step-cache/3');
  });

  it('a forged passing verdict at the key of a rejected stage is not trusted', async () => {
    const c = await cache();
    // The store writer turns a rejection into a pass: same shape, no key to make the MAC with.
    const key = 'cache/verify/bbbb.json';
    const forged = { passed: true, code: null, message: 'forged', archive: c.output.archive };
    await c.store.put(
      key,
      Buffer.from(JSON.stringify({ format: 'ttd-step-cache/3', stage: 'verify', key, output: forged, mac: 'ab'.repeat(32) })),
    );
    expect(await lookupEntry(c.store, key, c.macKey)).toMatchObject({
      kind: 'rejected',
      reason: 'its MAC does not match its content and key: it was not written by a worker holding the step-cache key',
    });
  });

  it('an entry whose output was changed, or that was copied to another key, is not trusted', async () => {
    const c = await cache();
    const entry = await c.entry();
    await c.rewrite({ ...entry, output: { ...entry.output, archive: await putBlob(c.store, 'another archive') } });
    expect(await lookupEntry(c.store, KEY, c.macKey)).toMatchObject({ kind: 'rejected' });
    // A genuine entry moved under another key (another stage's or input's) keeps its MAC, which names its own key.
    const moved = 'cache/verify/cccc.json';
    await c.store.put(moved, Buffer.from(JSON.stringify(entry)));
    expect(await lookupEntry(c.store, moved, c.macKey)).toMatchObject({ kind: 'rejected' });
  });

  it('an entry without a MAC (format 2, from before entries were signed) is a miss, and a new run replaces it', async () => {
    const c = await cache();
    await c.rewrite({ format: 'ttd-step-cache/2', stage: 'verify', output: c.output });
    const found = await lookupEntry(c.store, KEY, c.macKey);
    expect(found).toMatchObject({ kind: 'rejected', reason: `its format is "ttd-step-cache/2", expected 'ttd-step-cache/3'` });
    await c.rewrite({ format: 'ttd-step-cache/3', stage: 'verify', key: KEY, output: c.output });
    const unsigned = await lookupEntry(c.store, KEY, c.macKey);
    expect(unsigned).toMatchObject({ kind: 'rejected', reason: 'it has no MAC' });
    await recordEntry(c.store, KEY, 'verify', c.output, c.macKey, unsigned!.kind === 'rejected' ? unsigned!.etag : undefined);
    expect(await lookupEntry(c.store, KEY, c.macKey)).toEqual({ kind: 'hit', output: c.output });
  });

  it('a MAC made with another key is not trusted', async () => {
    const c = await cache();
    const other = stepCacheKey(join(tempDir(), 'keys'));
    expect(other.equals(c.macKey)).toBe(false);
    await c.rewrite({
      format: 'ttd-step-cache/3',
      stage: 'verify',
      key: KEY,
      output: c.output,
      mac: entryMac(other, KEY, 'verify', c.output),
    });
    expect(await lookupEntry(c.store, KEY, c.macKey)).toMatchObject({ kind: 'rejected' });
  });
});
