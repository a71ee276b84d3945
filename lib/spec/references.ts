// Foreign references at the boundary: a safetensors file whose tensor names we understand, checked before a run starts.
import { readFileSync } from 'node:fs';
import { ErrorCode, TtdError } from '../contract/errors';
import { parseSafetensors } from '../parity/safetensors';

/** Names a references file may use: `<case>/input/<i>` and `<case>/output/<j>`, or `input`/`output`, or `input.<i>`/`output.<j>`. */
const NAME_FORMS = [/^[a-z0-9_]+\/(input|output)\/(0|[1-9]\d*)$/, /^(input|output)$/, /^(input|output)\.(0|[1-9]\d*)$/];

/** Throws a TtdError (references_invalid) naming the file and what is wrong; returns the number of tensors. */
export function checkReferences(field: string, path: string): number {
  let file;
  try {
    file = parseSafetensors(readFileSync(path), path);
  } catch (err) {
    throw new TtdError(ErrorCode.referencesInvalid, `${field}: '${path}' is not a readable safetensors file: ${(err as Error).message}`);
  }
  const names = [...file.tensors.keys()];
  const odd = names.filter((n) => !NAME_FORMS.some((re) => re.test(n)));
  const hasInput = names.some((n) => /(^|\/)input(\/|\.|$)/.test(n));
  const hasOutput = names.some((n) => /(^|\/)output(\/|\.|$)/.test(n));
  if (odd.length || !hasInput || !hasOutput) {
    const what = odd.length
      ? `tensor names ${odd
          .slice(0, 5)
          .map((n) => `'${n}'`)
          .join(', ')} are not understood`
      : `it lacks ${hasInput ? 'outputs' : 'inputs'}`;
    throw new TtdError(
      ErrorCode.referencesInvalid,
      `${field}: '${path}': ${what}; expected reference inputs and outputs named input/output, input.<i>/output.<j>, or <case>/input/<i> and <case>/output/<j>`,
    );
  }
  return names.length;
}
