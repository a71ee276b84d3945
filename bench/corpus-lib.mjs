// The real-model corpus (bench/corpus/): its list, a spec per model as a run needs it (full or reduced sizes, some
// formats), and the torch environment its transformers models run in. Shared by bench/corpus.mjs and
// test/integration/corpus.test.ts.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { root } from './common.mjs';

/** The corpus folder. */
export const corpusDir = join(root, 'bench', 'corpus');
/** The virtualenv bench/corpus/transformers-env.sh builds: transformers beside torch-2.13's own torch. */
export const transformersPython = join(root, '.corpus', 'transformers', 'bin', 'python');

/** The models of bench/corpus/corpus.json: { dir, reduced, expect: { status, code? }, needs? }. */
export function corpusModels() {
  return JSON.parse(readFileSync(join(corpusDir, 'corpus.json'), 'utf8')).models;
}

/** The model's own spec, parsed. */
export function corpusSpec(model) {
  return parse(readFileSync(join(corpusDir, model.dir, 'pipeline.yaml'), 'utf8'));
}

/** Writes the model's spec into `dir` (its model file by absolute path) with the reduced params when `reduced`,
 * only `formats` when given, and `environment` replaced when given; returns its path.
 * @param {{ dir: string, reduced?: Record<string, unknown> }} model
 * @param {string} dir
 * @param {{ reduced?: boolean, formats?: string[], environment?: unknown }} [opts] */
export function writeCorpusSpec(model, dir, { reduced = false, formats, environment } = {}) {
  const spec = corpusSpec(model);
  spec.model = join(corpusDir, model.dir, 'model.py');
  if (reduced) spec.params = { ...spec.params, ...model.reduced };
  if (formats) spec.formats = formats;
  if (environment !== undefined) spec.environment = environment;
  const path = join(dir, 'pipeline.yaml');
  writeFileSync(path, stringify(spec));
  return path;
}

/** True when this checkout's spec takes `environment: { base, requirements }` (the declared environments of
 * docs/environments.md). Without it a transformers model runs as TTD_PYTHON's `custom` environment instead. */
export function declaredEnvironments() {
  return existsSync(join(root, 'docs', 'environments.md'));
}

/** What a model that needs transformers takes to run here: the spec's environment and the env of ttd. */
export function transformersRun() {
  if (declaredEnvironments()) return { environment: undefined, env: {} };
  if (!existsSync(transformersPython)) throw new Error('run bash bench/corpus/transformers-env.sh first');
  return {
    environment: 'custom',
    env: { TTD_PYTHON: transformersPython, TTD_LIBTORCH_RUNNER: join(root, 'build', 'libtorch-2.13', 'ttd-libtorch-runner') },
  };
}
