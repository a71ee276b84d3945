// The files a spec names, checked on the real filesystem: a regular .py file (or an archive) of bounded size, never
// a directory, FIFO, device, socket, kernel pseudo-file or a link that leads to one; read through the checked descriptor.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkInputFile, copyInputFile, INPUT_FILE_LIMITS, readInputFile } from '../../lib/spec/input-files';
import { tempDir } from '../helpers';

const ZIP_HEAD = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]);

/** A directory with a spec path in it; files are made beside the spec. */
function specDir(): { dir: string; spec: string } {
  const dir = tempDir('ttd-input-');
  return { dir, spec: join(dir, 'pipeline.yaml') };
}

const refused = (code: string, what: string) => expect.objectContaining({ code, message: expect.stringContaining(what) });

describe('input files a spec names', () => {
  it('a regular .py file and a zip archive are accepted as what they are, relative to the spec', () => {
    const { dir, spec } = specDir();
    writeFileSync(join(dir, 'model.py'), 'def build_model(params): ...\n');
    writeFileSync(join(dir, 'model.pt'), ZIP_HEAD);
    expect(checkInputFile(spec, 'model', './model.py')).toEqual({ path: join(dir, 'model.py'), kind: 'python' });
    expect(checkInputFile(spec, 'model', 'model.pt')).toEqual({ path: join(dir, 'model.pt'), kind: 'archive' });
    expect(checkInputFile(spec, 'artifact', 'model.pt').kind).toBe('archive');
    expect(readInputFile('model', './model.py', join(dir, 'model.py')).toString()).toBe('def build_model(params): ...\n');
  });

  it('a missing model file keeps model_file_not_found and names the resolved path', () => {
    const { dir, spec } = specDir();
    expect(() => checkInputFile(spec, 'model', './missing.py')).toThrow(
      refused('model_file_not_found', `model: file './missing.py' (resolved to ${join(dir, 'missing.py')}) does not exist`),
    );
  });

  it('a directory, a FIFO, /dev/zero, /dev/null and a socket are refused with model_invalid, naming what they are', async () => {
    const { dir, spec } = specDir();
    mkdirSync(join(dir, 'pkg.py'));
    execFileSync('mkfifo', [join(dir, 'fifo.py')]);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(dir, 'sock.py'), resolve));
    try {
      expect(() => checkInputFile(spec, 'model', 'pkg.py')).toThrow(refused('model_invalid', 'is a directory, not a regular file'));
      expect(() => checkInputFile(spec, 'model', 'fifo.py')).toThrow(
        refused('model_invalid', 'is a named pipe (FIFO), not a regular file'),
      );
      expect(() => checkInputFile(spec, 'model', '/dev/zero')).toThrow(
        refused('model_invalid', 'is a character device, not a regular file'),
      );
      expect(() => checkInputFile(spec, 'model', '/dev/null')).toThrow(refused('model_invalid', 'is a character device'));
      expect(() => checkInputFile(spec, 'model', 'sock.py')).toThrow(refused('model_invalid', 'is a socket, not a regular file'));
    } finally {
      server.close();
    }
  });

  it('a file whose name does not end in .py and that is no archive is refused, naming both kinds accepted', () => {
    const { dir, spec } = specDir();
    writeFileSync(join(dir, 'model.txt'), 'def build_model(params): ...\n');
    expect(() => checkInputFile(spec, 'model', 'model.txt')).toThrow(
      refused(
        'model_invalid',
        'its name does not end in .py, and it is not a TorchScript archive (a zip); expected a Python file (.py), or a TorchScript archive',
      ),
    );
  });

  it('a .py file above 16 MiB is refused with its size and the limit; one of exactly 16 MiB is accepted', () => {
    const { dir, spec } = specDir();
    writeFileSync(join(dir, 'big.py'), '');
    truncateSync(join(dir, 'big.py'), INPUT_FILE_LIMITS.pythonBytes + 1);
    expect(() => checkInputFile(spec, 'model', 'big.py')).toThrow(
      refused('model_invalid', 'is 16777217 bytes, more than the 16777216 bytes (16 MiB) a model file may have'),
    );
    truncateSync(join(dir, 'big.py'), INPUT_FILE_LIMITS.pythonBytes);
    expect(checkInputFile(spec, 'model', 'big.py').kind).toBe('python');
  });

  it('a link to a .py file is followed; a link named .py that leads to a secret, /proc or a device is refused', () => {
    const { dir, spec } = specDir();
    mkdirSync(join(dir, 'shared'));
    writeFileSync(join(dir, 'shared', 'real.py'), 'x = 1\n');
    writeFileSync(join(dir, 'credentials'), '[default]\naws_secret_access_key = not-a-real-one\n');
    symlinkSync(join(dir, 'shared', 'real.py'), join(dir, 'model.py'));
    symlinkSync(join(dir, 'credentials'), join(dir, 'creds.py'));
    symlinkSync('/proc/self/environ', join(dir, 'environ.py'));
    symlinkSync('/dev/zero', join(dir, 'zero.py'));
    expect(checkInputFile(spec, 'model', 'model.py')).toEqual({ path: join(dir, 'model.py'), kind: 'python' });
    expect(() => checkInputFile(spec, 'model', 'creds.py')).toThrow(
      refused('model_invalid', `is not a Python file (a link to ${join(dir, 'credentials')})`),
    );
    expect(() => checkInputFile(spec, 'model', 'environ.py')).toThrow(refused('model_invalid', 'a kernel pseudo-file, not a file on disk'));
    expect(() => checkInputFile(spec, 'model', 'zero.py')).toThrow(refused('model_invalid', 'is a character device'));
  });

  it('a path replaced by a FIFO or a link to a secret after its check is refused when read, not read', () => {
    const { dir, spec } = specDir();
    const path = join(dir, 'model.py');
    writeFileSync(path, 'x = 1\n');
    expect(checkInputFile(spec, 'model', 'model.py').kind).toBe('python');
    rmSync(path);
    execFileSync('mkfifo', [path]);
    expect(() => readInputFile('model', 'model.py', path)).toThrow(refused('model_invalid', 'is a named pipe (FIFO)'));
    rmSync(path);
    writeFileSync(join(dir, 'secret'), 'token\n');
    symlinkSync(join(dir, 'secret'), path);
    expect(() => readInputFile('model', 'model.py', path)).toThrow(refused('model_invalid', 'is not a Python file'));
  });

  it('artifact and references keep their own codes for a directory or a device', () => {
    const { dir, spec } = specDir();
    mkdirSync(join(dir, 'refs.safetensors'));
    expect(() => checkInputFile(spec, 'artifact', '/dev/zero')).toThrow(refused('artifact_invalid', "artifact: file '/dev/zero'"));
    expect(() => checkInputFile(spec, 'references', 'refs.safetensors')).toThrow(refused('references_invalid', 'is a directory'));
    expect(() => checkInputFile(spec, 'references', 'none.safetensors')).toThrow(refused('spec_invalid', 'does not exist'));
  });

  it('an archive is copied streamed through its checked descriptor; a path replaced by a FIFO or a device is refused, copying nothing', async () => {
    const { dir, spec } = specDir();
    const path = join(dir, 'model.pt');
    const archive = Buffer.concat([ZIP_HEAD, Buffer.alloc(3 * 1024 * 1024, 7)]);
    writeFileSync(path, archive);
    expect(checkInputFile(spec, 'artifact', 'model.pt').kind).toBe('archive');
    await copyInputFile('artifact', 'model.pt', path, join(dir, 'copy'));
    expect(readFileSync(join(dir, 'copy')).equals(archive)).toBe(true);
    writeFileSync(join(dir, 'empty.safetensors'), '');
    await copyInputFile('references', 'empty.safetensors', join(dir, 'empty.safetensors'), join(dir, 'empty-copy'));
    expect(readFileSync(join(dir, 'empty-copy')).length).toBe(0);
    rmSync(path);
    execFileSync('mkfifo', [path]);
    await expect(copyInputFile('artifact', 'model.pt', path, join(dir, 'fifo-copy'))).rejects.toThrow(
      refused('artifact_invalid', 'is a named pipe (FIFO)'),
    );
    rmSync(path);
    symlinkSync('/dev/zero', path);
    await expect(copyInputFile('artifact', 'model.pt', path, join(dir, 'zero-copy'))).rejects.toThrow(
      refused('artifact_invalid', 'is a character device'),
    );
    expect(existsSync(join(dir, 'fifo-copy')) || existsSync(join(dir, 'zero-copy'))).toBe(false);
  });
});
