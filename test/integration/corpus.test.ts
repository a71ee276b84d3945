// The real-model corpus (bench/corpus/) at reduced sizes: each model CI runs ends as corpus.json expects (promoted,
// or rejected with its code), in the formats its `ci` entry lists. The full sizes, the by-hand baseline and the
// > 1 GB model are `make corpus` (docs/real-models.md), a benchmark. The transformers models need an environment
// built from PyPI; declared-environment.test.ts promotes a BERT that way.
import { describe, expect, inject, it } from 'vitest';
import { corpusModels, writeCorpusSpec } from '../../bench/corpus-lib.mjs';
import type { RunResult } from '../../lib/contract/results';
import { runTtd, tempDir, testEnv } from '../helpers';

interface CorpusModel {
  dir: string;
  reduced: Record<string, unknown>;
  expect: { status: string; code?: string };
  ci?: string[];
}

const models = (corpusModels() as CorpusModel[]).filter((m) => m.ci);

describe('the real-model corpus at reduced sizes', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));

  it('runs at least a convolutional, a recurrent, an embedding and a multi-output model in CI', () => {
    expect(models.map((m) => m.dir)).toEqual(expect.arrayContaining(['resnet18', 'lstm-varlen', 'embedding-bag', 'multi-io']));
  });

  for (const model of models) {
    const { status, code } = model.expect;
    it(`corpus model ${model.dir} ends ${status}${code ? ` with ${code}` : ''} (${model.ci!.join(', ')})`, async () => {
      const spec = writeCorpusSpec(model, tempDir(), { reduced: true, formats: model.ci });
      const run = await runTtd(['run', spec, '--json'], env());
      const result: RunResult = JSON.parse(run.stdout);
      const failed = result.gates.find((g) => !g.passed);
      expect(result.status, `${failed?.gate} ${failed?.code}: ${failed?.message}`).toBe(status);
      if (code) {
        expect(failed?.code).toBe(code);
        expect(failed?.message.length).toBeGreaterThan(40);
        return;
      }
      // One run per runtime and format (a fused run too where the build fuses), each passed.
      const runs = [...new Set((result.parity ?? []).map((p) => `${p.format} ${p.runtime} ${p.passed}`))].sort();
      const want = model.ci!.flatMap((f) => [`${f} libtorch true`, `${f} python true`]).sort();
      expect(runs).toEqual(want);
    }, 420_000);
  }
});
