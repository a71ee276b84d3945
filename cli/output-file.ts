// `-o FILE` of the commands that write a file from the store (`ttd pull`, `ttd card`): checked before anything is read.
import { lstatSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ErrorCode, TtdError } from '../lib/contract/errors';

/** Where `-o` points, resolved: never a directory, a device, a FIFO or a link, and an existing file only with --force.
 * Checked before the store is read (`ttd pull`, `ttd card`). */
export function checkOutputFile(output: string, force: boolean, what: { command: string; example: string }): string {
  if (!output.trim()) {
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}' is an empty path; expected the path of the file to write (e.g. -o ${what.example})`,
      {
        path: output,
      },
    );
  }
  const dest = resolve(output);
  const parent = (() => {
    try {
      return statSync(dirname(dest), { throwIfNoEntry: false });
    } catch {
      return undefined; // ENOTDIR: a file on the way
    }
  })();
  if (!parent?.isDirectory()) {
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}': the folder '${dirname(dest)}' ${parent ? 'is not a directory' : 'does not exist'}; expected a file path in an existing directory`,
      { path: dest },
    );
  }
  let stat: Stats | undefined;
  let link = false;
  try {
    // lstat: the file is replaced by a rename, which replaces a link itself (or a device, a FIFO), never what it names.
    stat = lstatSync(dest, { throwIfNoEntry: false });
    link = stat?.isSymbolicLink() ?? false;
    if (link) stat = statSync(dest, { throwIfNoEntry: false }) ?? stat;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}' cannot be written (${code === 'ELOOP' ? 'a loop of symbolic links, ELOOP' : (code ?? (err as Error).message)}); expected the path of a file to write`,
      { path: dest },
    );
  }
  if (stat && !stat.isDirectory() && (link || !stat.isFile())) {
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}' is ${link ? 'a symbolic link' : 'not a regular file (a device, FIFO or socket)'}, which ${what.command} would replace by a file${force ? ', even with --force' : ''}; expected the path of a regular file to write${link ? ' (give the path it points at)' : ''}`,
      { path: dest },
    );
  }
  if (stat?.isDirectory()) {
    throw new TtdError(
      ErrorCode.outputInvalid,
      `-o '${output}' is a directory; expected the path of the file to write (e.g. ${output.replace(/\/+$/, '')}/${what.example})`,
      {
        path: dest,
      },
    );
  }
  if (stat && !force) {
    throw new TtdError(ErrorCode.outputExists, `-o '${output}' already exists; pass --force to overwrite it, or choose another path`, {
      path: dest,
    });
  }
  return dest;
}
