// Files the sandboxed torch side or a runtime wrote: read or copied only as regular files directly in their directory,
// never through a link planted there (which would make the worker read a host file of the attacker's choosing).
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyWrittenFile, readWrittenFile } from '../../activities/torch-stage';
import { tempDir } from '../helpers';

describe('written files', () => {
  it('a regular file is read in place and copied with its digest', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'outputs.safetensors'), 'bytes');
    expect((await readWrittenFile(join(dir, 'outputs.safetensors'), dir)).toString()).toBe('bytes');
    const digest = await copyWrittenFile(join(dir, 'outputs.safetensors'), join(tempDir(), 'copy'), dir);
    expect(digest).toBe('sha256:277089d91c0bdf4f2e6862ba7e4a07605119431f5d13f726dd352b06f1b206a9');
  });

  it.each(['readWrittenFile', 'copyWrittenFile'] as const)(
    '%s refuses a symbolic link and a directory, naming the file and why',
    async (fn) => {
      const dir = tempDir();
      const secret = join(tempDir(), 'secret');
      writeFileSync(secret, 'host file');
      symlinkSync(secret, join(dir, 'outputs.safetensors'));
      mkdirSync(join(dir, 'weights.pt'));
      const take = (path: string) =>
        fn === 'readWrittenFile' ? readWrittenFile(path, dir) : copyWrittenFile(path, join(tempDir(), 'copy'), dir);
      await expect(take(join(dir, 'outputs.safetensors'))).rejects.toMatchObject({
        type: 'sandbox_refused',
        message: expect.stringMatching(/the torch side named '.*\/outputs\.safetensors' as a file it wrote, but it is a symbolic link/),
      });
      await expect(take(join(dir, 'weights.pt'))).rejects.toMatchObject({
        type: 'sandbox_refused',
        message: expect.stringMatching(/'.*\/weights\.pt' as a file it wrote, but it is not a regular file/),
      });
    },
  );
});
