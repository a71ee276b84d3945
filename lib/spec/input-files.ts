// The files a spec names (model, artifact, references), checked before anything is read into the store: each must be a
// regular file on disk of the kind and size its field expects. A run reads them through the descriptor it checked.
import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  fstatSync,
  openSync,
  readlinkSync,
  readSync,
  realpathSync,
  statSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, TtdError } from '../contract/errors';

/** Upper bounds on the files a spec names (README, "The pipeline spec"). */
export const INPUT_FILE_LIMITS = {
  /** model as a Python file: a model definition is code; data and weights belong in dataset() and training. */
  pythonBytes: 16 * 1024 * 1024,
  /** A TorchScript archive or a references file (copied streamed since blobs stream; the bound is kept as documented). */
  wholeFileBytes: 2 ** 31 - 1,
} as const;

/** What a field accepts: `model` a Python file or a TorchScript archive, `artifact` an archive, `references` any file
 * (its content is checked as safetensors elsewhere). */
export type InputField = 'model' | 'artifact' | 'references';

/** A checked input file: its absolute path and what it holds. */
export interface InputFile {
  path: string;
  kind: 'python' | 'archive' | 'other';
}

/** Kernel pseudo-filesystems: their "regular files" are views of processes and the kernel (/proc/self/environ). */
const PSEUDO_ROOTS = ['/proc/', '/sys/'];

const EXPECTED: Record<InputField, string> = {
  model: 'a Python file (.py), or a TorchScript archive with references',
  artifact: 'a TorchScript archive',
  references: 'a safetensors file',
};

/** The error code of each field's bad files; a missing model file keeps its own code. */
const CODE: Record<InputField, ErrorCode> = {
  model: ErrorCode.modelInvalid,
  artifact: ErrorCode.artifactInvalid,
  references: ErrorCode.referencesInvalid,
};

/** Resolves `value` relative to the spec file and checks it without reading it whole; throws a TtdError naming the
 * field, the path and what was expected. */
export function checkInputFile(specPath: string, field: InputField, value: string): InputFile {
  const path = resolve(dirname(specPath), value);
  const fail = (what: string, code: ErrorCode = CODE[field]) =>
    new TtdError(
      code,
      `${field}: file '${value}' (resolved to ${path}) ${what}; expected ${EXPECTED[field]} (a path relative to the spec)`,
      {
        path,
      },
    );
  let stat: Stats;
  try {
    stat = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw fail('does not exist', field === 'model' ? ErrorCode.modelFileNotFound : ErrorCode.specInvalid);
    }
    throw fail(`cannot be read (${code ?? (err as Error).message})`);
  }
  if (!stat.isFile()) throw fail(`is ${describeKind(stat)}, not a regular file`);
  return withDescriptor(path, fail, (fd) => inspect(fd, path, field, fail).file);
}

/** Reads an input file whole (`path` as checkInputFile resolved it) through one descriptor, checked again: what is read
 * is what was checked, even if the path was replaced (by a FIFO, a device, a link elsewhere) since. */
export function readInputFile(field: InputField, value: string, path: string): Buffer {
  const fail = failure(field, value, path);
  return withDescriptor(path, fail, (fd) => {
    const { size } = inspect(fd, path, field, fail);
    // Never more than the size that was checked: a file that grows meanwhile is cut there, one that shrank is shorter.
    const buf = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buf, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buf.subarray(0, read);
  });
}

/** Copies an input file to `dest` (created, never replaced), streamed through one descriptor checked as readInputFile
 * checks it and never past the size checked: an archive of any size costs a buffer of memory, not its size. */
export async function copyInputFile(field: InputField, value: string, path: string, dest: string): Promise<void> {
  const fail = failure(field, value, path);
  let fd: number | undefined;
  let source: Readable;
  try {
    fd = openDescriptor(path, fail);
    const { size } = inspect(fd, path, field, fail);
    source = size === 0 ? Readable.from([]) : createReadStream('', { fd, start: 0, end: size - 1 });
    if (size === 0) closeSync(fd);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    throw err;
  }
  await pipeline(source, createWriteStream(dest, { flags: 'wx' }));
}

function failure(field: InputField, value: string, path: string): (what: string) => TtdError {
  return (what: string) =>
    new TtdError(
      CODE[field],
      `${field}: file '${value}' (resolved to ${path}) ${what}; expected ${EXPECTED[field]} (a path relative to the spec)`,
      {
        path,
      },
    );
}

/** Opens without following into a FIFO's wait or a terminal's control, runs `fn`, closes. */
function withDescriptor<T>(path: string, fail: (what: string) => TtdError, fn: (fd: number) => T): T {
  const fd = openDescriptor(path, fail);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

function openDescriptor(path: string, fail: (what: string) => TtdError): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code ?? (err as Error).message})`);
  }
}

/** The checks on an open descriptor: a regular file, not a kernel pseudo-file, of the field's kind and size. */
function inspect(fd: number, path: string, field: InputField, fail: (what: string) => TtdError): { file: InputFile; size: number } {
  const stat = fstatSync(fd);
  if (!stat.isFile()) throw fail(`is ${describeKind(stat)}, not a regular file`);
  const real = openedPath(fd, path);
  if (PSEUDO_ROOTS.some((root) => real.startsWith(root))) throw fail(`is ${real}, a kernel pseudo-file, not a file on disk`);
  const linked = real === path ? '' : ` (a link to ${real})`;
  const archive = startsLikeZip(fd);
  const max = archive || field !== 'model' ? INPUT_FILE_LIMITS.wholeFileBytes : INPUT_FILE_LIMITS.pythonBytes;
  if (stat.size > max) {
    throw fail(
      `is ${stat.size} bytes${linked}, more than the ${max} bytes (${mib(max)}) ${archive || field !== 'model' ? 'an archive or references file may have' : 'a model file may have'}`,
    );
  }
  if (field === 'model' && !archive) {
    // Both the name the spec gives and the file it reaches: a link named model.py must not lead to ~/.aws/credentials.
    if (!basename(path).endsWith('.py') || !basename(real).endsWith('.py')) {
      throw fail(`is not a Python file${linked}: its name does not end in .py, and it is not a TorchScript archive (a zip)`);
    }
    return { file: { path, kind: 'python' }, size: stat.size };
  }
  return { file: { path, kind: archive ? 'archive' : 'other' }, size: stat.size };
}

/** The path the kernel has for an open descriptor (links resolved); the resolved path where /proc is absent. */
function openedPath(fd: number, path: string): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return realpathSync(path);
  }
}

/** Whether a file starts like a zip archive (TorchScript archives are zips). */
function startsLikeZip(fd: number): boolean {
  const head = Buffer.alloc(4);
  return readSync(fd, head, 0, 4, 0) === 4 && head.equals(Buffer.from([0x50, 0x4b, 0x03, 0x04]));
}

function describeKind(stat: Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a named pipe (FIFO)';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

function mib(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(0)} GiB` : `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
}
