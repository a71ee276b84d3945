// Command-line values and environment variables checked at the boundary: the code, and a message naming the
// flag or variable, the value and what was expected.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cronArgument, intervalArgument, positiveIntegerArgument } from '../../lib/spec/arguments';
import { loadTemporalConfig } from '../../temporal/config';
import { TtdError } from '../../lib/contract/errors';
import { loadSpec } from '../../lib/spec/spec';
import { tempDir } from '../helpers';

function thrown(fn: () => unknown): TtdError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TtdError) return err;
    throw err;
  }
  throw new Error('expected a TtdError');
}

describe('arguments', () => {
  it('--limit takes a whole number of at least 1 and names the flag and the value otherwise', () => {
    expect(positiveIntegerArgument('--limit', '20')).toBe(20);
    for (const bad of ['-5', 'abc', '0', '1.5', '', '1e3']) {
      const err = thrown(() => positiveIntegerArgument('--limit', bad));
      expect(err.code).toBe('argument_invalid');
      expect(err.message).toBe(`--limit '${bad}' is not a positive whole number; expected e.g. --limit 20`);
    }
  });

  it('--every takes a whole number and a unit s, m, h or d, and names the form otherwise', () => {
    for (const ok of ['30s', '30m', '1h', '1d']) expect(intervalArgument('--every', ok)).toBe(ok);
    for (const bad of ['banana', '0h', '1', '1.5h', '-1h', '1 hour', '1y']) {
      const err = thrown(() => intervalArgument('--every', bad));
      expect(err.code).toBe('schedule_error');
      expect(err.message).toBe(`--every '${bad}' is not an interval; expected a whole number and a unit s, m, h or d (e.g. 30m, 1h, 1d)`);
    }
  });

  it('--cron takes 5 to 7 fields of cron characters or a macro, and names the form otherwise', () => {
    for (const ok of ['0 3 * * *', '*/15 * * * MON-FRI', '0 0 12 1 * ? 2030', '@daily', '@every 2h'])
      expect(cronArgument('--cron', ok)).toBe(ok);
    for (const bad of ['banana', '* * * *', '0 3 * * * * * *', '0 3 * * ; rm', '@sometimes']) {
      const err = thrown(() => cronArgument('--cron', bad));
      expect(err.code).toBe('schedule_error');
      expect(err.message).toContain(`--cron '${bad}' is not a cron expression; expected 5 fields`);
    }
  });

  it('TTD_TEMPORAL_PORT must be a whole number from 1 to 65535, and sets the UI link beside it', () => {
    expect(loadTemporalConfig({ TTD_TEMPORAL_PORT: '7300' })).toMatchObject({ temporalPort: 7300, temporalUi: 'http://127.0.0.1:8300' });
    expect(loadTemporalConfig({}).temporalPort).toBe(7233);
    for (const bad of ['abc', '0', '70000', '-1', '72.5']) {
      const err = thrown(() => loadTemporalConfig({ TTD_TEMPORAL_PORT: bad }));
      expect(err.code).toBe('config_invalid');
      expect(err.message).toBe(`TTD_TEMPORAL_PORT='${bad}'; expected a port, a whole number from 1 to 65535`);
    }
  });

  it('an empty spec file is named as empty, not as missing fields', () => {
    const dir = tempDir();
    for (const text of ['', '\n  \n', '# only a comment\n']) {
      const path = join(dir, 'pipeline.yaml');
      writeFileSync(path, text);
      const err = thrown(() => loadSpec(path));
      expect(err.code).toBe('spec_invalid');
      expect(err.message).toBe(
        `spec file '${path}' is empty; expected a pipeline in YAML or JSON with at least a name (e.g. 'name: my-model')`,
      );
    }
  });

  it('a directory given as the spec is named as a directory, not as missing', () => {
    const dir = join(tempDir(), 'pipelines');
    mkdirSync(dir);
    const err = thrown(() => loadSpec(dir));
    expect(err.code).toBe('spec_not_found');
    expect(err.message).toBe(
      `spec file '${dir}' is a directory; expected a pipeline.yaml or .json file (e.g. ${join(dir, 'pipeline.yaml')})`,
    );
    expect(thrown(() => loadSpec(join(dir, 'nope.yaml'))).message).toContain('does not exist');
  });
});
